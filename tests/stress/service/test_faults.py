"""Faults, each ending with 0 violations and no request lost: worker processes killed
while holding a lease, a holder paused past its lease, DynamoDB and ECR errors injected
on the clients the service uses, a service process killed and restarted mid-run."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import pytest

from service.stress.harness import Dispatcher, PushSpec, make_plan, spec_for
from service.stress.modes import RunConfig, RunResult, execute, prepare
from service.stress.processes import run_service_mode, run_worker_processes
from service.stress.report import summary

pytestmark = [pytest.mark.stress, pytest.mark.integration, pytest.mark.timeout(240)]


def assert_clean(result: RunResult) -> None:
    data = summary(result)
    assert {str(n): 0 for n in range(1, 7)} == data["violations"], data["examples"]
    assert 0 == result.not_started
    assert "error" not in data["outcomes"], data["outcomes"]
    assert set(result.history.requests) == {a.request_id for a in result.history.attempts}


def test_sigkilled_holders_are_taken_over_after_expiry(moto_endpoint):
    """Worker processes SIGKILL'd while holding a lease (stopped right after the grant,
    then killed): the lease is taken over once it expires, the dead worker's request is
    handed out again, nothing is lost."""
    config = RunConfig(mode="pushgate", seed=3, tags=2, pushes=24, lease_seconds=2.0)
    plan = make_plan(repository=config.repository, tags=2, pushes=24, seed=3)
    victims = {plan[5].request_id, plan[12].request_id}
    plan = [
        dataclasses.replace(spec, pause="acquired") if spec.request_id in victims else spec
        for spec in plan
    ]
    run = prepare(config, moto_endpoint, plan=plan)
    kills: list[tuple[str, int]] = []
    acquired: dict[str, tuple[str, int]] = {}

    def on_event(event, worker, run):
        if event.get("event") == "acquired":
            acquired[worker.name] = (event["key"], int(event["token"]))
        elif event.get("event") == "pausing":
            kills.append(acquired[worker.name])
            os.kill(worker.pid, signal.SIGKILL)

    result = execute(run, lambda run: run_worker_processes(run, processes=3, on_event=on_event))
    assert 2 == len(kills)
    assert_clean(result)
    for key, token in kills:
        dead = next(h for h in result.history.holds if h.token == token)
        assert dead.lost
        later = [h for h in result.history.holds if h.key == key and h.token > token]
        assert later, "someone took the dead holder's lease over"
        assert min(h.start for h in later) >= dead.end
    killed = [a for a in result.history.attempts if a.error == "worker_killed"]
    assert victims == {a.request_id for a in killed}


class _Gated(Dispatcher):
    """Hands out the first request, then waits for ``gate`` before the rest."""

    def __init__(self, plan: list[PushSpec], *, deadline: float, gate: threading.Event) -> None:
        super().__init__(plan, deadline=deadline)
        self._gate = gate
        self._first = True
        self._first_lock = threading.Lock()

    def next(self):
        with self._first_lock:
            first, self._first = self._first, False
        if not first:
            self._gate.wait(60)
        return super().next()


@pytest.mark.parametrize("point", ["put", "commit"])
def test_holder_paused_past_its_lease_does_not_overwrite(moto_endpoint, point):
    """A holder SIGSTOP'd (right before PutImage reaches ECR, or after it, right before
    the commit) past its lease and resumed: a newer build took the lease over and pushed
    meanwhile; the resumed holder learns its lease is lost, and its retry is superseded.
    Paused before PutImage its push never lands; paused after, its put had landed before
    the newer build's (the newer holder adopted it, then moved the tag on)."""
    config = RunConfig(mode="pushgate", seed=4, tags=1, pushes=3, lease_seconds=2.0)
    repository = config.repository
    plan = [
        spec_for(repository, "t0", 1, pause=point),
        spec_for(repository, "t0", 2),
        spec_for(repository, "t0", 3),
    ]
    run = prepare(config, moto_endpoint, plan=plan)
    gate = threading.Event()
    run.dispatcher = _Gated(plan, deadline=time.time() + 120, gate=gate)
    paused: list[float] = []

    def on_event(event, worker, run):
        if event.get("event") == "pausing":
            paused.append(float(event["at"]))
            gate.set()

    result = execute(
        run,
        lambda run: run_worker_processes(
            run, processes=2, on_event=on_event, pause_seconds=3 * config.lease_seconds + 1
        ),
    )
    assert 1 == len(paused)
    assert_clean(result)
    stale = plan[0]
    attempt = next(a for a in result.history.attempts if a.request_id == stale.request_id)
    assert "lease_lost" == attempt.error, "the resumed holder learned its lease was lost"
    assert "superseded" == attempt.outcome
    written = [w.digest for w in result.history.writes]
    if point == "put":
        assert stale.digest not in written
    else:
        assert stale.digest == written[0], written
    assert [plan[2].digest] == result.history.final[stale.key]


class _RetryLast(Dispatcher):
    """A request whose worker died is retried after the others (a CI job re-run)."""

    def requeue(self, spec: PushSpec) -> None:
        with self._lock:
            self._queue.append(spec)
            self.dispatched -= 1


def test_crash_between_put_image_and_record(moto_endpoint):
    """Build 1 pushed; the push of build 3 dies (SIGKILL) right after ECR accepted it,
    before its record is written; build 2 follows, then build 3's retry. The tag must
    never move from build 3 back to build 2."""
    config = RunConfig(mode="pushgate", seed=7, tags=1, pushes=3, lease_seconds=2.0)
    repository = config.repository
    plan = [
        spec_for(repository, "t0", 1),
        spec_for(repository, "t0", 3, pause="crash_after_put"),
        spec_for(repository, "t0", 2),
    ]
    run = prepare(config, moto_endpoint, plan=plan)
    run.dispatcher = _RetryLast(plan, deadline=time.time() + 120)
    result = execute(run, lambda run: run_worker_processes(run, processes=1))
    assert ["worker_killed"] == [
        a.error for a in result.history.attempts if a.error == "worker_killed"
    ]
    assert_clean(result)


def test_dynamodb_and_ecr_errors_are_absorbed(moto_endpoint):
    """~10% of DynamoDB calls throttled or 5xx, ~10% of PutImage calls throttled, on the
    service's own clients: every push still succeeds and every invariant holds."""
    config = RunConfig(mode="pushgate", seed=5, pushes=30, dynamodb_faults=0.1, ecr_faults=0.1)
    result = execute(prepare(config, moto_endpoint))
    assert_clean(result)
    assert result.counters.injected_dynamodb > 0
    assert result.counters.injected_ecr > 0


def test_service_process_killed_and_restarted(moto_endpoint):
    """One of two `pushgate serve` processes SIGKILL'd mid-run and restarted on its port:
    its clients retry (connection errors, 503s) and every request ends in success."""
    config = RunConfig(mode="service", seed=6, pushes=30, lease_seconds=2.0)
    run = prepare(config, moto_endpoint)
    restarted: list[int] = []

    def chaos(fleet, run):
        deadline = time.time() + 60
        while run.recorder.counts()[0] < 8 and time.time() < deadline:
            time.sleep(0.05)
        fleet.restart(0, down_seconds=1.0)
        restarted.append(fleet.restarts)

    result = execute(run, lambda run: run_service_mode(run, chaos=chaos))
    assert [1] == restarted
    assert_clean(result)
