"""What the sync and async clients share: building requests, reading answers,
mapping errors and deciding retries. No I/O here (httpx's ``BaseClient`` split).

A push is idempotent (the same manifest on the same tag answers ``unchanged``),
so the clients retry connection failures and 502/503 answers, honouring
``Retry-After``, until a total deadline.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from service.client.errors import ApiError, Retryable, error_class

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
RETRY_STATUSES = frozenset({502, 503, 504})
#: The longest lease wait a pushgate accepts by default (PUSHGATE_MAX_WAIT_SECONDS): a
#: push naming no wait_seconds waits the server's default, which is at most this.
SERVER_MAX_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, within a total deadline (seconds)."""

    deadline: float = 120.0
    base: float = 0.2
    cap: float = 10.0

    def delay(
        self, attempt: int, retry_after: float | None, remaining: float, jitter: float
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        backoff = min(self.cap, self.base * 2.0**attempt) * (0.5 + 0.5 * jitter)
        wait = max(backoff, retry_after or 0.0)
        if wait >= remaining:
            return None
        return wait


def default_retry() -> RetryPolicy:
    """The default policy; ``PUSHGATE_DEADLINE_SECONDS`` overrides its total deadline
    (e.g. a CI job that would rather fail fast than wait 120 s for a busy tag)."""
    value = os.environ.get("PUSHGATE_DEADLINE_SECONDS", "").strip()
    if not value:
        return RetryPolicy()
    try:
        deadline = float(value)
    except ValueError:
        deadline = math.nan
    if not math.isfinite(deadline) or deadline < 0:
        raise ValueError(f"PUSHGATE_DEADLINE_SECONDS must be a number of seconds, got {value!r}")
    return RetryPolicy(deadline=deadline)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    read_timeout: float | None = None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = response.headers.get("date")
    now = parsedate_to_datetime(date) if date else None
    if now is None:
        return None
    return max(0.0, (when - now).total_seconds())


def api_error(response: httpx.Response) -> ApiError:
    """The error an error answer stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body["error"]
        message = str(body.get("message") or code)
        details = {k: v for k, v in body.items() if k not in {"error", "message"}}
    else:
        code = f"http_{response.status_code}"
        message = f"pushgate answered HTTP {response.status_code}: {response.text[:200]}"
        details = {}
    cls = error_class(response.status_code, code)
    return cls(response.status_code, code, message, details, retry_after_seconds(response))


def split_ref(ref: str) -> tuple[str, str]:
    """``REPOSITORY:TAG`` into its parts (the tag is after the last colon)."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or not repository or not tag or "/" in tag:
        raise ValueError(f"expected REPOSITORY:TAG, got {ref!r}")
    return repository, tag


def read_manifest(path: str | os.PathLike[str]) -> str:
    """The manifest file's text, byte for byte: the digest is of these bytes."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: a manifest must be UTF-8 JSON text") from exc


class BaseClient:
    """Configuration and the pure half of both clients."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        caller: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[Exception, float, float], None] | None = None,
    ) -> None:
        """``on_retry(error, delay, remaining)`` is told of each retry before its sleep
        (the CLI says once that it is still trying)."""
        self.base_url = (base_url or os.environ.get("PUSHGATE_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("PUSHGATE_TOKEN")
        self.caller = caller
        self.timeout = timeout
        self.retry = retry or default_retry()
        self._rng = rng or random.Random()
        self.on_retry = on_retry

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "pushgate-client/0.1"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if self.caller:
            headers["x-pushgate-caller"] = self.caller
        return headers

    def _timeout(self, call: Call, remaining: float) -> httpx.Timeout:
        """Connecting never outlasts the deadline; reading may, since a push waits for
        its lease on the server and the answer is worth more than the deadline."""
        connect = max(0.05, min(self.timeout, remaining))
        return httpx.Timeout(self.timeout, connect=connect, read=call.read_timeout or self.timeout)

    def _push_call(
        self,
        repository: str,
        tag: str,
        manifest: str,
        media_type: str | None,
        sequence: int | None,
        wait_seconds: float | None,
        expected_digest: str | None = None,
    ) -> Call:
        body: dict[str, Any] = {"repository": repository, "tag": tag, "manifest": manifest}
        if expected_digest is not None:
            body["expected_digest"] = expected_digest
        if media_type is not None:
            body["media_type"] = media_type
        if sequence is not None:
            body["sequence"] = sequence
        if wait_seconds is not None:
            body["wait_seconds"] = wait_seconds
        # the server may wait for the lease before it answers: wait_seconds, or its own
        # default (unknown here) when none is given, which its max bounds
        wait = SERVER_MAX_WAIT_SECONDS if wait_seconds is None else wait_seconds
        read = self.timeout + wait
        return Call("POST", "/v1/pushes", json=body, read_timeout=read)

    def _tags_call(
        self,
        repository: str,
        tags: Sequence[str] | None,
        manifest: str,
        *,
        media_type: str | None,
        sequence: int | None,
        wait_seconds: float | None,
        expected_digest: str | None,
    ) -> Call:
        """A push under several tags, or (``tags`` None) by digest alone."""
        body: dict[str, Any] = {"repository": repository, "manifest": manifest}
        optional = {
            "tags": None if tags is None else list(tags),
            "media_type": media_type,
            "sequence": sequence,
            "wait_seconds": wait_seconds,
            "expected_digest": expected_digest,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return Call(
            "POST", "/v1/pushes", json=body, read_timeout=self._each_tag(tags, wait_seconds)
        )

    def _promote_call(
        self,
        repository: str,
        digest: str,
        tags: Sequence[str],
        *,
        sequence: int | None,
        source_repository: str | None,
        wait_seconds: float | None,
    ) -> Call:
        body: dict[str, Any] = {"repository": repository, "digest": digest, "tags": list(tags)}
        optional = {
            "sequence": sequence,
            "source_repository": source_repository,
            "wait_seconds": wait_seconds,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        read = self._each_tag(tags, wait_seconds)
        return Call("POST", "/v1/promotions", json=body, read_timeout=read)

    def _each_tag(self, tags: Sequence[str] | None, wait_seconds: float | None) -> float:
        """The read timeout of a call that may wait for each tag's lease in turn."""
        wait = SERVER_MAX_WAIT_SECONDS if wait_seconds is None else wait_seconds
        return self.timeout + wait * len(set(tags or [""]))

    @staticmethod
    def _tag_call(
        repository: str,
        tag: str,
        *,
        history: bool = False,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Call:
        # The query form: in the path form ``/v1/tags/{repository...}/{tag}`` a tag named
        # ``history`` of ``team/app`` reads as the history of ``team:app``.
        params: dict[str, Any] = {"repository": repository, "tag": tag}
        if not history:
            return Call("GET", "/v1/tags", params=params)
        params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        return Call("GET", "/v1/tags/history", params=params)

    @staticmethod
    def _parse(response: httpx.Response, parse: Callable[[dict[str, Any]], T]) -> T:
        if not response.is_success:
            raise api_error(response)
        try:
            return parse(response.json())
        except (ValueError, KeyError, TypeError) as exc:  # not pushgate's answer
            message = (
                f"{response.request.url} answered HTTP {response.status_code} with a body "
                f"that is not pushgate's ({type(exc).__name__}: {exc}); is PUSHGATE_URL right?"
            )
            raise ApiError(response.status_code, "unexpected_answer", message) from exc

    def _should_retry(self, response: httpx.Response) -> bool:
        return response.status_code in RETRY_STATUSES

    def _next_delay(self, attempt: int, error: Exception, remaining: float) -> float | None:
        retry_after = error.retry_after if isinstance(error, Retryable) else None
        delay = self.retry.delay(attempt, retry_after, remaining, self._rng.random())
        if delay is not None and self.on_retry is not None:
            self.on_retry(error, delay, remaining)
        return delay
