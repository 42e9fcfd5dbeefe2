"""Errors raised by :mod:`locks`. One root, context on attributes.

::

    LockError
    ├── LeaseUnavailable      .key, .holder, .expires_at
    │   └── AcquireTimeout    .waited_ms
    ├── LeaseLost             renew/release found another token, or the lease ran out
    ├── LockStateError        misuse (also a RuntimeError)
    └── LockBackendError      .code, .cause: a DynamoDB error that is not a lost race
        └── TableNotFound     .table_name

Third-party errors are translated at the driver boundary and chained with ``from``.
"""

from __future__ import annotations


class LockError(Exception):
    """Root of every error this package raises."""


class LeaseUnavailable(LockError):
    """The lease is held by someone else (``timeout=0`` or ``try`` semantics)."""

    def __init__(self, key: str, holder: str | None, expires_at: int | None) -> None:
        self.key = key
        self.holder = holder
        self.expires_at = expires_at
        super().__init__(f"lease {key!r} is held by {holder!r} until {expires_at} (epoch ms)")


class AcquireTimeout(LeaseUnavailable):
    """The lease stayed held by others for the whole timeout."""

    def __init__(
        self, key: str, holder: str | None, expires_at: int | None, waited_ms: float
    ) -> None:
        super().__init__(key, holder, expires_at)
        self.waited_ms = waited_ms
        self.args = (f"gave up on lease {key!r} after {waited_ms:.0f} ms; held by {holder!r}",)


class LeaseLost(LockError):
    """The lease can no longer be trusted: another holder may have the key.

    Raised by ``ensure_held()``, by ``renew()`` when the conditional write fails,
    and when leaving a ``with`` block whose lease was lost while held.
    """

    def __init__(self, key: str, token: int, reason: str) -> None:
        self.key = key
        self.token = token
        self.reason = reason
        super().__init__(f"lease {key!r} (token {token}) lost: {reason}")


class LockStateError(LockError, RuntimeError):
    """The API was used out of order (e.g. a closed lock)."""


class LockBackendError(LockError):
    """DynamoDB answered with an error that retries did not cure."""

    def __init__(self, message: str, *, code: str | None, cause: BaseException | None) -> None:
        self.code = code
        self.cause = cause
        super().__init__(message)


class TableNotFound(LockBackendError):
    """The lease table does not exist (call ``ensure_table()``)."""

    def __init__(self, table_name: str, cause: BaseException | None) -> None:
        self.table_name = table_name
        super().__init__(
            f"DynamoDB table {table_name!r} does not exist; create it with ensure_table()",
            code="ResourceNotFoundException",
            cause=cause,
        )
