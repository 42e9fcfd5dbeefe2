"""AWS calls a push waits for before its answer, counted per outcome with a counting
client wrapper (not timed), against moto. The after-answer work (history, verify,
release) is deferred and counted apart. docs/push.md quotes these counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from service.adapters.aws import Clients, open_clients
from service.domain.models import PushRequest
from service.main import build_services
from service.settings import Settings
from tests.integration.service.helpers import manifest

pytestmark = pytest.mark.integration


class CountingClient:
    """An aioboto3 client that records each call it makes as (operation, table)."""

    def __init__(self, client: Any, tables: dict[str, str], events: list[str]) -> None:
        self._client = client
        self._tables = tables  # table name -> role
        self.calls: list[tuple[str, str]] = []
        self.events = events  # "start <op> <table>" / "end ...", shared by the clients

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:  # not an AWS operation
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            table = self._tables.get(kwargs.get("TableName", ""), "-")
            self.calls.append((name, table))
            self.events.append(f"start {name} {table}")
            try:
                return await attribute(*args, **kwargs)
            finally:
                self.events.append(f"end {name} {table}")

        return call

    def take(self) -> Counter[tuple[str, str]]:
        """The calls recorded since the last ``take``."""
        calls, self.calls = Counter(self.calls), []
        return calls


async def counted_push(
    settings: Settings,
    aws_session: Any,
    repo: str,
    pushes: list[tuple[int, int]],
    events: list[str] | None = None,
) -> list[tuple[str, Counter[tuple[str, str]], Counter[tuple[str, str]]]]:
    """Run ``pushes`` ((manifest n, sequence)) one after another on ``repo:v1``; for each,
    its outcome, the calls made before the answer, and the calls made after it.
    ``events`` collects when each call started and ended, in order."""
    events = [] if events is None else events
    tables = {
        settings.lease_table: "leases",
        settings.history_table: "history",
        settings.budget_table: "budget",
    }
    found = []
    async with open_clients(settings, session=aws_session) as clients:
        dynamodb = CountingClient(clients.dynamodb, tables, events)
        ecr = CountingClient(clients.ecr, {}, events)
        services = build_services(settings, Clients(dynamodb=dynamodb, ecr=ecr))  # type: ignore[arg-type]
        for n, sequence in pushes:
            jobs: list[Callable[[], Awaitable[None]]] = []
            request = PushRequest.create(
                repository=repo,
                tag="v1",
                manifest=manifest(n),
                sequence=sequence,
                default_wait_seconds=5.0,
                max_wait_seconds=10.0,
            )
            dynamodb.take()
            ecr.take()
            result = await services.push.push(
                request, caller="ci", request_id=f"r{sequence}", defer=jobs.append
            )
            before = dynamodb.take() + ecr.take()
            for job in jobs:
                await job()
            found.append((result.outcome.value, before, dynamodb.take() + ecr.take()))
    return found


def without_budget(calls: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """The calls but the PutImage budget's, which run beside the intent's write (how
    many depends on the budget's state, e.g. a first reservation creating its item)."""
    return Counter({call: n for call, n in calls.items() if call[1] != "budget"})


async def test_round_trips_per_outcome(settings: Settings, aws_session: Any, repo: str) -> None:
    """pushed waits for the acquire (which writes the intent, and whose answer carries
    the record: no read), PutImage and the commit (record, release): 2 round trips; the
    PutImage slot is reserved while the acquire is in flight, not after it. unchanged
    and superseded wait for the acquire alone: no ECR call, no PutImage slot. No
    transaction: every write is one item's."""
    events: list[str] = []
    outcomes = await counted_push(
        settings, aws_session, repo, [(1, 2), (1, 2), (3, 1)], events=events
    )
    pushed = Counter(
        {
            ("update_item", "leases"): 2,
            ("put_image", "-"): 1,
        }
    )
    answered = Counter(
        {
            ("update_item", "leases"): 1,
        }
    )
    expected = [
        ("pushed", pushed, True),
        ("unchanged", answered, False),
        ("superseded", answered, False),
    ]
    assert expected == [
        (outcome, without_budget(before), ("update_item", "budget") in before)
        for outcome, before, _ in outcomes
    ]
    acquired = events.index("end update_item leases")
    assert "start update_item budget" in events[:acquired], events


async def test_history_and_release_follow_the_answer(
    settings: Settings, aws_session: Any, repo: str
) -> None:
    """After a pushed answer: the history entries only (its own, and the one the previous
    record write carried, appended again: the same item); the commit released the lease
    and PutImage said what the tag names. After an unchanged answer: its entry, the
    verifying ECR read and the release."""
    outcomes = await counted_push(settings, aws_session, repo, [(1, 1), (2, 2), (2, 2)])
    after = [(outcome, later) for outcome, _, later in outcomes]
    assert [
        ("pushed", Counter({("put_item", "history"): 1})),
        ("pushed", Counter({("put_item", "history"): 2})),
        (
            "unchanged",
            Counter(
                {
                    ("put_item", "history"): 1,
                    ("batch_get_image", "-"): 1,
                    ("update_item", "leases"): 1,
                }
            ),
        ),
    ] == after
