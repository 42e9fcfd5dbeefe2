"""Every error code pushgate answers with, defined once.

Each ``Code`` names its HTTP status, whether a caller may retry it, the client's
exception class, the CLI's exit code and where it is raised. The rest is derived from
this table: the domain errors' ``code`` and ``retryable``, the API's statuses, the
client's exception per code, the CLI's exit codes and README's two tables
(``scripts/errors_table.py``). Standard library only: the client install imports it.

Statuses: a retryable code answers 502, 503 or 504, the statuses generic HTTP clients
and proxies retry. A server-side fault that retrying cannot cure answers 500, so that
no client spends its deadline on it: ``backend_rejected`` (DynamoDB refused the call:
permissions, a missing table, an operation the backend lacks, an item it will not
store) and ``registry_refused`` (ECR refused the call for another reason than the
request, e.g. AccessDenied). They are server faults, not bad input: input is checked
before any backend call and refused with a 4xx. ``kms_error`` keeps the 502 ECR's
error table gives it, though the service does not retry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Exit(IntEnum):
    """Exit codes of the CLI's client commands."""

    OK = 0
    FAILED = 1
    INVALID = 2
    CONFLICT = 3
    BUSY = 4
    UNREACHABLE = 5
    REGISTRY = 6
    NOT_FOUND = 7
    UNAUTHORIZED = 8


#: What each exit code means, for README's table.
EXIT_MEANINGS: dict[Exit, str] = {
    Exit.OK: "`pushed`, `unchanged` or `superseded` (or the data asked for)",
    Exit.FAILED: "anything unexpected",
    Exit.INVALID: "invalid input (arguments, an unreadable file, a request or manifest refused)",
    Exit.CONFLICT: "conflict: the tag is immutable",
    Exit.BUSY: "busy: still refused when the deadline ran out",
    Exit.UNREACHABLE: "the service is unreachable",
    Exit.REGISTRY: "the registry or the service's backend failed",
    Exit.NOT_FOUND: "not found",
    Exit.UNAUTHORIZED: "not authorized",
}


@dataclass(frozen=True, slots=True)
class Code:
    """One error code. ``status`` is None for the client's own codes (no answer)."""

    name: str
    status: int | None
    exit: Exit
    client: str  # the exception class of service.client.errors
    source: str  # domain, auth, http (the framework's own answers), middleware, api, client
    meaning: str = field(kw_only=True)
    retryable: bool = field(default=False, kw_only=True)


#: The statuses generic HTTP clients retry: only retryable codes answer with them.
RETRY_STATUSES = frozenset({502, 503, 504})

_CODES = [
    Code("invalid_request", 422, Exit.INVALID, "InvalidRequest", "domain",
         meaning="`field` and `reason`; checked before any lease is taken"),
    Code("unauthorized", 401, Exit.UNAUTHORIZED, "Unauthorized", "auth",
         meaning="tokens on: no token, or an unknown one"),
    Code("forbidden", 403, Exit.UNAUTHORIZED, "Unauthorized", "auth",
         meaning="the repository is outside the token's scopes"),
    Code("payload_too_large", 413, Exit.INVALID, "PayloadTooLarge", "middleware",
         meaning="the body is over `PUSHGATE_MAX_BODY_BYTES`"),
    Code("request_timeout", 408, Exit.FAILED, "ApiError", "middleware",
         meaning="the body did not arrive whole within `PUSHGATE_BODY_TIMEOUT_SECONDS`; "
         "the connection is closed"),
    Code("not_found", 404, Exit.NOT_FOUND, "NotFound", "http",
         meaning="no such endpoint"),
    Code("method_not_allowed", 405, Exit.FAILED, "ApiError", "http",
         meaning="the endpoint does not take that method (`Allow` names those it takes)"),
    Code("repository_not_found", 404, Exit.NOT_FOUND, "RepositoryNotFound", "domain",
         meaning="the repository does not exist in ECR"),
    Code("tag_not_found", 404, Exit.NOT_FOUND, "TagNotFound", "domain",
         meaning="pushgate has recorded no push of the tag"),
    Code("image_not_found", 404, Exit.NOT_FOUND, "ImageNotFound", "domain",
         meaning="no image of that digest in the repository (a promotion's source)"),
    Code("tag_immutable", 409, Exit.CONFLICT, "TagImmutable", "domain",
         meaning="the immutable tag names another image: `existing_digest`"),
    Code("manifest_rejected", 400, Exit.INVALID, "ManifestRejected", "domain",
         meaning="ECR refused the manifest"),
    Code("layers_not_found", 400, Exit.INVALID, "ManifestRejected", "domain",
         meaning="ECR lacks layers the manifest names: `digests`"),
    Code("referenced_images_not_found", 400, Exit.INVALID, "ManifestRejected", "domain",
         meaning="ECR lacks manifests the index names"),
    Code("digest_mismatch", 422, Exit.INVALID, "ManifestRejected", "domain",
         meaning="the manifest bytes hash to another digest than the one expected "
                 "(`expected_digest`, or ECR's own check)"),
    Code("quota_exceeded", 400, Exit.REGISTRY, "QuotaExceeded", "domain",
         meaning="an ECR quota, e.g. images per repository; waiting does not help"),
    Code("lease_timeout", 503, Exit.BUSY, "LeaseTimeout", "domain", retryable=True,
         meaning="another push held the tag's lease for the whole wait: `holder`, `expires_at`"),
    Code("lease_lost", 503, Exit.BUSY, "LeaseLost", "domain", retryable=True,
         meaning="the lease ran out during the push; the record was not written"),
    Code("registry_throttled", 503, Exit.BUSY, "RegistryThrottled", "domain", retryable=True,
         meaning="ECR (or the account's PutImage budget) kept throttling"),
    Code("backend_unavailable", 503, Exit.BUSY, "ServiceUnavailable", "domain", retryable=True,
         meaning="DynamoDB failed or did not answer: `cause`"),
    Code("registry_error", 502, Exit.REGISTRY, "RegistryFault", "domain", retryable=True,
         meaning="ECR failed (5xx, unreachable) after the service's retries: `cause`"),
    Code("registry_timeout", 502, Exit.REGISTRY, "RegistryFault", "domain", retryable=True,
         meaning="an ECR call outlived its time"),
    Code("kms_error", 502, Exit.REGISTRY, "RegistryError", "domain",
         meaning="KMS refused the encrypted repository's key: `kms_error`, `kms_message`"),
    Code("registry_refused", 500, Exit.REGISTRY, "RegistryError", "domain",
         meaning="ECR refused the call for a reason other than the request (e.g. AccessDenied): "
                 "`cause`"),
    Code("backend_rejected", 500, Exit.REGISTRY, "ServerError", "domain",
         meaning="DynamoDB refused the call for good (permissions, a missing table, an "
                 "unsupported operation, an item it will not store): `cause`"),
    Code("internal_error", 500, Exit.FAILED, "ServerError", "api",
         meaning="a bug; the traceback is in the service's log"),
    Code("service_unreachable", None, Exit.UNREACHABLE, "ServiceUnreachable", "client",
         retryable=True, meaning="no answer (connection refused, timeouts) before the deadline"),
    Code("unexpected_answer", None, Exit.FAILED, "ApiError", "client",
         meaning="the answer is not pushgate's (is `PUSHGATE_URL` right?)"),
]  # fmt: skip

#: Every code by name.
CODES: dict[str, Code] = {code.name: code for code in _CODES}

#: The code that stands for an answer whose own code is unknown (a proxy's 502, an older
#: or newer service), and for the framework's own answers, by HTTP status.
BY_STATUS: dict[int, Code] = {
    400: CODES["invalid_request"],
    401: CODES["unauthorized"],
    403: CODES["forbidden"],
    404: CODES["not_found"],
    405: CODES["method_not_allowed"],
    408: CODES["request_timeout"],
    413: CODES["payload_too_large"],
    422: CODES["invalid_request"],
    500: CODES["internal_error"],
    502: CODES["registry_error"],
    503: CODES["backend_unavailable"],
    504: CODES["registry_timeout"],
}


def code(name: str) -> Code:
    """The table's entry for ``name``; a KeyError names a code the table lacks."""
    return CODES[name]


def for_status(status: int) -> Code:
    """The code standing for an HTTP status whose own code is unknown: its entry in
    ``BY_STATUS``, else ``invalid_request`` for a 4xx and ``internal_error`` otherwise."""
    if status in BY_STATUS:
        return BY_STATUS[status]
    if 400 <= status < 500:  # noqa: PLR2004 - client errors
        return CODES["invalid_request"]
    return CODES["internal_error"]


def lookup(name: str, status: int) -> Code:
    """The entry for an answer's code, or the one its status stands for."""
    return CODES.get(name) or for_status(status)
