"""The OCI Distribution API's vocabulary, without I/O: error codes and their statuses,
references, ranges, upload locations and the build's sequence.

An upload's location carries its whole state, so any replica can continue it: ECR's
``uploadId`` and how many bytes ECR holds (``/v2/<name>/blobs/uploads/<uploadId>_<offset>``).
Nothing in it needs protecting: ECR scopes the upload to the repository (which the
caller's token must cover) and refuses a part that does not start where the last ended,
so a forged offset only breaks the forger's own upload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from service.domain.limits import (
    MAX_SEQUENCE,
    REPOSITORY_MAX,
    REPOSITORY_MIN,
    TAG_RE,
    json_too_deep,
)
from service.domain.models import DIGEST_RE

NAME_RE = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9-]{1,128}")
# ASCII digits only: str.isdigit() also takes '²' and other scripts' digits
OFFSET_RE = re.compile(r"[0-9]{1,15}")
SEQUENCE_RE = re.compile(r"[0-9]{1,19}")
CONTENT_RANGE_RE = re.compile(r"(?:bytes )?([0-9]{1,15})-([0-9]{1,15})")
#: the manifest (or index) annotation, and the header, that carry the build's sequence
SEQUENCE_ANNOTATION = "dev.pushgate.sequence"
SEQUENCE_HEADER = "pushgate-sequence"
#: ECR refuses parts under 5 MiB, except the last; clients are told so (OCI-Chunk-Min-Length)
MIN_CHUNK = 5 * 1024 * 1024

#: OCI error code -> HTTP status
STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "RANGE_INVALID": 416,
    "UNAVAILABLE": 503,
    "UNKNOWN": 502,
}


class RegistryError(Exception):
    """An answer in the spec's error shape; ``detail`` carries pushgate's own code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: dict[str, Any] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or {}
        self.status = status or STATUS[code]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message[:500]}
        if self.detail:
            error["detail"] = self.detail
        return {"errors": [error]}


def check_name(name: str) -> str:
    if not REPOSITORY_MIN <= len(name) <= REPOSITORY_MAX or not NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", "The repository name is not a valid ECR name.")
    return name


def check_digest(digest: str, *, code: str = "DIGEST_INVALID") -> str:
    if not DIGEST_RE.fullmatch(digest):
        raise RegistryError(code, "The digest must be sha256: and 64 lowercase hex digits.")
    return digest


def is_digest(reference: str) -> bool:
    return reference.startswith("sha256:")


def check_reference(reference: str) -> str:
    """A tag or a digest, as the manifest routes take it."""
    if is_digest(reference):
        return check_digest(reference, code="MANIFEST_INVALID")
    if not TAG_RE.fullmatch(reference):
        raise RegistryError(
            "MANIFEST_INVALID", "The tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}."
        )
    return reference


@dataclass(frozen=True, slots=True)
class Upload:
    """An upload in progress: ECR's id and the bytes ECR holds."""

    upload_id: str
    offset: int

    @property
    def session(self) -> str:
        return f"{self.upload_id}_{self.offset}"

    def location(self, name: str) -> str:
        return f"/v2/{name}/blobs/uploads/{self.session}"

    def range_header(self) -> str:
        """The spec's ``Range``: the inclusive last byte received (``0-0`` before any)."""
        return f"0-{max(0, self.offset - 1)}"

    @classmethod
    def parse(cls, session: str) -> Upload:
        upload_id, _, offset = session.rpartition("_")
        if not UPLOAD_ID_RE.fullmatch(upload_id) or not OFFSET_RE.fullmatch(offset):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", "No such upload.")
        return cls(upload_id, int(offset))


def check_content_range(header: str | None, upload: Upload) -> None:
    """A chunk must start where the upload stands (else 416, as the spec asks)."""
    if header is None:
        return
    match = CONTENT_RANGE_RE.fullmatch(header.strip())
    if match is None or int(match.group(1)) != upload.offset:
        raise RegistryError(
            "RANGE_INVALID",
            "The chunk does not start where the upload stands.",
            headers={"Range": upload.range_header(), "Location": ""},
        )


def sequence_of(manifest: bytes, header: str | None) -> int | None:
    """The build's sequence: the ``Pushgate-Sequence`` header, else the manifest's (or
    index's) ``dev.pushgate.sequence`` annotation; neither: an unsequenced push."""
    if header is not None:
        return _sequence(header)
    try:
        text = manifest.decode()
        parsed = None if json_too_deep(text) else json.loads(text)
    except ValueError:
        return None  # the push use case refuses it with its own message
    annotations = parsed.get("annotations") if isinstance(parsed, dict) else None
    value = annotations.get(SEQUENCE_ANNOTATION) if isinstance(annotations, dict) else None
    return None if value is None else _sequence(value)


def _sequence(value: Any) -> int:
    text = str(value).strip()
    if not SEQUENCE_RE.fullmatch(text) or int(text) > MAX_SEQUENCE:
        raise RegistryError(
            "MANIFEST_INVALID",
            f"The build sequence must be a whole number from 0 to {MAX_SEQUENCE}.",
            detail={"pushgate": "invalid_request", "field": "sequence"},
        )
    return int(text)
