"""Errors of the pushgate client. One root; each code of ``service.codes`` names its class
here (``BY_CODE`` is built from that table), and a class is a ``Retryable`` exactly when
its codes are retryable.

::

    PushgateError
    ├── ServiceUnreachable          no answer (connection refused, timeouts) within the deadline
    └── ApiError                    .status, .code, .message, .details, .retryable
        ├── InvalidRequest          invalid_request       .field, .reason
        ├── PayloadTooLarge         payload_too_large
        ├── NotFound                not_found
        │   ├── RepositoryNotFound  repository_not_found
        │   ├── TagNotFound         tag_not_found
        │   └── ImageNotFound       image_not_found
        ├── TagImmutable            tag_immutable         .existing_digest
        ├── ManifestRejected        layers_not_found, referenced_images_not_found, digest_mismatch
        ├── QuotaExceeded           quota_exceeded
        ├── Unauthorized            unauthorized / forbidden
        ├── ServerError             internal_error, backend_rejected (500, not retried)
        ├── Retryable               answers worth retrying (.retry_after)
        │   ├── LeaseTimeout        lease_timeout
        │   ├── LeaseLost           lease_lost
        │   ├── RegistryThrottled   registry_throttled
        │   ├── ServiceUnavailable  backend_unavailable, other 503s
        │   └── RegistryFault       registry_error, registry_timeout (also a RegistryError)
        └── RegistryError           kms_error, registry_refused

``method_not_allowed`` and ``unexpected_answer`` (an answer that is not pushgate's) are
plain ``ApiError``.

``superseded`` and ``unchanged`` are results, not errors.
"""

from __future__ import annotations

from typing import Any

from service import codes


class PushgateError(Exception):
    """Root of every error the client raises."""


class ServiceUnreachable(PushgateError):
    """The service gave no answer before the deadline."""

    code = "service_unreachable"


class ApiError(PushgateError):
    """The service answered with an error document. ``retryable``: the answer may
    succeed later (the class is a ``Retryable``)."""

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

    @property
    def retryable(self) -> bool:
        return isinstance(self, Retryable)


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


class ImageNotFound(NotFound):
    """No image of that digest in the repository (image_not_found)."""


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
    """ECR failed or refused the call (kms_error, registry_refused)."""


class RegistryFault(RegistryError, Retryable):
    """ECR failed in a way worth retrying (registry_error, registry_timeout)."""


class PayloadTooLarge(ApiError):
    pass


class ServerError(ApiError):
    """The service failed in a way retrying cannot cure (internal_error, backend_rejected)."""


def _by_code() -> dict[str, type[ApiError]]:
    found: dict[str, type[ApiError]] = {}
    for entry in codes.CODES.values():
        cls = globals()[entry.client]
        if isinstance(cls, type) and issubclass(cls, ApiError):
            found[entry.name] = cls
    return found


#: The exception class of each code the service answers with (``service.codes``).
BY_CODE: dict[str, type[ApiError]] = _by_code()


def error_class(status: int, code: str) -> type[ApiError]:
    """The class for an error code; an unknown code takes the class of the code its
    status stands for (``service.codes.for_status``)."""
    if code in BY_CODE:
        return BY_CODE[code]
    return BY_CODE.get(codes.for_status(status).name, ApiError)
