"""``push_image``: a whole image (blobs, manifests, tags) through pushgate's ``/v2/`` API.

The order is the registry's: the blobs the repository lacks (a ``HEAD`` each, then
uploads, ``parallel`` at a time), then the child manifests of an index by digest, then
the top manifest or index under each tag, with the build's sequence in the
``Pushgate-Sequence`` header. Every blob is streamed from disk and hashed as it goes; its
last bytes are sent only once the digest matched, so a damaged layout fails before any
manifest is pushed and leaves no blob under a wrong name.

Blobs up to ``chunk_size`` go in one request (``POST ...?digest=``); larger ones in
``PATCH`` chunks of ``chunk_size`` (ECR wants 5 MiB at least for every part but the last).
Each step is retried as a whole on a lost connection, a 429 or a 5xx (``stamina``); a
manifest under a tag is idempotent (``unchanged``), so retrying it is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import Protocol

import httpx
import stamina

from service.client._base import DEFAULT_URL, SERVER_MAX_WAIT_SECONDS
from service.client._image_source import Blob, Image, LayoutError, Manifest, open_image
from service.client._v2 import check, retry_hook, send, upload_location
from service.client.errors import ApiError, PushgateError

#: the distribution spec's repository names and tags
NAME_RE = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MIB = 1024 * 1024
MIN_CHUNK = 5 * MIB
CHUNK_SIZE = 10 * MIB
PIECE = 256 * 1024  # bytes read and sent at a time: memory per upload stays this small
ATTEMPTS = 5  # per step; no time limit on top: a large blob's upload may take long

__all__ = [
    "BlobMismatch",
    "ImagePushResult",
    "LayoutError",
    "Progress",
    "PushStopped",
    "TagResult",
    "apush_image",
    "push_image",
]


class BlobMismatch(LayoutError):
    """A blob's bytes do not match the digest the layout names it by."""


class PushStopped(PushgateError):
    """An upload stopped because another upload of the same push failed."""


class Progress(Protocol):
    """Told what is happening; called from worker threads."""

    def planned(self, blobs: int, size: int) -> None:
        """The blobs (and their bytes) to upload; the others are in the repository."""

    def advanced(self, size: int) -> None:
        """``size`` more bytes sent (negative when an upload starts over)."""

    def blob_done(self, digest: str) -> None:
        """One more blob uploaded."""


@dataclass(frozen=True)
class TagResult:
    tag: str
    outcome: str  # pushed, unchanged or superseded
    digest: str


@dataclass(frozen=True)
class ImagePushResult:
    repository: str
    digest: str  # of the top manifest or index
    media_type: str
    tags: tuple[TagResult, ...]
    manifests: tuple[str, ...]  # the child manifests' digests, pushed before the index
    blobs_uploaded: int
    blobs_skipped: int
    bytes_uploaded: int


def push_image(
    url: str | None,
    path: str | os.PathLike[str],
    repository: str,
    tags: list[str] | tuple[str, ...],
    *,
    sequence: int | None = None,
    token: str | None = None,
    parallel: int = 4,
    progress: Progress | None = None,
    ref: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    timeout: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> ImagePushResult:
    """Push the image at ``path`` (an OCI layout directory or tar, or a ``docker save``
    tar) to ``repository`` under ``tags``. ``url`` and ``token`` default to
    ``PUSHGATE_URL`` and ``PUSHGATE_TOKEN``; ``ref`` picks the image of a layout naming
    several (its ``org.opencontainers.image.ref.name``)."""
    if not NAME_RE.fullmatch(repository):
        raise ValueError(f"{repository!r} is not a repository name")
    if not tags:
        raise ValueError("push_image needs at least one tag")
    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise ValueError(f"{tag!r} is not a tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if chunk_size < MIN_CHUNK:
        raise ValueError(f"chunk_size must be at least {MIN_CHUNK} bytes (ECR's minimum part)")
    image = open_image(Path(path), ref)
    base = (url or os.environ.get("PUSHGATE_URL") or DEFAULT_URL).rstrip("/")
    token = token if token is not None else os.environ.get("PUSHGATE_TOKEN")
    headers = {"user-agent": "pushgate-client/0.1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    limits = httpx.Limits(max_connections=parallel + 1)
    with httpx.Client(
        base_url=base, headers=headers, timeout=timeout, limits=limits, transport=transport
    ) as http:
        pusher = _Pusher(http, image, repository, progress, chunk_size, timeout)
        return pusher.run(list(tags), sequence, parallel)


async def apush_image(
    url: str | None,
    path: str | os.PathLike[str],
    repository: str,
    tags: list[str] | tuple[str, ...],
    *,
    sequence: int | None = None,
    token: str | None = None,
    parallel: int = 4,
    progress: Progress | None = None,
    ref: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    timeout: float = 60.0,
) -> ImagePushResult:
    """``push_image`` for asyncio: the same push in a worker thread (file reads and
    uploads block; the push bounds its own threads), so the event loop stays free."""
    return await asyncio.to_thread(
        push_image,
        url,
        path,
        repository,
        tags,
        sequence=sequence,
        token=token,
        parallel=parallel,
        progress=progress,
        ref=ref,
        chunk_size=chunk_size,
        timeout=timeout,
    )


def _attempts() -> Iterable[stamina.Attempt]:
    """A step's attempts: up to ``ATTEMPTS``, with backoff, while ``retry_hook`` agrees."""
    return stamina.retry_context(on=retry_hook, attempts=ATTEMPTS, timeout=None)


class _Pusher:
    def __init__(
        self,
        http: httpx.Client,
        image: Image,
        repository: str,
        progress: Progress | None,
        chunk_size: int,
        timeout: float,
    ) -> None:
        self.http = http
        self.image = image
        self.repository = repository
        self.progress = progress
        self.chunk_size = chunk_size
        self.timeout = timeout
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.bytes_uploaded = 0

    def run(self, tags: list[str], sequence: int | None, parallel: int) -> ImagePushResult:
        blobs = list(self.image.blobs.values())
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="push-image") as pool:
            present = list(pool.map(self._blob_present, blobs))
            missing = [blob for blob, found in zip(blobs, present, strict=True) if not found]
            if self.progress is not None:
                self.progress.planned(len(missing), sum(blob.size for blob in missing))
            futures = [pool.submit(self._upload, blob) for blob in missing]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                # the first failure (or an interrupt) cancels what has not started and
                # stops what has
                self._stopped.set()
                for future in futures:
                    future.cancel()
            errors = [e for f in futures if not f.cancelled() and (e := f.exception())]
            if errors:  # the failure itself, not the uploads it stopped
                raise next((e for e in errors if not isinstance(e, PushStopped)), errors[0])
        for child in self.image.children:
            if not self._manifest_present(child.digest):
                self._put_manifest(child, child.digest, None)
        results = tuple(self._put_manifest(self.image.top, tag, sequence) for tag in tags)
        return ImagePushResult(
            repository=self.repository,
            digest=self.image.top.digest,
            media_type=self.image.top.media_type,
            tags=results,
            manifests=tuple(child.digest for child in self.image.children),
            blobs_uploaded=len(missing),
            blobs_skipped=len(blobs) - len(missing),
            bytes_uploaded=self.bytes_uploaded,
        )

    # --- requests -------------------------------------------------------------

    def _path(self, tail: str) -> str:
        return f"/v2/{self.repository}/{tail}"

    def _blob_present(self, blob: Blob) -> bool:
        for attempt in _attempts():
            with attempt:
                response = send(self.http, "HEAD", self._path(f"blobs/{blob.digest}"))
                if response.status_code == httpx.codes.NOT_FOUND:
                    return False
                check(response)
        return True

    def _manifest_present(self, digest: str) -> bool:
        for attempt in _attempts():
            with attempt:
                response = send(self.http, "HEAD", self._path(f"manifests/{digest}"))
                if response.status_code == httpx.codes.NOT_FOUND:
                    return False
                check(response)
        return True

    def _put_manifest(self, manifest: Manifest, reference: str, sequence: int | None) -> TagResult:
        headers = {"content-type": manifest.media_type}
        if sequence is not None:
            headers["pushgate-sequence"] = str(sequence)
        # under a tag the server may wait for the tag's lease before it answers
        timeout = httpx.Timeout(self.timeout, read=self.timeout + SERVER_MAX_WAIT_SECONDS)
        for attempt in _attempts():
            with attempt:
                response = send(
                    self.http,
                    "PUT",
                    self._path(f"manifests/{reference}"),
                    content=manifest.data,
                    headers=headers,
                    timeout=timeout,
                )
                check(response)
                digest = response.headers.get("docker-content-digest") or manifest.digest
                outcome = response.headers.get("pushgate-outcome") or "pushed"
                return TagResult(reference, outcome, digest)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    def _upload(self, blob: Blob) -> None:
        for attempt in _attempts():
            with attempt, self.image.store.open(blob.path) as stream:
                reader = _Reader(stream, blob, self._advanced, self._stopped)
                try:
                    self._upload_once(blob, reader)
                except BaseException:
                    self._advanced(-reader.sent)  # the retry sends them again
                    raise
        with self._lock:
            self.bytes_uploaded += blob.size
        if self.progress is not None:
            self.progress.blob_done(blob.digest)

    def _upload_once(self, blob: Blob, reader: _Reader) -> None:
        octets = {"content-type": "application/octet-stream"}
        uploads = self._path("blobs/uploads/")
        if blob.size <= self.chunk_size:
            response = send(
                self.http,
                "POST",
                uploads,
                params={"digest": blob.digest},
                content=reader.body(blob.size, last=True),
                headers=octets | {"content-length": str(blob.size)},
            )
            check(response)
            if response.status_code == httpx.codes.CREATED:
                return
            raise ApiError(response.status_code, "unexpected_answer", "monolithic upload refused")
        response = send(self.http, "POST", uploads, headers={"content-length": "0"})
        check(response)
        location = upload_location(response)
        while blob.size - reader.offset > self.chunk_size:
            start = reader.offset
            end = start + self.chunk_size - 1
            response = send(
                self.http,
                "PATCH",
                location,
                content=reader.body(self.chunk_size, last=False),
                headers=octets
                | {"content-length": str(self.chunk_size), "content-range": f"{start}-{end}"},
            )
            check(response)
            location = upload_location(response)
        rest = blob.size - reader.offset
        separator = "&" if "?" in location else "?"
        response = send(
            self.http,
            "PUT",
            f"{location}{separator}digest={blob.digest}",
            content=reader.body(rest, last=True),
            headers=octets | {"content-length": str(rest)},
        )
        check(response)

    def _advanced(self, size: int) -> None:
        if self.progress is not None and size:
            self.progress.advanced(size)


class _Reader:
    """A blob's bytes in pieces, hashed as they are read. ``body(last=True)`` holds back
    its final piece until the whole blob matched its digest, so a damaged blob never
    completes an upload."""

    def __init__(
        self,
        stream: BufferedIOBase,
        blob: Blob,
        advanced: Callable[[int], None],
        stopped: threading.Event,
    ) -> None:
        self.stream = stream
        self.stopped = stopped
        self.blob = blob
        self.advanced = advanced
        self.hasher = hashlib.sha256()
        self.offset = 0  # bytes read
        self.sent = 0  # bytes handed to the connection

    def body(self, length: int, *, last: bool) -> Iterator[bytes]:
        held = b""
        remaining = length
        while remaining:
            if self.stopped.is_set():
                raise PushStopped(f"upload of {self.blob.digest} stopped: another upload failed")
            piece = self.stream.read(min(PIECE, remaining))
            if not piece:
                raise BlobMismatch(f"blob {self.blob.digest} is shorter than {self.blob.size}")
            remaining -= len(piece)
            self.offset += len(piece)
            self.hasher.update(piece)
            if held:
                yield self._sent(held)
            held = piece
        if last:
            actual = "sha256:" + self.hasher.hexdigest()
            if actual != self.blob.digest:
                raise BlobMismatch(
                    f"blob {self.blob.digest} does not match its digest (its bytes hash to "
                    f"{actual}); the layout is damaged"
                )
        if held:
            yield self._sent(held)

    def _sent(self, piece: bytes) -> bytes:
        self.sent += len(piece)
        self.advanced(len(piece))
        return piece
