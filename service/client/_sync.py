"""A pushgate client: only I/O; requests, answers and retries are planned in ``_base``.

``_sync.py`` is generated from ``_async.py`` (``scripts/unasync.py``): edit
``_async.py`` and regenerate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import tenacity

from service.client._base import BaseClient, Call, read_manifest
from service.client.models import (
    DigestPushResult,
    HistoryPage,
    PushResult,
    TagsResult,
    TagStatus,
)

T = TypeVar("T")


class PushClient(BaseClient):
    """Push manifests through pushgate. It reads ``PUSHGATE_URL`` and ``PUSHGATE_TOKEN``
    when not given them; use it as a context manager to close its connections."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(base_url, token, **options)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers(), transport=transport
        )

    def push(
        self,
        repository: str,
        tag: str,
        manifest: str,
        *,
        media_type: str | None = None,
        sequence: int | None = None,
        wait_seconds: float | None = None,
        expected_digest: str | None = None,
    ) -> PushResult:
        """Push ``manifest`` to ``repository:tag``. With ``wait_seconds``, a tag still
        busy after that wait raises ``LeaseTimeout`` without a retry; ``expected_digest``:
        refused (digest_mismatch) unless the bytes hash to it."""
        call = self._push_call(
            repository, tag, manifest, media_type, sequence, wait_seconds, expected_digest
        )
        return self._send(call, PushResult.from_json)

    def push_file(
        self,
        repository: str,
        tag: str,
        path: str | os.PathLike[str],
        *,
        media_type: str | None = None,
        sequence: int | None = None,
        wait_seconds: float | None = None,
        expected_digest: str | None = None,
    ) -> PushResult:
        """Push a manifest file as its exact bytes (never re-serialized)."""
        manifest = read_manifest(path)
        return self.push(
            repository,
            tag,
            manifest,
            media_type=media_type,
            sequence=sequence,
            wait_seconds=wait_seconds,
            expected_digest=expected_digest,
        )

    def push_tags(
        self,
        repository: str,
        tags: Sequence[str],
        manifest: str,
        *,
        media_type: str | None = None,
        sequence: int | None = None,
        wait_seconds: float | None = None,
        expected_digest: str | None = None,
    ) -> TagsResult:
        """Push under each of ``tags``, one at a time, each under its own lease. The
        answer has each tag's outcome or error; ``raise_for_status`` raises the first."""
        call = self._tags_call(
            repository,
            tags,
            manifest,
            media_type=media_type,
            sequence=sequence,
            wait_seconds=wait_seconds,
            expected_digest=expected_digest,
        )
        return self._send(call, TagsResult.from_json)

    def push_digest(
        self,
        repository: str,
        manifest: str,
        *,
        media_type: str | None = None,
        expected_digest: str | None = None,
    ) -> DigestPushResult:
        """Put the manifest by digest alone (no tag): e.g. an index's children."""
        call = self._tags_call(
            repository,
            None,
            manifest,
            media_type=media_type,
            sequence=None,
            wait_seconds=None,
            expected_digest=expected_digest,
        )
        return self._send(call, DigestPushResult.from_json)

    def promote(
        self,
        repository: str,
        digest: str,
        tags: Sequence[str],
        *,
        sequence: int | None = None,
        source_repository: str | None = None,
        wait_seconds: float | None = None,
    ) -> TagsResult:
        """Move ``tags`` to the image ``digest`` already in ECR (read from
        ``source_repository`` when given), one tag at a time under its lease."""
        call = self._promote_call(
            repository,
            digest,
            tags,
            sequence=sequence,
            source_repository=source_repository,
            wait_seconds=wait_seconds,
        )
        return self._send(call, TagsResult.from_json)

    def tag(self, repository: str, tag: str) -> TagStatus:
        """The tag's record; ``TagNotFound`` when pushgate has none."""
        return self._send(self._tag_call(repository, tag), TagStatus.from_json)

    def history(
        self, repository: str, tag: str, *, limit: int = 20, cursor: str | None = None
    ) -> HistoryPage:
        """The tag's recorded pushes, newest first; ``TagNotFound`` when it has none."""
        call = self._tag_call(repository, tag, history=True, limit=limit, cursor=cursor)
        return self._send(call, self._history_parser(first=not cursor))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call, parse: Callable[[dict[str, Any]], T]) -> T:
        for attempt in tenacity.Retrying(**self._retrying(call)):
            with attempt:
                request = self._request(call, attempt.retry_state.start_time)
                try:
                    response = self._http.request(**request)
                except httpx.TransportError as exc:
                    raise self._unreachable(exc) from exc
                return self._parse(response, parse)
        raise AssertionError("tenacity returns the answer or raises the last error")
