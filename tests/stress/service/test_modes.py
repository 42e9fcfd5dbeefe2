"""The four stress modes against moto (LocalAWS): raw and lease reproduce the race,
pushgate and the HTTP service remove it. Small counts; the long run is in the README."""

from __future__ import annotations

import pytest

from service.stress.modes import RunConfig, RunResult, run_stress
from service.stress.report import summary

pytestmark = [pytest.mark.stress, pytest.mark.integration, pytest.mark.timeout(240)]


def counts(result: RunResult) -> dict[int, int]:
    return result.verdict.counts


def assert_clean(result: RunResult) -> None:
    data = summary(result)
    assert {str(n): 0 for n in range(1, 7)} == data["violations"], data["examples"]
    assert 0 == result.not_started
    assert "error" not in data["outcomes"], data["outcomes"]


def test_raw_mode_moves_tags_backwards(moto_endpoint):
    """Direct put_image from 10 workers (default configuration, fixed seed): the tag
    moves back to older builds (2) and ends on one (1); nothing is lost (6)."""
    result = run_stress(RunConfig(mode="raw", seed=1), moto_endpoint)
    found = counts(result)
    assert found[1] > 0
    assert found[2] > 0
    assert 0 == found[6]


def test_raw_mode_immutable_reports_several_winners(moto_endpoint):
    """On an IMMUTABLE repository a client that accepts "already exists" tells many
    builds that they won the tag (5)."""
    result = run_stress(RunConfig(mode="raw", seed=1, immutable=True), moto_endpoint)
    assert counts(result)[5] > 0


def test_lease_mode_serializes_but_does_not_order(moto_endpoint):
    """put_image under a lease: holds never overlap (3 holds) but an older build that
    gets the lease last still moves the tag back (1 and 2 fail)."""
    result = run_stress(RunConfig(mode="lease", seed=1, tags=2, pushes=60), moto_endpoint)
    found = counts(result)
    assert 0 == found[3]
    assert len(result.history.holds) == 60
    assert found[2] > 0
    assert found[1] > 0
    assert 0 == found[6]


def test_pushgate_mode_has_no_violation(moto_endpoint):
    """The push use case in-process, two service instances: every invariant holds."""
    result = run_stress(RunConfig(mode="pushgate", seed=1, pushes=40), moto_endpoint)
    assert_clean(result)
    assert {"pushed", "superseded"} <= set(summary(result)["outcomes"])


def test_pushgate_mode_immutable_has_one_winner(moto_endpoint):
    """IMMUTABLE: one digest wins each tag, re-pushes of it are unchanged, the others
    get tag_immutable or superseded."""
    result = run_stress(
        RunConfig(mode="pushgate", seed=2, pushes=20, immutable=True), moto_endpoint
    )
    data = summary(result)
    assert {str(n): 0 for n in range(1, 7)} == data["violations"], data["examples"]
    assert "tag_immutable" in data["outcomes"]


def test_service_mode_two_processes_have_no_violation(moto_endpoint):
    """Two `pushgate serve` processes over the same tables, clients over HTTP."""
    result = run_stress(RunConfig(mode="service", seed=1, pushes=30), moto_endpoint)
    assert_clean(result)
    assert result.history.holds, "holds are rebuilt from the service's history"
