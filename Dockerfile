# syntax=docker/dockerfile:1
# pushgate: slim, non-root, with a healthcheck on /healthz.
# The default target is the production image: the `server` extra, no moto.
# `--target emulator` adds the `local` extra (moto) for docker-compose.yml's AWS stand-in.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY locks ./locks
COPY service ./service
# wheels of pushgate and of every dependency of `local` (a superset of `server`)
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[local]'

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 pushgate
WORKDIR /home/pushgate
ENV PUSHGATE_LOG_FORMAT=json

FROM runtime AS emulator
# the wheels are mounted, not copied, so no layer keeps them
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'pushgate[local]'
USER pushgate
EXPOSE 5000
CMD ["python", "-m", "service.localaws", "--host", "0.0.0.0", "--port", "5000"]

FROM runtime AS production
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'pushgate[server]'
USER pushgate
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
CMD ["pushgate", "serve", "--host", "0.0.0.0", "--port", "8080"]
