"""Errors of the pushgate client. One root; one class per error code of the API.

::

    PushgateError
    ├── ServiceUnreachable          no answer (connection refused, timeouts) within the deadline
    └── ApiError                    .status, .code, .message, .details
        ├── InvalidRequest          invalid_request       .field, .reason
        ├── NotFound
        │   ├── RepositoryNotFound  repository_not_found
        │   └── TagNotFound         tag_not_found
        ├── TagImmutable            tag_immutable         .existing_digest
        ├── ManifestRejected        layers_not_found, referenced_images_not_found, digest_mismatch
        ├── QuotaExceeded           quota_exceeded
        ├── Unauthorized            unauthorized / forbidden
        ├── Retryable               answers worth retrying (.retry_after)
        │   ├── LeaseTimeout        lease_timeout
        │   ├── LeaseLost           lease_lost
        │   ├── RegistryThrottled   registry_throttled
        │   └── ServiceUnavailable  backend_unavailable, other 503s
        └── RegistryError           registry_error, registry_timeout, kms_error (502)

``superseded`` and ``unchanged`` are results, not errors.
"""

from __future__ import annotations

from typing import Any


class PushgateError(Exception):
    """Root of every error the client raises."""


class ServiceUnreachable(PushgateError):
    """The service gave no answer before the deadline."""

    code = "service_unreachable"


class ApiError(PushgateError):
    """The service answered with an error document."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return None if value is None else str(value)

    @property
    def reason(self) -> str | None:
        value = self.details.get("reason")
        return None if value is None else str(value)


class NotFound(ApiError):
    pass


class RepositoryNotFound(NotFound):
    pass


class TagNotFound(NotFound):
    pass


class TagImmutable(ApiError):
    @property
    def existing_digest(self) -> str | None:
        value = self.details.get("existing_digest")
        return None if value is None else str(value)


class ManifestRejected(ApiError):
    pass


class QuotaExceeded(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Retryable(ApiError):
    """An answer that may succeed later; the client retries it within its deadline."""


class LeaseTimeout(Retryable):
    pass


class LeaseLost(Retryable):
    pass


class RegistryThrottled(Retryable):
    pass


class ServiceUnavailable(Retryable):
    pass


class RegistryError(ApiError):
    pass


BY_CODE: dict[str, type[ApiError]] = {
    "invalid_request": InvalidRequest,
    "repository_not_found": RepositoryNotFound,
    "tag_not_found": TagNotFound,
    "tag_immutable": TagImmutable,
    "layers_not_found": ManifestRejected,
    "referenced_images_not_found": ManifestRejected,
    "digest_mismatch": ManifestRejected,
    "manifest_rejected": ManifestRejected,
    "quota_exceeded": QuotaExceeded,
    "unauthorized": Unauthorized,
    "forbidden": Unauthorized,
    "lease_timeout": LeaseTimeout,
    "lease_lost": LeaseLost,
    "registry_throttled": RegistryThrottled,
    "backend_unavailable": ServiceUnavailable,
    "registry_error": RegistryError,
    "registry_timeout": RegistryError,
    "kms_error": RegistryError,
}


def error_class(status: int, code: str) -> type[ApiError]:
    """The class for an error code; unknown codes fall back on the status."""
    if code in BY_CODE:
        return BY_CODE[code]
    if status in {401, 403}:
        return Unauthorized
    if status == 404:  # noqa: PLR2004
        return NotFound
    if status == 422:  # noqa: PLR2004
        return InvalidRequest
    if status in {502, 504}:
        return RegistryError
    if status == 503:  # noqa: PLR2004
        return ServiceUnavailable
    return ApiError
