"""The Python client of pushgate: ``PushClient`` (sync) and ``AsyncPushClient``.

Needs only httpx: importing it pulls in neither FastAPI nor aioboto3.
"""

from service.client._async import AsyncPushClient
from service.client._base import RetryPolicy, split_ref
from service.client._sync import PushClient
from service.client.errors import (
    ApiError,
    InvalidRequest,
    LeaseLost,
    LeaseTimeout,
    ManifestRejected,
    NotFound,
    PushgateError,
    QuotaExceeded,
    RegistryError,
    RegistryThrottled,
    RepositoryNotFound,
    Retryable,
    ServiceUnavailable,
    ServiceUnreachable,
    TagImmutable,
    TagNotFound,
    Unauthorized,
)
from service.client.images import ImagePushResult, push_image
from service.client.models import HistoryEntry, HistoryPage, PushResult, TagStatus

__all__ = [
    "ApiError",
    "AsyncPushClient",
    "HistoryEntry",
    "HistoryPage",
    "ImagePushResult",
    "InvalidRequest",
    "LeaseLost",
    "LeaseTimeout",
    "ManifestRejected",
    "NotFound",
    "PushClient",
    "PushResult",
    "PushgateError",
    "QuotaExceeded",
    "RegistryError",
    "RegistryThrottled",
    "RepositoryNotFound",
    "RetryPolicy",
    "Retryable",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "TagImmutable",
    "TagNotFound",
    "TagStatus",
    "Unauthorized",
    "push_image",
    "split_ref",
]
