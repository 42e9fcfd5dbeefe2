"""What every mode shares: the plan, the dispatcher, jitter and fault hooks on botocore
clients, the tag observer, and the final read of ECR.

Windows are widened honestly, the way the network widens them in production:

- **jitter**: a random delay before ``PutImage`` is sent and after its answer arrives
  (``before-call.ecr.PutImage`` / ``after-call.ecr.PutImage`` hooks that sleep), as
  ~100 ms of real ECR latency would;
- **check-then-act** (raw mode, ``--check-then-act``): read the tag, then push only if
  it names an older build, as cdk-assets does;
- **switch interval**: ``sys.setswitchinterval`` lowered for the in-process threads.

Faults are injected on the clients the code under test uses, with ``before-send``
hooks that answer instead of the server (the request never reaches it): DynamoDB
throttling and 500s on any call, ECR ``ThrottlingException`` on ``PutImage``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Self

import boto3
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError

from service.stress.record import Observation, Recorder, TagWrite

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
SEQUENCE_ANNOTATION = "io.pushgate.stress.sequence"
REGION = "us-east-1"


def manifest_digest(manifest: str) -> str:
    """ECR's digest: sha256 of the exact manifest bytes."""
    return "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PushSpec:
    """One push request of the plan: build ``sequence`` of ``repository:tag``."""

    request_id: str
    repository: str
    tag: str
    sequence: int
    manifest: str
    digest: str
    pause: str | None = None  # fault tests: where a worker process stops itself

    @property
    def key(self) -> str:
        return f"{self.repository}:{self.tag}"

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "repository": self.repository,
            "tag": self.tag,
            "sequence": self.sequence,
            "manifest": self.manifest,
            "digest": self.digest,
            "pause": self.pause,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PushSpec:
        return cls(**data)


def build_manifest(repository: str, tag: str, sequence: int) -> str:
    """A distinct OCI manifest per build (its own config and layer digests)."""

    def blob(kind: str) -> str:
        return (
            "sha256:" + hashlib.sha256(f"{repository}:{tag}:{sequence}:{kind}".encode()).hexdigest()
        )

    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob("config"),
            "size": 512,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": blob("layer"),
                "size": 1024 + sequence,
            }
        ],
        "annotations": {SEQUENCE_ANNOTATION: str(sequence)},
    }
    return json.dumps(manifest, separators=(",", ":"), sort_keys=True)


def sequence_of(manifest: str) -> int | None:
    """The build sequence a manifest carries (what a check-then-act client reads)."""
    try:
        value = json.loads(manifest).get("annotations", {}).get(SEQUENCE_ANNOTATION)
    except (ValueError, AttributeError):
        return None
    return int(value) if value is not None else None


def spec_for(
    repository: str, tag: str, sequence: int, *, copy: int = 0, pause: str | None = None
) -> PushSpec:
    """The push of build ``sequence`` (its ``copy``-th request) of ``repository:tag``."""
    manifest = build_manifest(repository, tag, sequence)
    return PushSpec(
        request_id=f"{tag}-s{sequence}-c{copy}",
        repository=repository,
        tag=tag,
        sequence=sequence,
        manifest=manifest,
        digest=manifest_digest(manifest),
        pause=pause,
    )


def make_plan(
    *,
    repository: str,
    tags: int,
    pushes: int,
    seed: int,
    copies: int = 2,
    spread: float = 6.0,
    reruns: int = 1,
) -> list[PushSpec]:
    """``pushes`` requests over ``tags`` tags. Each build (sequence 1, 2, ...) is pushed
    ``copies`` times (an identical re-push); builds arrive roughly in order, scrambled
    within ``spread`` builds, as CI runs that start in order but finish in any order.
    The last ``reruns`` requests of each tag re-run an older build's pipeline (a
    re-run release job): its push arrives after every newer build's."""
    if tags < 1 or pushes < 1 or copies < 1 or reruns < 0:
        raise ValueError("tags, pushes and copies must be >= 1, reruns >= 0")
    rng = random.Random(seed)
    entries: list[tuple[float, PushSpec]] = []
    for index in range(tags):
        tag = f"t{index}"
        count = pushes // tags + (1 if index < pushes % tags else 0)
        rerun = min(reruns, count // 2)
        builds = 0
        for n in range(count - rerun):
            sequence = n // copies + 1
            builds = max(builds, sequence)
            spec = spec_for(repository, tag, sequence, copy=n % copies)
            entries.append((sequence + rng.random() * spread, spec))
        for n in range(rerun):
            old = rng.randint(1, max(1, builds // 2))
            spec = spec_for(repository, tag, old, copy=copies + n)
            entries.append(
                (builds + spread + 1 + n, replace(spec, request_id=f"{tag}-s{old}-rerun{n}"))
            )
    entries.sort(key=lambda entry: entry[0])
    return [spec for _, spec in entries]


def plan_sequences(plan: list[PushSpec]) -> dict[str, int]:
    return {spec.digest: spec.sequence for spec in plan}


class Dispatcher:
    """Hands out the plan's requests, re-queues those whose worker died, and stops
    at the deadline (requests never handed out are reported as not started)."""

    def __init__(self, plan: list[PushSpec], *, deadline: float) -> None:
        self._queue: deque[PushSpec] = deque(plan)
        self._lock = threading.Lock()
        self._deadline = deadline
        self.total = len(plan)
        self.dispatched = 0
        self.stopped = threading.Event()

    def next(self) -> PushSpec | None:
        with self._lock:
            if self.stopped.is_set() or not self._queue:
                return None
            if time.time() > self._deadline:
                self.stopped.set()
                return None
            self.dispatched += 1
            return self._queue.popleft()

    def requeue(self, spec: PushSpec) -> None:
        """A request whose worker died is handed out again (its caller retries)."""
        with self._lock:
            self._queue.appendleft(spec)
            self.dispatched -= 1

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def timed_out(self) -> bool:
        return time.time() > self._deadline

    def stop(self) -> None:
        self.stopped.set()


@dataclass
class Counters:
    """Calls seen by the hooks, for the result table."""

    put_calls: int = 0
    injected_dynamodb: int = 0
    injected_ecr: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


# --- jitter, write recording and faults on botocore clients ---------------------------


class Jitter:
    """Uniform delays in ``[0, ms]`` milliseconds, from a seeded generator."""

    def __init__(self, ms: float, seed: int) -> None:
        self.ms = ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> float:
        if self.ms <= 0:
            return 0.0
        with self._lock:
            return self._rng.uniform(0, self.ms) / 1000


#: The lease token of the push running in this thread or task (written into TagWrite).
current_token: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "stress_token", default=None
)
current_worker: contextvars.ContextVar[str] = contextvars.ContextVar("stress_worker", default="?")

_SENT = "stress_sent"


def _write_of(parsed: dict[str, Any], sent: float) -> TagWrite | None:
    image = parsed.get("image") or {}
    image_id = image.get("imageId") or {}
    digest = image_id.get("imageDigest")
    if not digest or not image.get("repositoryName") or not image_id.get("imageTag"):
        return None
    return TagWrite(
        key=f"{image['repositoryName']}:{image_id['imageTag']}",
        digest=str(digest),
        sent=sent,
        received=time.time(),
        worker=current_worker.get(),
        token=current_token.get(),
    )


def instrument_ecr(client: Any, *, jitter: Jitter, recorder: Recorder, counters: Counters) -> None:
    """Blocking client: sleep around each PutImage and record every accepted one."""

    def before_call(context: dict[str, Any], **_: Any) -> None:
        time.sleep(jitter.draw())
        context[_SENT] = time.time()

    def before_send(**_: Any) -> None:
        counters.add("put_calls")

    def after_call(
        http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if http_response.status_code == 200:  # noqa: PLR2004 - HTTP OK
            write = _write_of(parsed, context.get(_SENT, time.time()))
            if write is not None:
                recorder.write(write)
        time.sleep(jitter.draw())

    events = client.meta.events
    events.register("before-call.ecr.PutImage", before_call)
    events.register("before-send.ecr.PutImage", before_send)
    events.register("after-call.ecr.PutImage", after_call)


def instrument_ecr_async(
    client: Any, *, jitter: Jitter, recorder: Recorder, counters: Counters
) -> None:
    """aiobotocore client: the same, sleeping with ``asyncio.sleep``."""

    async def before_call(context: dict[str, Any], **_: Any) -> None:
        await asyncio.sleep(jitter.draw())
        context[_SENT] = time.time()

    def before_send(**_: Any) -> None:
        counters.add("put_calls")

    async def after_call(
        http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if http_response.status_code == 200:  # noqa: PLR2004 - HTTP OK
            write = _write_of(parsed, context.get(_SENT, time.time()))
            if write is not None:
                recorder.write(write)
        await asyncio.sleep(jitter.draw())

    events = client.meta.events
    events.register("before-call.ecr.PutImage", before_call)
    events.register("before-send.ecr.PutImage", before_send)
    events.register("after-call.ecr.PutImage", after_call)


class _Raw:
    """The raw body of a canned response, for both botocore and aiobotocore."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    async def read(self) -> bytes:
        return self._body


def canned_response(
    url: str, status: int, body: dict[str, Any], content_type: str, *, aio: bool
) -> AWSResponse:
    data = json.dumps(body).encode()
    headers = HTTPHeaders.from_dict(
        {"content-type": content_type, "x-amzn-requestid": "stress-injected"}
    )
    if aio:
        from aiobotocore.awsrequest import AioAWSResponse  # noqa: PLC0415 - aio only

        response: AWSResponse = AioAWSResponse(url, status, headers, _Raw(data))
    else:
        response = AWSResponse(url, status, headers, _Raw(data))
    vars(response)["_content"] = data  # a canned body, read without a stream
    return response


DYNAMODB_FAULTS = (
    (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate of requests exceeds"),
    (
        400,
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded",
    ),
    (500, "com.amazon.coral.service#InternalFailure", "injected 500"),
    (503, "com.amazon.coral.availability#ServiceUnavailableException", "injected 503"),
)


class Faults:
    """Answer a fraction of calls with an error instead of the server."""

    def __init__(
        self,
        *,
        dynamodb: float = 0.0,
        ecr_put: float = 0.0,
        seed: int = 0,
        counters: Counters,
    ) -> None:
        self.dynamodb = dynamodb
        self.ecr_put = ecr_put
        self.counters = counters
        # one generator per service: the k-th PutImage always gets the same roll
        self._rngs = {"dynamodb": random.Random(seed), "ecr": random.Random(seed + 1)}
        self._lock = threading.Lock()
        self.enabled = True

    def _roll(self, service: str, probability: float) -> float | None:
        if not self.enabled or probability <= 0:
            return None
        with self._lock:
            value = self._rngs[service].random()
        return value / probability if value < probability else None

    def install(self, *, dynamodb: Any = None, ecr: Any = None, aio: bool = False) -> None:
        def dynamodb_fault(request: Any, **_: Any) -> AWSResponse | None:
            roll = self._roll("dynamodb", self.dynamodb)
            if roll is None:
                return None
            status, code, message = DYNAMODB_FAULTS[int(roll * len(DYNAMODB_FAULTS))]
            self.counters.add("injected_dynamodb")
            return canned_response(
                request.url,
                status,
                {"__type": code, "message": message},
                "application/x-amz-json-1.0",
                aio=aio,
            )

        def ecr_fault(request: Any, **_: Any) -> AWSResponse | None:
            if self._roll("ecr", self.ecr_put) is None:
                return None
            self.counters.add("injected_ecr")
            return canned_response(
                request.url,
                400,
                {"__type": "ThrottlingException", "message": "Rate exceeded"},
                "application/x-amz-json-1.1",
                aio=aio,
            )

        if dynamodb is not None:
            # registered first, so it answers before anything else sends
            dynamodb.meta.events.register_first("before-send.dynamodb", dynamodb_fault)
        if ecr is not None:
            ecr.meta.events.register_first("before-send.ecr.PutImage", ecr_fault)


# --- plain boto3 clients, the observer and the final read -----------------------------


def boto_client(service: str, endpoint: str, *, retries: int = 4) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(
            retries={"mode": "standard", "max_attempts": retries},
            max_pool_connections=64,
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def create_repository(endpoint: str, repository: str, *, immutable: bool) -> None:
    client = boto_client("ecr", endpoint)
    client.create_repository(
        repositoryName=repository,
        imageTagMutability="IMMUTABLE" if immutable else "MUTABLE",
    )


def tag_digest(client: Any, repository: str, tag: str) -> str | None:
    answer = client.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
    images = answer.get("images") or []
    if not images:
        return None
    return str(images[0]["imageId"]["imageDigest"])


class Observer:
    """Reads the tags in turn every ``interval`` seconds, recording what they name."""

    def __init__(
        self,
        endpoint: str,
        repository: str,
        tags: list[str],
        recorder: Recorder,
        *,
        interval: float = 0.1,
    ) -> None:
        self._client = boto_client("ecr", endpoint)
        self._repository = repository
        self._tags = tags
        self._recorder = recorder
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stress-observer", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(self._interval):
            tag = self._tags[index % len(self._tags)]
            index += 1
            sent = time.time()
            try:
                digest = tag_digest(self._client, self._repository, tag)
            except ClientError:
                continue
            self._recorder.observe(
                Observation(f"{self._repository}:{tag}", digest, sent, time.time())
            )


def final_state(endpoint: str, repository: str, tags: list[str]) -> dict[str, list[str]]:
    """Every image carrying each tag at the end (ECR: exactly one, or none)."""
    client = boto_client("ecr", endpoint)
    final: dict[str, list[str]] = {f"{repository}:{tag}": [] for tag in tags}
    paginator = client.get_paginator("describe_images")
    for page in paginator.paginate(repositoryName=repository):
        for image in page.get("imageDetails", []):
            for tag in image.get("imageTags") or []:
                final.setdefault(f"{repository}:{tag}", []).append(str(image["imageDigest"]))
    return final


def run_threads(count: int, target: Callable[[int], None], *, timeout: float) -> None:
    """Run ``target(i)`` in ``count`` threads; wait at most ``timeout`` seconds."""
    threads = [
        threading.Thread(target=target, args=(i,), name=f"stress-worker-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
