"""The ``/v2/`` requests of ``push_image`` and how their answers read: the client's errors
from the spec's error body (pushgate's own code, in ``detail.pushgate``, first), upload
locations kept on the server asked, and which failures are worth another attempt."""

from __future__ import annotations

from typing import Any

import httpx

from service.client.errors import (
    BY_CODE,
    ApiError,
    InvalidRequest,
    ManifestRejected,
    RegistryThrottled,
    RepositoryNotFound,
    Retryable,
    ServiceUnreachable,
    Unauthorized,
    error_class,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_MESSAGE = 500  # of a registry's error message, as shown to the user


def send(http: httpx.Client, method: str, url: str, **options: object) -> httpx.Response:
    try:
        response: httpx.Response = http.request(method, url, **options)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"{http.base_url} did not answer: {exc}") from exc
    return response


def upload_location(response: httpx.Response) -> str:
    """Where the upload goes on; only on the server asked, which gets the token."""
    value: str | None = response.headers.get("location")
    if not value:
        raise ApiError(response.status_code, "unexpected_answer", "no Location for the upload")
    asked = response.request.url
    url = asked.join(value)
    if (url.scheme, url.host, url.port) != (asked.scheme, asked.host, asked.port):
        raise ApiError(
            response.status_code,
            "unexpected_answer",
            f"the upload's Location {value[:200]!r} is on another server",
        )
    return str(url)


def check(response: httpx.Response) -> None:
    """Raise the client error a ``/v2/`` error answer stands for: pushgate's own code when
    the answer carries one (``detail.pushgate``), else one chosen by the status."""
    if response.is_success:
        return
    code, message = f"http_{response.status_code}", ""
    details: dict[str, Any] = {}
    try:
        body = response.json()
        error = body["errors"][0]
        details = error.get("detail") if isinstance(error.get("detail"), dict) else {}
        code = str(details.get("pushgate") or error.get("code") or code)
        message = str(error.get("message") or "")[:MAX_MESSAGE]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    message = message or f"{response.request.method} answered HTTP {response.status_code}"
    retry_after = response.headers.get("retry-after")
    seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
    status = response.status_code
    cls = BY_CODE.get(code) or _OCI_ERRORS.get(code)
    if cls is None:
        too_many = status == httpx.codes.TOO_MANY_REQUESTS
        cls = Retryable if too_many else error_class(status, code)
    raise cls(status, code, f"{message} ({code})", details, seconds)


#: the spec's codes (answers without pushgate's own) -> the client's errors
_OCI_ERRORS: dict[str, type[ApiError]] = {
    "NAME_UNKNOWN": RepositoryNotFound,
    "NAME_INVALID": InvalidRequest,
    "MANIFEST_INVALID": ManifestRejected,
    "MANIFEST_BLOB_UNKNOWN": ManifestRejected,
    "DIGEST_INVALID": ManifestRejected,
    "BLOB_UPLOAD_INVALID": ManifestRejected,
    "SIZE_INVALID": ManifestRejected,
    "UNAUTHORIZED": Unauthorized,
    "DENIED": Unauthorized,
    "TOOMANYREQUESTS": RegistryThrottled,
}


def retry_hook(exc: Exception) -> bool | float:
    """Whether (or after how long) a failed step is tried again: no answer, a 429 or a
    5xx (pushgate's 429 may carry a non-retryable class's code, e.g. registry_error)."""
    if isinstance(exc, ServiceUnreachable):
        return True
    if not isinstance(exc, ApiError):
        return False
    if not isinstance(exc, Retryable) and exc.status not in RETRY_STATUSES:
        return False
    return True if exc.retry_after is None else max(0.1, exc.retry_after)
