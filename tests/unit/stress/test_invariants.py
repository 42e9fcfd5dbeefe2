"""The invariant checker on hand-built histories: each invariant passes a clean
history and detects its own violation (and only that one)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.stress.invariants import (
    INVARIANTS,
    check,
    check_final_state,
    check_immutable,
    check_leases,
    check_monotonic,
    check_no_loss,
    check_repush,
    final_attempts,
)
from service.stress.record import Attempt, History, Hold, Observation, Recorder, TagWrite

KEY = "repo:t0"
D1, D2, D3 = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64
SEQUENCES = {D1: 1, D2: 2, D3: 3}


def attempt(
    request_id: str,
    digest: str,
    outcome: str,
    *,
    start: float,
    end: float,
    token: int | None = None,
    error: str | None = None,
    worker: str = "w0",
) -> Attempt:
    return Attempt(
        request_id=request_id,
        worker=worker,
        key=KEY,
        sequence=SEQUENCES[digest],
        digest=digest,
        started=start,
        ended=end,
        outcome=outcome,
        error=error,
        token=token,
        tries=1,
    )


def clean(immutable: bool = False) -> History:
    """Three builds, build 2 pushed twice, serialized under leases 10, 11, 12, 13."""
    attempts = [
        attempt("s1", D1, "pushed", start=0.0, end=1.0, token=10),
        attempt("s2a", D2, "pushed", start=1.0, end=2.0, token=11),
        attempt("s2b", D2, "unchanged", start=2.0, end=3.0, token=12),
        attempt("s3", D3, "pushed", start=3.0, end=4.0, token=13),
    ]
    holds = [
        Hold(KEY, 10, 0.1, 0.9, "w0"),
        Hold(KEY, 11, 1.1, 1.9, "w1"),
        Hold(KEY, 12, 2.1, 2.9, "w0"),
        Hold(KEY, 13, 3.1, 3.9, "w1"),
    ]
    writes = [
        TagWrite(KEY, D1, 0.2, 0.3, "w0", 10),
        TagWrite(KEY, D2, 1.2, 1.3, "w1", 11),
        TagWrite(KEY, D3, 3.2, 3.3, "w1", 13),
    ]
    observations = [
        Observation(KEY, None, 0.0, 0.05),
        Observation(KEY, D1, 0.5, 0.6),
        Observation(KEY, D2, 2.5, 2.6),
        Observation(KEY, D3, 4.5, 4.6),
    ]
    return History(
        immutable=immutable,
        requests={a.request_id: KEY for a in attempts},
        sequences=dict(SEQUENCES),
        attempts=attempts,
        holds=holds,
        writes=writes,
        observations=observations,
        final={KEY: [D3]},
    )


def immutable_clean() -> History:
    """IMMUTABLE: build 1 wins, its re-push is unchanged, build 2 gets tag_immutable."""
    attempts = [
        attempt("s1a", D1, "pushed", start=0.0, end=1.0, token=10),
        attempt("s1b", D1, "unchanged", start=1.0, end=2.0, token=11),
        attempt("s2", D2, "tag_immutable", start=2.0, end=3.0, token=12, error="tag_immutable"),
    ]
    return History(
        immutable=True,
        requests={a.request_id: KEY for a in attempts},
        sequences=dict(SEQUENCES),
        attempts=attempts,
        writes=[TagWrite(KEY, D1, 0.2, 0.3, "w0", 10)],
        observations=[Observation(KEY, D1, 2.5, 2.6)],
        final={KEY: [D1]},
    )


def counts(history: History) -> dict[int, int]:
    return check(history).counts


def only(invariant: int, history: History) -> None:
    found = counts(history)
    assert found[invariant] > 0, found
    assert {n: c for n, c in found.items() if n != invariant and c} == {}


def test_clean_history_has_no_violation():
    """A serialized, ordered run passes all six invariants."""
    assert dict.fromkeys(INVARIANTS, 0) == counts(clean())


def test_clean_immutable_history_has_no_violation():
    """One winner, its re-push unchanged, the other digest refused: all six hold."""
    assert dict.fromkeys(INVARIANTS, 0) == counts(immutable_clean())


def test_1_tag_left_on_an_older_build():
    """The tag ending on build 2 while build 3 reported success violates 1 (only)."""
    history = replace(clean(), final={KEY: [D2]})
    assert 1 == len(check_final_state(history))
    assert "expected 3" in check_final_state(history)[0].detail


def test_1_tag_on_two_images():
    """The tag carried by two images at the end violates 1."""
    history = replace(clean(), final={KEY: [D3, D2]})
    assert ["the tag names 2 images"] == [v.detail for v in check_final_state(history)]


def test_1_missing_tag():
    """No image carrying the tag after successful pushes violates 1."""
    assert 1 == len(check_final_state(replace(clean(), final={KEY: []})))


def test_1_immutable_tag_on_a_digest_that_lost():
    """IMMUTABLE: the tag naming a digest no push won violates 1."""
    assert 1 == len(check_final_state(replace(immutable_clean(), final={KEY: [D2]})))


def test_2_an_older_build_written_after_a_newer_one():
    """A write of build 1 sent after build 2's write returned violates 2 (only)."""
    history = clean()
    history = replace(history, writes=[*history.writes, TagWrite(KEY, D1, 5.0, 5.1, "w9")])
    history = replace(history, final={KEY: [D3]})
    only(2, history)
    assert ["sequence 1 seen after sequence 3"] == [v.detail for v in check_monotonic(history)]


def test_2_overlapping_windows_prove_nothing():
    """Two writes whose windows overlap may have landed in either order: no violation."""
    history = replace(
        clean(),
        writes=[TagWrite(KEY, D2, 1.0, 2.0, "w0"), TagWrite(KEY, D1, 1.5, 2.5, "w1")],
        observations=[],
    )
    assert [] == check_monotonic(history)


def test_2_observation_of_an_older_build():
    """A read showing build 1 after a read showed build 2 violates 2."""
    history = clean()
    history = replace(history, observations=[*history.observations, Observation(KEY, D1, 6.0, 6.1)])
    only(2, history)


def test_2_fenced_writes_out_of_token_order():
    """A later token moving the tag to a lower sequence violates 2, whatever the times."""
    history = replace(
        clean(),
        writes=[TagWrite(KEY, D2, 1.0, 9.0, "w0", 20), TagWrite(KEY, D1, 1.0, 9.0, "w1", 21)],
        observations=[],
    )
    assert ["sequence 1 written under token 21 after sequence 2 under token 20"] == [
        v.detail for v in check_monotonic(history)
    ]


def test_2_each_regressed_build_counts_once():
    """Repeated sightings of one older build count as one violation."""
    history = clean()
    extra = [Observation(KEY, D1, 6.0 + i, 6.1 + i) for i in range(5)]
    history = replace(history, observations=[*history.observations, *extra])
    assert 1 == len(check_monotonic(history))


def test_3_overlapping_holds():
    """A hold starting before the previous one ended violates 3 (only)."""
    history = clean()
    holds = list(history.holds)
    holds[1] = Hold(KEY, 11, 0.5, 1.9, "w1")
    only(3, replace(history, holds=holds))


def test_3_token_not_increasing_in_grant_order():
    """A later grant with a smaller token violates 3."""
    history = clean()
    holds = list(history.holds)
    holds[3] = Hold(KEY, 9, 3.1, 3.9, "w1")
    violations = check_leases(replace(history, holds=holds))
    assert ["token 9 granted after token 12"] == [v.detail for v in violations]


def test_3_holds_of_different_keys_may_overlap():
    """Leases of two tags are independent."""
    history = clean()
    other = Hold("repo:t1", 1, 0.0, 10.0, "w5")
    assert [] == check_leases(replace(history, holds=[*history.holds, other]))


def test_4_identical_repush_failing():
    """A re-push of build 2 ending in an error violates 4 (only)."""
    history = clean()
    attempts = list(history.attempts)
    attempts[2] = replace(attempts[2], outcome="error", error="ImageAlreadyExistsException")
    only(4, replace(history, attempts=attempts))


def test_4_single_push_failing_is_not_a_repush():
    """A failed push of a build pushed once is not a re-push."""
    history = clean()
    attempts = list(history.attempts)
    attempts[0] = replace(attempts[0], outcome="error", error="boom")
    assert [] == check_repush(replace(history, attempts=attempts))


def test_4_immutable_winner_repush_refused():
    """IMMUTABLE: the winning digest re-pushed and answered tag_immutable violates 4."""
    history = immutable_clean()
    attempts = list(history.attempts)
    attempts[1] = replace(attempts[1], outcome="tag_immutable")
    assert 1 == len(check_repush(replace(history, attempts=attempts)))


def test_4_immutable_loser_repush_refused_is_fine():
    """IMMUTABLE: a losing digest re-pushed is refused again, correctly."""
    history = immutable_clean()
    again = attempt("s2b", D2, "tag_immutable", start=3.0, end=4.0, token=13)
    history = replace(
        history, attempts=[*history.attempts, again], requests={**history.requests, "s2b": KEY}
    )
    assert [] == check_repush(history)


def test_5_two_winners_on_an_immutable_tag():
    """IMMUTABLE: two digests reported as pushed/unchanged violates 5 (only)."""
    history = immutable_clean()
    attempts = list(history.attempts)
    attempts[2] = replace(attempts[2], outcome="unchanged", error=None)
    only(5, replace(history, attempts=attempts))


def test_5_a_second_digest_seen_on_an_immutable_tag():
    """IMMUTABLE: the tag observed naming a second digest violates 5."""
    history = immutable_clean()
    history = replace(history, observations=[*history.observations, Observation(KEY, D2, 0.5, 0.6)])
    assert 1 == len(check_immutable(history))


def test_5_only_on_immutable_runs():
    """A mutable tag moving through several digests is no violation of 5."""
    assert [] == check_immutable(clean())


def test_6_request_without_outcome():
    """A dispatched request whose only attempt never finished violates 6 (only)."""
    history = clean()
    attempts = list(history.attempts)
    attempts[2] = replace(attempts[2], ended=None, outcome=None)
    only(6, replace(history, attempts=attempts))


def test_6_request_never_attempted():
    """A dispatched request with no attempt at all violates 6."""
    history = replace(clean(), requests={**clean().requests, "ghost": KEY})
    assert ["request ghost has no outcome"] == [v.detail for v in check_no_loss(history)]


def test_6_retried_request_is_not_lost():
    """A request whose first attempt died and whose retry finished is not lost."""
    history = clean()
    dead = replace(history.attempts[0], ended=None, outcome=None, error="worker_killed")
    history = replace(history, attempts=[dead, *history.attempts])
    assert [] == check_no_loss(history)


def test_final_attempt_is_the_last_finished():
    """A retried request's outcome is its latest finished attempt."""
    first = attempt("r", D1, "error", start=0.0, end=1.0)
    second = attempt("r", D1, "pushed", start=1.0, end=2.0)
    history = History(
        immutable=False, requests={"r": KEY}, sequences=SEQUENCES, attempts=[second, first]
    )
    final = final_attempts(history)["r"]
    assert final is not None
    assert "pushed" == final.outcome


def test_history_round_trips_through_json():
    """``to_json``/``from_json`` keep every fact."""
    history = clean()
    assert history == History.from_json(history.to_json())


def test_recorder_builds_a_history():
    """The recorder collects attempts from many writers into a History."""
    recorder = Recorder(immutable=False, sequences=SEQUENCES)
    started = recorder.start(
        request_id="s1", worker="w0", key=KEY, sequence=1, digest=D1, started=0.0
    )
    assert (0, 1) == recorder.counts()
    started.ended, started.outcome = 1.0, "pushed"
    recorder.write(TagWrite(KEY, D1, 0.1, 0.2, "w0"))
    recorder.hold(Hold(KEY, 1, 0.05, 0.5, "w0"))
    recorder.observe(Observation(KEY, D1, 0.6, 0.7))
    recorder.set_final({KEY: [D1]})
    history = recorder.history()
    assert (1, 1) == recorder.counts()
    assert dict.fromkeys(INVARIANTS, 0) == check(history).counts


@pytest.mark.parametrize("invariant", sorted(INVARIANTS))
def test_every_invariant_is_described(invariant):
    """The result table names every invariant."""
    assert INVARIANTS[invariant]
