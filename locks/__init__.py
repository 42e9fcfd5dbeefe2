"""DynamoDB leases with fencing tokens, for threads and asyncio.

See ``locks._protocol`` for the expiry model.
"""

from locks._async import AsyncLease, AsyncLeaseLock
from locks._models import Grant, LeaseInfo, LockConfig, lease_model
from locks._sync import Lease, LeaseLock
from locks.exceptions import (
    AcquireTimeout,
    LeaseLost,
    LeaseUnavailable,
    LockBackendError,
    LockError,
    LockStateError,
    TableNotFound,
)

__all__ = [
    "AcquireTimeout",
    "AsyncLease",
    "AsyncLeaseLock",
    "Grant",
    "Lease",
    "LeaseInfo",
    "LeaseLock",
    "LeaseLost",
    "LeaseUnavailable",
    "LockBackendError",
    "LockConfig",
    "LockError",
    "LockStateError",
    "TableNotFound",
    "lease_model",
]
