"""Settings from environment variables (prefix ``PUSHGATE_``), built in ``main.py`` and
passed down; tests construct their own.

AWS itself is configured the AWS way: the standard credential chain, endpoint overrides
``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_ECR`` (or ``AWS_ENDPOINT_URL``), which
botocore reads itself, and the region as AWS SDKs resolve it: ``PUSHGATE_REGION``, else
``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's ``region`` (the installed
botocore reads only the last two, so ``resolve_region`` reads ``AWS_REGION`` first).

===================================== ================== ==========================================
variable                              default            meaning
===================================== ================== ==========================================
PUSHGATE_REGION                       (AWS chain)        region for DynamoDB and ECR
PUSHGATE_LEASE_TABLE                  pushgate-leases    leases, each carrying its tag's record
PUSHGATE_HISTORY_TABLE                pushgate-history   history of every push
PUSHGATE_LEASE_SECONDS                30                 lease length
PUSHGATE_HEARTBEAT_SECONDS            (lease / 3)        lease renewal period
PUSHGATE_MAX_CLOCK_SKEW_SECONDS       1                  clock skew the leases stay safe under
PUSHGATE_LEASE_MARGIN_SECONDS         2                  an ECR call ends this long before expiry
PUSHGATE_ECR_TIMEOUT_SECONDS          10                 longest single PutImage call
PUSHGATE_ECR_READ_TIMEOUT_SECONDS     5                  BatchGetImage / DescribeRepositories
PUSHGATE_ECR_ATTEMPTS                 4                  PutImage attempts on throttling / 5xx
PUSHGATE_ECR_BACKOFF_BASE_SECONDS     0.2                first backoff ceiling (full jitter)
PUSHGATE_ECR_BACKOFF_MAX_SECONDS      5                  largest backoff ceiling
PUSHGATE_THROTTLE_RETRY_AFTER_SECONDS 2                  Retry-After of registry_throttled
PUSHGATE_DEFAULT_WAIT_SECONDS         30                 lease wait when a push names none
PUSHGATE_MAX_WAIT_SECONDS             120                largest wait_seconds accepted (<= 3600)
PUSHGATE_READY_TIMEOUT_SECONDS        3                  budget of each /readyz probe
PUSHGATE_MAX_BODY_BYTES               33554432 (32 MiB)  larger request bodies get 413
PUSHGATE_MAX_BLOB_UPLOADS             32                 blob uploads streaming at once (then 429)
PUSHGATE_REGISTRY_ID                  (caller's account) ECR registry (12 digits)
PUSHGATE_DYNAMODB_ENDPOINT_URL        (botocore's)       explicit endpoint; normally leave unset
PUSHGATE_ECR_ENDPOINT_URL             (botocore's)       explicit endpoint; normally leave unset
PUSHGATE_LOG_FORMAT                   json               json (production) or console
PUSHGATE_LOG_LEVEL                    info               structlog level
PUSHGATE_AUTH_TOKENS_FILE             (none)             JSON file: hashed bearer tokens, scopes
PUSHGATE_AUTH_TOKENS                  (none)             the same JSON inline
PUSHGATE_AUTH                         tokens             tokens (no tokens: refuses to start) or off
PUSHGATE_METRICS_OPEN                 0                  1: /metrics needs no token
PUSHGATE_HEADER_TIMEOUT_SECONDS       10                 headers must arrive within; else closed
PUSHGATE_BODY_TIMEOUT_SECONDS         30                 a body must arrive whole within; else 408
PUSHGATE_KEEP_ALIVE_SECONDS           5                  idle keep-alive connections close after
PUSHGATE_PUTIMAGE_BUDGET              1                  1: PutImage waits for the shared budget
PUSHGATE_PUTIMAGE_RATE_PER_SECOND     10                 the account's PutImage quota (per Region)
PUSHGATE_PUTIMAGE_BUDGET_SHARE        0.95               share of the quota pushgate schedules
PUSHGATE_BUDGET_TABLE                 pushgate-budget    the budget's schedule (one item per scope)
PUSHGATE_BUDGET_MAX_WAIT_SECONDS      30                 longest wait for a PutImage slot
PUSHGATE_COALESCE                     1                  0: every waiting push runs on its own
PUSHGATE_OIDC_CONFIG                  (none)             JSON: trusted OIDC issuers and claim rules
PUSHGATE_OIDC_CONFIG_FILE             (none)             the same JSON in a file
PUSHGATE_OIDC_LEEWAY_SECONDS          60                 clock skew allowed on exp/nbf/iat
PUSHGATE_OIDC_REFRESH_SECONDS         30                 least time between two JWKS fetches
===================================== ================== ==========================================
"""

from __future__ import annotations

import os
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.domain.limits import MAX_WAIT_SECONDS


def resolve_region() -> str | None:
    """The region as AWS SDKs find it: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the
    profile's ``region``; None when nothing names one (or the profile does not exist)."""
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    import botocore.exceptions  # noqa: PLC0415 - only when the environment names none
    import botocore.session  # noqa: PLC0415

    try:
        region = botocore.session.Session().get_config_variable("region")
    except botocore.exceptions.BotoCoreError:
        return None
    return str(region) if region else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUSHGATE_", frozen=True, extra="ignore")

    region: str | None = Field(default=None, validate_default=True)
    lease_table: str = "pushgate-leases"
    history_table: str = "pushgate-history"

    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    max_clock_skew_seconds: float = Field(default=1.0, ge=0)
    lease_margin_seconds: float = Field(default=2.0, ge=0)

    ecr_timeout_seconds: float = Field(default=10.0, gt=0)
    ecr_read_timeout_seconds: float = Field(default=5.0, gt=0)
    ecr_attempts: int = Field(default=4, ge=1, le=10)
    ecr_backoff_base_seconds: float = Field(default=0.2, gt=0)
    ecr_backoff_max_seconds: float = Field(default=5.0, gt=0)
    throttle_retry_after_seconds: float = Field(default=2.0, ge=0)

    default_wait_seconds: float = Field(default=30.0, ge=0)
    max_wait_seconds: float = Field(default=120.0, ge=0, le=MAX_WAIT_SECONDS)
    ready_timeout_seconds: float = Field(default=3.0, gt=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_blob_uploads: int = Field(default=32, ge=1, le=10_000)

    registry_id: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    dynamodb_endpoint_url: str | None = None
    ecr_endpoint_url: str | None = None

    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # bearer tokens (service.auth); the API is open only with auth="off", said explicitly
    auth_tokens_file: str | None = None
    auth_tokens: str | None = None
    auth: Literal["tokens", "off"] = "tokens"
    metrics_open: bool = False

    # slow clients (service.server, service.api.middleware)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    keep_alive_seconds: int = Field(default=5, ge=1)

    # PutImage budget and coalescing (service.adapters.budget, service.domain.coalesce)
    putimage_budget: bool = True
    putimage_rate_per_second: float = Field(default=10.0, gt=0)
    putimage_budget_share: float = Field(default=0.95, gt=0, le=1)
    budget_table: str = "pushgate-budget"
    budget_max_wait_seconds: float = Field(default=30.0, ge=0)
    coalesce: bool = True

    @field_validator("region")
    @classmethod
    def _region(cls, region: str | None) -> str | None:
        return region or resolve_region()

    # OIDC ID tokens from CI systems as bearer tokens (service.oidc)
    oidc_config: str | None = None
    oidc_config_file: str | None = None
    oidc_leeway_seconds: float = Field(default=60.0, ge=0, le=300)
    oidc_refresh_seconds: float = Field(default=30.0, ge=1)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.lease_margin_seconds >= self.lease_seconds:
            raise ValueError("lease_margin_seconds must be shorter than lease_seconds")
        if self.default_wait_seconds > self.max_wait_seconds:
            raise ValueError("default_wait_seconds must not exceed max_wait_seconds")
        return self
