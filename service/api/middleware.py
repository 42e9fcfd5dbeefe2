"""ASGI middleware, outermost first:

- ``RequestContextMiddleware`` binds ``request_id`` (from ``X-Request-ID`` or a new one)
  into structlog's context and echoes it on the answer;
- ``AuthMiddleware`` checks the bearer token from the headers alone, before any body is
  read or parsed (401 ``unauthorized``); only the open paths (probes) skip it;
- ``BodyGuardMiddleware`` refuses bodies larger than ``max_body_bytes`` with 413
  ``payload_too_large`` (at once when Content-Length declares it, and as soon as a streamed
  body passes the cap) and bodies that do not arrive whole within ``timeout_seconds`` with
  408 ``request_timeout`` (a Content-Length larger than what is sent, a slow sender), then
  closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from service.auth import Authenticator, AuthError
from service.domain.errors import PushError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("pushgate.api")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BLOB_UPLOAD = re.compile(r"/v2/.+/blobs/uploads/?[^/]*")
_REGISTRY = re.compile(r"/v2(/|$)")


async def send_error(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An error answer in the API's shape, sent from a middleware."""
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id, method=scope.get("method"), path=scope.get("path")
        )
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()


class AuthMiddleware:
    """Puts the caller's :class:`~service.auth.Identity` in ``scope["state"]["identity"]``,
    or answers 401 without calling the app. Scopes (403) are checked by the routes, which
    know the repository."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, open_paths: frozenset[str]) -> None:
        self.app = app
        self.auth = auth
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.open_paths or _REGISTRY.match(path):
            # the registry front door answers auth itself, in the OCI shape and with the
            # Basic challenge registry clients expect, also before reading any body
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            identity = await self.auth.authenticate(authorization)
        except PushError as exc:  # an OIDC issuer's keys could not be fetched: retryable
            retry_after = str(max(1, math.ceil(exc.retry_after or 1)))
            await send_error(
                send,
                503,
                {"error": exc.code, "message": exc.message},
                [(b"retry-after", retry_after.encode())],
            )
            return
        except AuthError as exc:
            log.info("request_refused", status=exc.status, error=exc.code)
            await send_error(
                send,
                exc.status,
                {"error": exc.code, "message": exc.message},
                [(b"www-authenticate", b"Bearer")],
            )
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


class _BodyRefused(BaseException):
    """Raised from ``receive`` when the body is too large or too slow.

    A BaseException so the app's catch-all 500 handler lets it through to us."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # a blob streams to ECR in parts, never held whole: no size cap, and the timeout
        # bounds each wait for more of it rather than the whole (a large layer takes time)
        blob = bool(_BLOB_UPLOAD.fullmatch(scope.get("path", "")))
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if not blob and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self._too_large(), [(b"connection", b"close")])
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_seconds
        received = 0
        complete = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body only a disconnect comes: no deadline
                return await receive()
            try:
                wait_until = loop.time() + self.timeout_seconds if blob else deadline
                async with asyncio.timeout_at(wait_until):
                    message = await receive()
            except TimeoutError:
                raise _BodyRefused(408, self._too_slow()) from None
            if message["type"] != "http.request":
                complete = True
                return message
            received += len(message.get("body", b""))
            if received > self.max_body_bytes and not blob:
                raise _BodyRefused(413, self._too_large())
            complete = not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, watched_send)
        except _BodyRefused as refused:
            if started:
                raise
            log.info("request_body_refused", status=refused.status, received_bytes=received)
            # the rest of the body is not read: the connection cannot carry another request
            await send_error(send, refused.status, refused.body, [(b"connection", b"close")])

    def _too_large(self) -> dict[str, Any]:
        return {
            "error": "payload_too_large",
            "message": f"The request body exceeds {self.max_body_bytes} bytes.",
            "max_body_bytes": self.max_body_bytes,
        }

    def _too_slow(self) -> dict[str, Any]:
        return {
            "error": "request_timeout",
            "message": f"The request body did not arrive within {self.timeout_seconds:g} s.",
        }


class HeadMiddleware:
    """Answers ``HEAD`` as ``GET`` without the body (RFC 9110: a server that answers GET
    answers HEAD), so probes and caches that send HEAD get the same status and headers.
    The registry front door declares its own HEAD routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "HEAD"
            or _REGISTRY.match(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
