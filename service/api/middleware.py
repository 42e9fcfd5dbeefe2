"""Binds ``request_id`` (from ``X-Request-ID`` or a new one) into structlog's context
and echoes it on the answer; refuses bodies larger than ``max_body_bytes`` with 413
``payload_too_large``: at once when Content-Length declares it, and as soon as a
streamed (chunked) body passes the cap, before the app parses it."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BLOB_UPLOAD = re.compile(r"/v2/.+/blobs/uploads/?[^/]*")


class _BodyTooLarge(BaseException):
    """Raised from ``receive`` when a body without Content-Length grows past the cap.

    A BaseException so the app's catch-all 500 handler lets it through to us."""


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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
        if _BLOB_UPLOAD.fullmatch(scope.get("path", "")):
            # blobs stream to ECR in parts, never held whole: no body cap applies
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                structlog.contextvars.clear_contextvars()
            return
        try:
            if self._too_large(headers.get(b"content-length", b"")):
                await self._refuse(send_with_id)
                return
            received = 0

            async def capped_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise _BodyTooLarge
                return message

            try:
                await self.app(scope, capped_receive, send_with_id)
            except _BodyTooLarge:
                await self._refuse(send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()

    def _too_large(self, declared: bytes) -> bool:
        return declared.isdigit() and int(declared) > self.max_body_bytes

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "payload_too_large",
                "message": f"The request body exceeds {self.max_body_bytes} bytes.",
                "max_body_bytes": self.max_body_bytes,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
