"""Every error answer is built here: ``{"error": code, "message": sentence, ...details}``.

Each code and its status come from ``service.codes``; every answer, whatever raised it,
goes through ``answer``, which bounds it: a string at ``MAX_TEXT`` characters (the
message at ``MAX_MESSAGE``), a list at ``MAX_ITEMS`` items, nesting at ``MAX_DEPTH``, so
no input comes back whole. Pydantic's validation errors become one 422
``invalid_request`` naming the first field, with at most ``MAX_ERRORS`` of the rest.

A ``BackendRejected`` that is the deployment's fault (permissions, a missing table) is
remembered for ``BACKEND_FAULT_SECONDS``; ``/readyz`` reports it (``backend_fault``).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service import codes
from service.auth import AuthError
from service.domain.errors import BackendRejected, InvalidRequest, PushError
from service.registry.protocol import RegistryError

log = structlog.get_logger("pushgate.api")

MAX_TEXT = 200
MAX_MESSAGE = 400
MAX_ITEMS = 50
MAX_KEYS = 30
MAX_DEPTH = 4
MAX_ERRORS = 10
BACKEND_FAULT_SECONDS = 60.0
_MORE = "..."


def status_of(exc: PushError) -> int:
    """The HTTP status of a push error: its code's, from the table (500 for a code the
    table lacks)."""
    return codes.lookup(exc.code, 500).status or 500


def bounded(value: Any, *, limit: int = MAX_TEXT, depth: int = 0) -> Any:
    """``value`` cut to size for an answer: long strings end in ``...``, long lists and
    objects keep their first entries, deep nesting becomes ``...``."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - len(_MORE)] + _MORE
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return _MORE
    if isinstance(value, Mapping):
        items = itertools.islice(value.items(), MAX_KEYS)
        return {bounded(str(k)): bounded(v, depth=depth + 1) for k, v in items}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [bounded(v, depth=depth + 1) for v in itertools.islice(value, MAX_ITEMS)]
    return bounded(str(value), limit=limit)


def answer(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one way an error answer is made, bounded in size."""
    body: dict[str, Any] = {"error": code, "message": bounded(message, limit=MAX_MESSAGE)}
    for key, value in itertools.islice((details or {}).items(), MAX_KEYS):
        if key not in body:
            body[bounded(key)] = bounded(value, depth=1)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


@dataclass(slots=True)
class BackendFault:
    """The last deployment fault DynamoDB answered with, and when (monotonic seconds)."""

    message: str
    at: float


def backend_fault(app: FastAPI, *, now: float | None = None) -> str | None:
    """The message of a deployment fault answered in the last ``BACKEND_FAULT_SECONDS``."""
    fault: BackendFault | None = getattr(app.state, "backend_fault", None)
    now = time.monotonic() if now is None else now
    if fault is None or now - fault.at > BACKEND_FAULT_SECONDS:
        return None
    return fault.message


async def push_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PushError)  # noqa: S101 - registered for PushError only
    entry = codes.lookup(exc.code, 500)
    status = status_of(exc)
    headers = {}
    if entry.retryable and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, BackendRejected) and exc.deployment:
        request.app.state.backend_fault = BackendFault(exc.message, time.monotonic())
    log.info("request_failed", status=status, error=entry.name, message=bounded(exc.message))
    return answer(status, entry.name, exc.message, exc.details(), headers)


def _field(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in {"body", "query", "path"}]
    return ".".join(loc) or "body"


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = exc.errors()
    first: Mapping[str, Any] = errors[0] if errors else {"loc": ("body",), "msg": "invalid"}
    field = bounded(_field(first))
    reason = bounded(str(first.get("msg", "invalid")).rstrip("."))
    if first.get("type") == "json_invalid":
        field, reason = "body", "is not valid JSON"
    elif field == "body" and "json" not in request.headers.get("content-type", ""):
        # FastAPI reads a body as JSON only when the request says it is JSON
        reason = "must be a JSON object sent with content-type: application/json"
    invalid = InvalidRequest(field, reason)
    listed = [
        {
            "loc": [bounded(str(part)) for part in e.get("loc", ())[:MAX_DEPTH]],
            "reason": bounded(str(e.get("msg", ""))),
        }
        for e in errors[:MAX_ERRORS]
    ]
    details = {**invalid.details(), "errors": listed, "error_count": len(errors)}
    log.info("request_invalid", field=field, reason=reason, error_count=len(errors))
    return answer(422, invalid.code, invalid.message, details)


async def internal_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a push error: logged with its traceback, answered in the same shape."""
    log.error("request_crashed", exc_info=exc)
    entry = codes.code("internal_error")
    assert entry.status is not None  # noqa: S101
    return answer(entry.status, entry.name, "The service failed unexpectedly.")


async def auth_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)  # noqa: S101 - registered for AuthError only
    entry = codes.lookup(exc.code, exc.status)
    assert entry.status is not None  # noqa: S101 - auth codes are answers
    headers = {"WWW-Authenticate": "Bearer"} if entry.status == 401 else {}  # noqa: PLR2004
    log.info("request_refused", status=entry.status, error=entry.name)
    return answer(entry.status, entry.name, exc.message, headers=headers)


#: Sentences for the framework's own answers, by code.
_HTTP_MESSAGES = {
    "not_found": "No such endpoint; the API is described at /docs.",
    "method_not_allowed": "This endpoint does not take that method; see /docs.",
}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The framework's own answers (no such route, wrong method, a body it could not
    parse) as the table's code for their status, at that code's status; under ``/v2/``
    in the registry spec's shape, as registry clients read it."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    entry = codes.for_status(exc.status_code)
    assert entry.status is not None  # noqa: S101 - for_status answers with answers
    headers = exc.headers or {}
    if request.url.path == "/v2" or request.url.path.startswith("/v2/"):
        unsupported = RegistryError(
            "UNSUPPORTED", "The registry API does not serve this.", status=exc.status_code
        )
        return JSONResponse(unsupported.body(), status_code=exc.status_code, headers=headers)
    if entry.name == "invalid_request":
        # 400 is FastAPI's answer to a body it could not decode (not UTF-8, too deep)
        body = exc.status_code == 400  # noqa: PLR2004
        invalid = InvalidRequest(
            "body" if body else "request",
            "is not UTF-8 JSON, or is nested too deeply" if body else str(exc.detail).rstrip("."),
        )
        return answer(entry.status, entry.name, invalid.message, invalid.details(), headers)
    message = _HTTP_MESSAGES.get(entry.name, str(exc.detail))
    return answer(entry.status, entry.name, message, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(AuthError, auth_error_handler)
    app.add_exception_handler(PushError, push_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)
