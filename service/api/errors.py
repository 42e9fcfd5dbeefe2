"""Every error answer is built here: ``{"error": code, "message": sentence, ...details}``.

One handler maps the ``PushError`` tree (codes live on the classes, statuses in
``STATUS``); pydantic's validation errors become 422 ``invalid_request`` naming the field.
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.auth import AuthError
from service.domain.errors import (
    BackendUnavailable,
    InvalidRequest,
    LeaseLost,
    LeaseTimeout,
    ManifestRejected,
    PushError,
    QuotaExceeded,
    RegistryError,
    RegistryThrottled,
    RepositoryNotFound,
    TagImmutable,
    TagNotFound,
)

log = structlog.get_logger("pushgate.api")

#: HTTP status per error class; a subclass not listed takes its nearest listed base.
STATUS: dict[type[PushError], int] = {
    InvalidRequest: 422,
    TagNotFound: 404,
    RepositoryNotFound: 404,
    TagImmutable: 409,
    ManifestRejected: 400,  # layers_not_found, referenced_images_not_found, digest_mismatch
    QuotaExceeded: 400,  # not retryable: waiting does not raise an ECR quota
    LeaseTimeout: 503,
    LeaseLost: 503,
    BackendUnavailable: 503,
    RegistryThrottled: 503,
    RegistryError: 502,  # registry_error, registry_timeout, kms_error
    PushError: 500,
}


def status_of(exc: PushError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500  # pragma: no cover - PushError itself is in STATUS


def error_body(exc: PushError) -> dict[str, Any]:
    return {"error": exc.code, "message": exc.message, **exc.details()}


async def push_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PushError)  # noqa: S101 - registered for PushError only
    status = status_of(exc)
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    log.info("request_failed", status=status, error=exc.code, message=exc.message)
    return JSONResponse(error_body(exc), status_code=status, headers=headers)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid"}
    loc = [str(part) for part in first.get("loc", ()) if part not in {"body", "query", "path"}]
    field = ".".join(loc) or "body"
    reason = str(first.get("msg", "invalid")).rstrip(".")
    if first.get("type") == "json_invalid":
        field, reason = "body", "is not valid JSON"
    elif field == "body" and "json" not in request.headers.get("content-type", ""):
        # FastAPI reads a body as JSON only when the request says it is JSON
        reason = "must be a JSON object sent with content-type: application/json"
    body = error_body(InvalidRequest(field, reason))
    body["errors"] = [
        {"loc": [str(p) for p in e.get("loc", ())], "reason": str(e.get("msg", ""))} for e in errors
    ]
    log.info("request_invalid", field=field, reason=reason)
    return JSONResponse(body, status_code=422)


async def internal_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a push error: logged with its traceback, answered in the same shape."""
    log.error("request_crashed", exc_info=exc)
    return JSONResponse(
        {"error": "internal_error", "message": "The service failed unexpectedly."},
        status_code=500,
    )


async def auth_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)  # noqa: S101 - registered for AuthError only
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}  # noqa: PLR2004
    log.info("request_refused", status=exc.status, error=exc.code)
    return JSONResponse(
        {"error": exc.code, "message": exc.message}, status_code=exc.status, headers=headers
    )


#: Starlette's own answers (no such route, wrong method), in the API's error shape.
_HTTP_ERRORS = {
    404: ("not_found", "No such endpoint; the API is described at /docs."),
    405: ("method_not_allowed", "This endpoint does not take that method; see /docs."),
}


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    code, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", str(exc.detail)))
    return JSONResponse(
        {"error": code, "message": message}, status_code=exc.status_code, headers=exc.headers
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(AuthError, auth_error_handler)
    app.add_exception_handler(PushError, push_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)
