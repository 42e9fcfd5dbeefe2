"""An embedded moto server on 127.0.0.1 standing in for DynamoDB and ECR.

Used by ``pushgate serve --local`` and by the tests. moto's backends keep their
state in plain dicts with no lock, so two requests served by two threads can
interleave inside one "atomic" call: two conditional writes on one DynamoDB
item can both succeed, and concurrent ``put_image`` calls can leave one tag on
two images. Real AWS applies each call atomically. This server restores that
by applying one request at a time (a WSGI middleware holding a lock while the
backend runs); connections are still accepted and read concurrently.

moto's dispatcher lists its package directory on every request to recognise a service
name in the Host header (``moto.backends.list_of_moto_modules``: about a thousand
``stat`` calls, a quarter of a DynamoDB call's time). The list cannot change while the
server runs, so ``LocalAWS`` computes it once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto import backends
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _list_moto_modules_once() -> None:
    if getattr(backends.list_of_moto_modules, "pushgate_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def cached() -> tuple[str, ...]:
        return modules

    cached.pushgate_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = cached


class _OneAtATime:
    """WSGI middleware: each request runs alone in the backend, as one AWS call."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One line per AWS call drowns the service's own logs."""


class LocalAWS(ThreadedMotoServer):
    """``ThreadedMotoServer`` whose calls are atomic. ``port=0`` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)

    def _server_entry(self) -> None:
        _list_moto_modules_once()
        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, threaded=True, request_handler=_QuietHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def serve_until_interrupted(self) -> None:
        """Block this thread while the server runs; stop it on Ctrl-C or SIGINT."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def main() -> None:
    """``python -m service.localaws [--host H] [--port P]``: serve until interrupted."""
    import argparse  # noqa: PLC0415 - only the standalone server parses arguments

    parser = argparse.ArgumentParser(description="moto server whose AWS calls are atomic")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    server = LocalAWS(args.host, args.port)
    server.start()
    print(f"moto (atomic calls) listening on {server.endpoint}", flush=True)  # noqa: T201
    server.serve_until_interrupted()


if __name__ == "__main__":
    main()
