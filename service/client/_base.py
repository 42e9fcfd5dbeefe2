"""What the sync and async clients share: building requests, reading answers,
mapping errors and planning retries. No I/O here (httpx's ``BaseClient`` split).

A push is idempotent (the same manifest on the same tag answers ``unchanged``), so the
clients retry what may succeed later: no answer, a 502/503/504, or an error code marked
retryable, honouring ``Retry-After``. tenacity runs the loop; ``RetryPlan`` gives it
the hooks. The deadline bounds the whole call, every request included; refused
connections get a shorter budget (nothing listens there), and a ``lease_timeout`` is
final when the push named its own ``wait_seconds``.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import tenacity

from service.client.errors import (
    ApiError,
    LeaseTimeout,
    Retryable,
    ServiceUnreachable,
    TagNotFound,
    error_class,
)
from service.client.models import HistoryPage

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
RETRY_STATUSES = frozenset({502, 503, 504})
#: The longest lease wait a pushgate accepts by default (PUSHGATE_MAX_WAIT_SECONDS): a
#: push naming no wait_seconds waits the server's default, which is at most this.
SERVER_MAX_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, within a total deadline (seconds) that
    also bounds each request. Refused connections are retried for ``connect_deadline``
    seconds in a row at most: a service that is down is reported at once."""

    deadline: float = 120.0
    base: float = 0.2
    cap: float = 10.0
    connect_deadline: float = 5.0

    def __post_init__(self) -> None:
        for name in ("deadline", "connect_deadline"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

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
    if not math.isfinite(deadline) or deadline <= 0:
        raise ValueError(
            f"PUSHGATE_DEADLINE_SECONDS must be a positive number of seconds, got {value!r}"
        )
    return RetryPolicy(deadline=deadline)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    read_timeout: float | None = None
    #: the ``wait_seconds`` a push named: its lease_timeout is then final
    lease_wait: float | None = None


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

    def _request(self, call: Call, started: float) -> dict[str, Any]:
        """httpx's arguments for one attempt of ``call``. Each phase of the request gets
        at most what is left of the deadline, so no answer outlasts it; a push's read
        may take its lease wait on top of the I/O timeout, within that bound."""
        left = max(0.01, self.retry.deadline - (time.monotonic() - started))
        read = min(call.read_timeout or self.timeout, left)
        return {
            "method": call.method,
            "url": call.path,
            "json": call.json,
            "params": call.params,
            "timeout": httpx.Timeout(min(self.timeout, left), read=read),
        }

    def _unreachable(self, exc: httpx.TransportError) -> ServiceUnreachable:
        if isinstance(exc, httpx.TimeoutException):
            why = f"in time ({type(exc).__name__})"
        else:
            why = f"({exc or type(exc).__name__})"
        error = ServiceUnreachable(f"pushgate at {self.base_url} did not answer {why}")
        error.__cause__ = exc
        return error

    def _retrying(self, call: Call) -> dict[str, Any]:
        """tenacity's arguments for one call (``Retrying`` or ``AsyncRetrying``)."""
        plan = RetryPlan(call, self.retry, self._rng, self.on_retry)
        return {
            "retry": plan.retry,
            "wait": plan.wait,
            "stop": plan.stop,
            "before_sleep": plan.before_sleep,
            "retry_error_callback": plan.give_up,
        }

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
        return Call("POST", "/v1/pushes", json=body, read_timeout=read, lease_wait=wait_seconds)

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
    def _history_parser(*, first: bool) -> Callable[[dict[str, Any]], HistoryPage]:
        """The server answers an empty first page for a tag it has no push of; that is
        the ``tag_not_found`` that ``tag()`` raises for the same tag."""

        def parse(data: dict[str, Any]) -> HistoryPage:
            page = HistoryPage.from_json(data)
            if first and not page.items:
                message = f"No push of {page.repository}:{page.tag} is recorded."
                raise TagNotFound(404, "tag_not_found", message)
            return page

        return parse

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


def refused(error: BaseException | None) -> bool:
    """No connection at all: nothing listens there (or the name does not resolve)."""
    return isinstance(error, ServiceUnreachable) and isinstance(error.__cause__, httpx.ConnectError)


def retryable(error: BaseException | None, call: Call) -> bool:
    """Worth another attempt: no answer, a gateway's or a busy service's 502/503/504, or
    a code marked retryable. A push that named its ``wait_seconds`` takes its
    ``lease_timeout`` as final: the caller said how long to wait for the tag."""
    if isinstance(error, LeaseTimeout) and call.lease_wait is not None:
        return False
    if isinstance(error, ServiceUnreachable | Retryable):
        return True
    return isinstance(error, ApiError) and error.status in RETRY_STATUSES


class RetryPlan:
    """One call's retries as tenacity's hooks, which it calls in this order after a
    failed attempt: ``retry`` (worth another?), ``wait`` (how long), ``stop`` (too
    long?), ``before_sleep``."""

    def __init__(
        self,
        call: Call,
        policy: RetryPolicy,
        rng: random.Random,
        on_retry: Callable[[Exception, float, float], None] | None,
    ) -> None:
        self.call = call
        self.policy = policy
        self.rng = rng
        self.on_retry = on_retry
        self.refused_since: float | None = None  # start of the current run of refusals
        self.left = policy.deadline
        self.answer: ApiError | None = None  # the service's last answer

    def retry(self, state: tenacity.RetryCallState) -> bool:
        error = _error(state)
        now = state.outcome_timestamp or time.monotonic()
        self.left = self.policy.deadline - (now - state.start_time)
        if refused(error):
            self.refused_since = self.refused_since or now
            spent = now - self.refused_since
            self.left = min(self.left, self.policy.connect_deadline - spent)
        else:
            self.refused_since = None
        if isinstance(error, ApiError):
            self.answer = error
        return retryable(error, self.call)

    def wait(self, state: tenacity.RetryCallState) -> float:
        """The policy's delay; infinite when it gives up, which ``stop`` reads."""
        error = _error(state)
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        delay = self.policy.delay(
            state.attempt_number - 1, retry_after, self.left, self.rng.random()
        )
        return math.inf if delay is None else delay

    def stop(self, state: tenacity.RetryCallState) -> bool:
        return state.upcoming_sleep >= self.left

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        error = _error(state)
        if self.on_retry is not None and isinstance(error, Exception):
            self.on_retry(error, state.upcoming_sleep, self.left)

    def give_up(self, state: tenacity.RetryCallState) -> NoReturn:
        """Raise the last error; but when the deadline cut the last attempt short, the
        service's last answer says more (busy, say) than "did not answer"."""
        error = _error(state)
        cut = isinstance(error, ServiceUnreachable) and isinstance(
            error.__cause__, httpx.TimeoutException
        )
        if cut and self.answer is not None:
            raise self.answer from None
        assert error is not None  # noqa: S101 - tenacity gives up only after an error
        raise error


def _error(state: tenacity.RetryCallState) -> BaseException | None:
    return None if state.outcome is None else state.outcome.exception()
