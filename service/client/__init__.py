"""The Python client of pushgate: ``PushClient`` (sync) and ``AsyncPushClient``.

Needs only httpx: importing it pulls in neither FastAPI nor aioboto3.
"""

from service.client._async import AsyncPushClient
from service.client._base import RetryPolicy, split_ref
from service.client._sync import PushClient
from service.client.errors import (
    ApiError,
    ImageNotFound,
    InvalidRequest,
    LeaseLost,
    LeaseTimeout,
    ManifestRejected,
    NotFound,
    PayloadTooLarge,
    PushgateError,
    QuotaExceeded,
    RegistryError,
    RegistryFault,
    RegistryThrottled,
    RepositoryNotFound,
    Retryable,
    ServerError,
    ServiceUnavailable,
    ServiceUnreachable,
    TagImmutable,
    TagNotFound,
    Unauthorized,
)
from service.client.images import ImagePushResult, push_image
from service.client.models import (
    DigestPushResult,
    HistoryEntry,
    HistoryPage,
    PushResult,
    TagAnswer,
    TagsResult,
    TagStatus,
)

__all__ = [
    "ApiError",
    "AsyncPushClient",
    "DigestPushResult",
    "HistoryEntry",
    "HistoryPage",
    "ImageNotFound",
    "ImagePushResult",
    "InvalidRequest",
    "LeaseLost",
    "LeaseTimeout",
    "ManifestRejected",
    "NotFound",
    "PayloadTooLarge",
    "PushClient",
    "PushResult",
    "PushgateError",
    "QuotaExceeded",
    "RegistryError",
    "RegistryFault",
    "RegistryThrottled",
    "RepositoryNotFound",
    "RetryPolicy",
    "Retryable",
    "ServerError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "TagAnswer",
    "TagImmutable",
    "TagNotFound",
    "TagStatus",
    "TagsResult",
    "Unauthorized",
    "push_image",
    "split_ref",
]
