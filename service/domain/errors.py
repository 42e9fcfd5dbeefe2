"""Errors of the push use case. One root; each class takes its ``code`` and ``retryable``
from ``service.codes`` (whose HTTP statuses only ``service.api`` reads).

::

    PushError                       .code, .retryable, .retry_after, details()
    ├── InvalidRequest              invalid_request       .field, .reason
    ├── TagNotFound                 tag_not_found
    ├── LeaseTimeout                lease_timeout         .holder, .expires_at
    ├── LeaseLost                   lease_lost            .observed_digest
    ├── BackendUnavailable          backend_unavailable   DynamoDB failed; retryable
    │   └── BackendRejected         backend_rejected      refused for good; .deployment
    ├── TagImmutable                tag_immutable         .existing_digest
    ├── RepositoryNotFound          repository_not_found
    ├── ManifestRejected            manifest_rejected     ECR refused the manifest
    │   ├── LayersNotFound          layers_not_found      .digests
    │   ├── ReferencedImagesNotFound referenced_images_not_found
    │   └── DigestMismatch          digest_mismatch
    ├── QuotaExceeded               quota_exceeded        not retryable (ECR LimitExceededException)
    └── RegistryError               registry_refused      ECR refused the call (not retryable)
        ├── RegistryThrottled       registry_throttled    retryable, .retry_after
        ├── RegistryFault           registry_error        ServerException, 5xx, unreachable
        ├── RegistryTimeout         registry_timeout      the call outlived its budget
        └── KmsFailure              kms_error             .kms_error text

Adapters translate third-party errors into these at the boundary, always ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any

from service import codes


class PushError(Exception):
    """Root of every error the push API answers with.

    A subclass names its code, ``class TagImmutable(PushError, code="tag_immutable")``,
    and takes the code's retryability from the table; a subclass naming none keeps its
    base's."""

    code = "internal_error"
    retryable = False

    def __init_subclass__(cls, *, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            entry = codes.code(code)
            cls.code = entry.name
            cls.retryable = entry.retryable

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        """Extra JSON fields of the error answer."""
        return {}


class InvalidRequest(PushError, code="invalid_request"):
    """A request field fails a rule ECR or pushgate enforces; checked before any lease."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"Field '{field}' is invalid: {reason}.")
        self.field = field
        self.reason = reason

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason}


class TagNotFound(PushError, code="tag_not_found"):
    def __init__(self, repository: str, tag: str) -> None:
        super().__init__(f"No push of {repository}:{tag} has been recorded.")
        self.repository = repository
        self.tag = tag


class LeaseTimeout(PushError, code="lease_timeout"):
    """The repo:tag lease stayed held by another push for the whole wait."""

    def __init__(
        self, key: str, *, holder: str | None, expires_at: float | None, retry_after: float
    ) -> None:
        super().__init__(
            f"The lease on {key} is held by another push; try again later.",
            retry_after=retry_after,
        )
        self.key = key
        self.holder = holder
        self.expires_at = expires_at

    def details(self) -> dict[str, Any]:
        return {"holder": self.holder, "expires_at": self.expires_at}


class LeaseLost(PushError, code="lease_lost"):
    """The lease ran out or was taken while this push held it; the record was not written."""

    def __init__(
        self,
        key: str,
        *,
        observed_digest: str | None = None,
        digest: str | None = None,
        retry_after: float | None = 1.0,
    ) -> None:
        super().__init__(
            f"The lease on {key} was lost during the push; the tag was read back and "
            "the push should be retried.",
            retry_after=retry_after,
        )
        self.key = key
        self.observed_digest = observed_digest
        self.digest = digest

    def details(self) -> dict[str, Any]:
        return {"digest": self.digest, "observed_digest": self.observed_digest}


class BackendUnavailable(PushError, code="backend_unavailable"):
    """DynamoDB (leases, records or history) failed or did not answer; worth retrying.
    The message names the call, never DynamoDB's own text (the log has it)."""

    def __init__(
        self, message: str, *, cause_code: str | None = None, retry_after: float | None = 1.0
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.cause_code = cause_code

    def details(self) -> dict[str, Any]:
        return {"cause": self.cause_code}


class BackendRejected(BackendUnavailable, code="backend_rejected"):
    """DynamoDB refused the call for a reason retrying cannot cure.

    ``deployment`` is True when the fault is the deployment's whatever the request
    (permissions, a missing table, an operation the backend lacks): ``/readyz`` then
    reports the service not ready. It is False for a refusal of this call's data (a
    ValidationException), which one request can provoke and must not take a replica
    out of service."""

    def __init__(self, message: str, *, cause_code: str | None, deployment: bool) -> None:
        super().__init__(message, cause_code=cause_code, retry_after=None)
        self.deployment = deployment


class TagImmutable(PushError, code="tag_immutable"):
    def __init__(self, repository: str, tag: str, *, existing_digest: str | None) -> None:
        super().__init__(
            f"Tag {tag} of repository {repository} is immutable and already names another image."
        )
        self.existing_digest = existing_digest

    def details(self) -> dict[str, Any]:
        return {"existing_digest": self.existing_digest}


class RepositoryNotFound(PushError, code="repository_not_found"):
    def __init__(self, repository: str) -> None:
        super().__init__(f"Repository {repository} does not exist in the registry.")
        self.repository = repository

    def details(self) -> dict[str, Any]:
        return {"repository": self.repository}


class ManifestRejected(PushError, code="manifest_rejected"):
    """ECR refused the manifest itself; retrying the same request cannot succeed."""

    def __init__(self, message: str, *, registry_message: str = "") -> None:
        super().__init__(message)
        self.registry_message = registry_message

    def details(self) -> dict[str, Any]:
        return {"registry_message": self.registry_message}


class LayersNotFound(ManifestRejected, code="layers_not_found"):
    def __init__(self, digests: list[str], *, registry_message: str = "") -> None:
        super().__init__(
            "The manifest references layers that are not in the repository.",
            registry_message=registry_message,
        )
        self.digests = digests

    def details(self) -> dict[str, Any]:
        return {**super().details(), "digests": self.digests}


class ReferencedImagesNotFound(ManifestRejected, code="referenced_images_not_found"):
    def __init__(self, *, registry_message: str = "") -> None:
        super().__init__(
            "The image index references manifests that are not in the repository.",
            registry_message=registry_message,
        )


class DigestMismatch(ManifestRejected, code="digest_mismatch"):
    def __init__(self, digest: str, *, registry_message: str = "") -> None:
        super().__init__(
            f"The registry computed a digest other than {digest} for the manifest bytes.",
            registry_message=registry_message,
        )
        self.digest = digest

    def details(self) -> dict[str, Any]:
        return {**super().details(), "digest": self.digest}


class QuotaExceeded(PushError, code="quota_exceeded"):
    """An ECR quota such as images per repository; waiting does not help."""

    def __init__(self, registry_message: str) -> None:
        super().__init__(f"A registry quota was exceeded: {registry_message}")
        self.registry_message = registry_message


class RegistryError(PushError, code="registry_refused"):
    """ECR failed in a way that is not the request's fault. Raised as such, ECR refused
    the call for good (AccessDenied, say); the subclasses are its other failures."""

    def __init__(
        self,
        message: str,
        *,
        cause_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.cause_code = cause_code

    def details(self) -> dict[str, Any]:
        return {"cause": self.cause_code}


class RegistryThrottled(RegistryError, code="registry_throttled"):
    """ECR, or the account's PutImage budget, refused the call for now."""


class RegistryFault(RegistryError, code="registry_error"):
    """ECR failed: ServerException, another 5xx, or no answer."""


class RegistryTimeout(RegistryError, code="registry_timeout"):
    """An ECR call outlived its time."""


class KmsFailure(RegistryError, code="kms_error"):
    def __init__(self, kms_error: str, message: str) -> None:
        super().__init__(f"KMS refused the operation: {message}", cause_code="KmsException")
        self.kms_error = kms_error
        self.kms_message = message

    def details(self) -> dict[str, Any]:
        return {"kms_error": self.kms_error, "kms_message": self.kms_message}
