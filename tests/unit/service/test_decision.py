"""The push decision (``decide``), pure: every combination of a small world of digests
and sequences, and its properties for any sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.decision import (
    Named,
    Put,
    Superseded,
    TagState,
    Unchanged,
    current,
    decide,
)
from service.domain.limits import MAX_SEQUENCE
from service.domain.models import PushRequest
from tests.unit.service.fakes import request

DIGESTS = (1, 2)
SEQUENCES = (None, 0, 1, 2)
#: a tag's state: nothing yet, or (build, sequence)
STATES: list[tuple[int, int | None] | None] = [
    None,
    *itertools.product(DIGESTS, SEQUENCES),
]
REQUESTS = list(itertools.product(DIGESTS, SEQUENCES))


def state(spec: tuple[int, int | None] | None) -> Named | None:
    return None if spec is None else Named(request(spec[0]).digest, spec[1])


def expected(tag: TagState | None, req: PushRequest) -> Unchanged | Superseded | Put:
    """The rules as the README states them, one by one."""
    if tag is None:
        return Put(req.sequence)
    if tag.digest == req.digest:
        raises = req.sequence is not None and (tag.sequence is None or req.sequence > tag.sequence)
        return Unchanged(req.sequence if raises else None)
    if None not in (tag.sequence, req.sequence) and req.sequence < tag.sequence:  # type: ignore[operator]
        return Superseded()
    return Put(tag.sequence if req.sequence is None else req.sequence)


@pytest.mark.parametrize("record", STATES)
@pytest.mark.parametrize("pending", STATES)
@pytest.mark.parametrize(("build", "sequence"), REQUESTS)
def test_every_combination(
    record: tuple[int, int | None] | None,
    pending: tuple[int, int | None] | None,
    build: int,
    sequence: int | None,
) -> None:
    """Over every record, landed intent and request of a small world, the decision is
    the stated rule applied to what the tag names (the intent when one landed)."""
    req = request(build, sequence=sequence)
    tag = current(state(record), state(pending))
    assert expected(tag, req) == decide(state(record), state(pending), req)


SEQ = st.one_of(st.none(), st.integers(0, MAX_SEQUENCE))


@given(st.integers(0, 3), SEQ, st.integers(0, 3), SEQ)
def test_the_tag_never_moves_back(
    recorded: int, recorded_sequence: int | None, build: int, sequence: int | None
) -> None:
    """Whatever the decision, the sequence the tag keeps never decreases, and a known
    sequence is never forgotten."""
    tag = Named(request(recorded).digest, recorded_sequence)
    decision = decide(tag, None, request(build, sequence=sequence))
    after = recorded_sequence
    match decision:
        case Put(sequence=kept):
            after = kept
        case Unchanged(raise_to=raised) if raised is not None:
            after = raised
    if recorded_sequence is not None:
        assert after is not None
        assert after >= recorded_sequence


@given(st.integers(0, 3), SEQ, st.integers(0, 3), SEQ)
def test_only_a_put_calls_putimage_for_another_digest(
    recorded: int, recorded_sequence: int | None, build: int, sequence: int | None
) -> None:
    """The same digest is never put again; another digest is put or superseded."""
    tag = Named(request(recorded).digest, recorded_sequence)
    decision = decide(tag, None, request(build, sequence=sequence))
    assert (recorded == build) == isinstance(decision, Unchanged)


def test_a_landed_intent_counts_as_the_record() -> None:
    """A landed intent with a higher sequence supersedes an older build that the record
    alone would have let through."""
    record, pending = Named(request(1).digest, 1), Named(request(3).digest, 3)
    req = request(2, sequence=2)
    assert (Put(2), Superseded()) == (decide(record, None, req), decide(record, pending, req))
