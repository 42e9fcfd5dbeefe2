"""ECR fidelity for tests: moto's ECR corrected toward ECR, plus fault injection.

The corrections themselves live in ``service.localecr``, which ``LocalAWS`` installs
for ``--local`` too; :class:`EcrFidelity` makes sure they are installed and adds what
only tests need (docs/ecr.md, "moto is not ECR"):

- :meth:`EcrFidelity.inject`: any ECR error code (throttling, KMS, 5xx, missing layers)
  for the next N calls of one operation on one repository, so tests sharing one moto
  server stay isolated;
- a lock on ECR state around ``put_image`` and ``batch_get_image``, as ECR applies each
  call atomically;
- :func:`slow_calls`: delays a client's requests.

Slowness is injected on the *client* (an aiobotocore ``before-send`` hook that sleeps
before the request leaves), not in the backend: the session's server
(``service.localaws.LocalAWS``) applies one AWS call at a time, so a sleep inside the
backend would stall every other test's calls. A delayed call still reaches ECR and lands
after the delay, unless the caller gives up first (then it never lands).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.ecr import models as ecr_models
from werkzeug.exceptions import HTTPException

from service import localecr

ECRBackend = ecr_models.ECRBackend


class EcrFault(HTTPException):
    """Any error answer, body and status as given: also codes outside ECR's model
    (``ThrottlingException``), which moto's serializer would warn about and cannot
    give a 5xx status. moto's response layer passes an ``HTTPException`` through."""

    def __init__(self, error_code: str, message: str, status: int, **members: Any) -> None:
        body = {"__type": error_code, "message": message, **members}
        super().__init__(description=json.dumps(body))
        self.code = status

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "application/x-amz-json-1.1")]


@dataclass
class Fault:
    code: str | None = None
    message: str = ""
    status: int = 400
    members: dict[str, Any] = field(default_factory=dict)


class EcrFidelity:
    """Installs the corrected ``put_image`` (and fault injection) on moto's ECR backend."""

    def __init__(self) -> None:
        self._state = threading.Lock()  # serializes ECR state changes, as ECR does
        self._faults_lock = threading.Lock()
        self._faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self._originals: dict[str, Any] = {}
        self.calls: dict[tuple[str, str], int] = defaultdict(int)

    # --- test API ------------------------------------------------------------

    def inject(
        self,
        repository: str,
        code: str,
        message: str = "injected",
        *,
        times: int = 1,
        status: int | None = None,
        operation: str = "put_image",
        members: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` calls of ``operation`` on ``repository`` fail with ``code``
        (HTTP ``status``: 500 for ``ServerException``, else 400 unless given)."""
        if status is None:
            status = 500 if code == "ServerException" else 400
        fault = Fault(code, message, status, dict(members or {}))
        with self._faults_lock:
            self._faults[(operation, repository)].extend(fault for _ in range(times))

    def count(self, repository: str, operation: str = "put_image") -> int:
        """How many calls of ``operation`` reached the backend for ``repository``."""
        return self.calls[(operation, repository)]

    def clear(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def _take(self, operation: str, repository: str) -> None:
        with self._faults_lock:
            self.calls[(operation, repository)] += 1
            queue = self._faults.get((operation, repository))
            fault = queue.popleft() if queue else None
        if fault is not None and fault.code is not None:
            raise EcrFault(fault.code, fault.message, fault.status, **fault.members)

    # --- installation --------------------------------------------------------

    def install(self) -> None:
        localecr.install()
        fidelity = self
        self._originals = {
            "put_image": ECRBackend.put_image,
            "batch_get_image": ECRBackend.batch_get_image,
        }
        corrected_put = ECRBackend.put_image
        original_batch_get = ECRBackend.batch_get_image

        def put_image(backend: Any, repository_name: str, *args: Any, **kwargs: Any) -> Any:
            fidelity._take("put_image", repository_name)
            with fidelity._state:
                return corrected_put(backend, repository_name, *args, **kwargs)

        def batch_get_image(
            backend: Any,
            repository_name: str,
            registry_id: str | None = None,
            image_ids: list[dict[str, Any]] | None = None,
        ) -> Any:
            fidelity._take("batch_get_image", repository_name)
            with fidelity._state:
                return original_batch_get(backend, repository_name, registry_id, image_ids)

        ECRBackend.put_image = put_image  # type: ignore[method-assign,assignment]
        ECRBackend.batch_get_image = batch_get_image  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(ECRBackend, name, original)
        self._originals = {}
        self.clear()


@contextmanager
def ecr_fidelity() -> Iterator[EcrFidelity]:
    """Install the corrected backend for the duration of the block."""
    fidelity = EcrFidelity()
    fidelity.install()
    try:
        yield fidelity
    finally:
        fidelity.uninstall()


class SlowCalls:
    """Delays the next ``times`` calls of ``operation`` naming ``repository`` on one
    aiobotocore ECR client by ``seconds`` (asyncio sleep before the request is sent).
    ``started`` is set when a delayed call begins waiting."""

    def __init__(self, repository: str, seconds: float, *, times: int, operation: str) -> None:
        self.repository = repository
        self.seconds = seconds
        self.left = times
        self.operation = operation
        self.started = asyncio.Event()

    async def __call__(self, request: Any, **_: Any) -> None:
        body = request.body
        try:
            params = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
        except ValueError:
            return
        if self.left <= 0 or params.get("repositoryName") != self.repository:
            return
        self.left -= 1
        self.started.set()
        await asyncio.sleep(self.seconds)


def slow_calls(
    client: Any,
    repository: str,
    seconds: float,
    *,
    times: int = 1,
    operation: str = "PutImage",
) -> SlowCalls:
    """Make ``client``'s next ``times`` ``operation`` calls on ``repository`` slow."""
    hook = SlowCalls(repository, seconds, times=times, operation=operation)
    client.meta.events.register(f"before-send.ecr.{operation}", hook)
    return hook
