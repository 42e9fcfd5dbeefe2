"""The six invariants of a stress run, checked from its recorded :class:`History`.

Pure functions: no clock, no I/O. Each returns the violations it found; ``check``
runs all six. Times are wall-clock seconds from one host; every fact comes with the
window in which it happened (``record``), and a violation is reported only when the
windows prove it (an earlier fact ended before a later one began), never on a guess.

1. at the end each tag names exactly one image, and it is the digest of the highest
   sequence any push reported success for (on an IMMUTABLE repo: the winner's digest);
2. the tag's sequence never decreases: no write or read of the tag shows an older
   build after a newer one was seen (and, with fencing tokens, no push recorded under
   a later token moved it to a lower sequence);
3. lease holding periods of one key never overlap, and tokens increase in grant order;
4. an identical re-push (the same digest on the same tag, pushed by two or more
   requests) never ends in failure;
5. on an IMMUTABLE repo at most one distinct digest ever wins the tag (reported as
   pushed/unchanged, written, or seen); the rest get ``tag_immutable``;
6. no request is lost: every dispatched request ends in a recorded outcome.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from service.stress.record import SUCCESS, TAG_IMMUTABLE, WINNING, Attempt, History

INVARIANTS: dict[int, str] = {
    1: "ends on newest build",
    2: "never moves back",
    3: "leases exclusive",
    4: "re-push never fails",
    5: "one immutable winner",
    6: "no request lost",
}


@dataclass(frozen=True)
class Violation:
    invariant: int
    key: str
    detail: str


@dataclass(frozen=True)
class Verdict:
    violations: tuple[Violation, ...]

    def count(self, invariant: int) -> int:
        return sum(1 for v in self.violations if v.invariant == invariant)

    @property
    def counts(self) -> dict[int, int]:
        return {number: self.count(number) for number in INVARIANTS}

    @property
    def ok(self) -> bool:
        return not self.violations


def final_attempts(history: History) -> dict[str, Attempt | None]:
    """Each dispatched request's last finished attempt (None: it never finished)."""
    finals: dict[str, Attempt | None] = dict.fromkeys(history.requests)
    for attempt in history.attempts:
        if not attempt.done:
            continue
        current = finals.get(attempt.request_id)
        assert attempt.ended is not None  # noqa: S101 - done implies ended
        if current is None or (current.ended or 0.0) <= attempt.ended:
            finals[attempt.request_id] = attempt
    return finals


def _finals_by_key(history: History) -> dict[str, list[Attempt]]:
    by_key: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in final_attempts(history).values():
        if attempt is not None:
            by_key[attempt.key].append(attempt)
    return by_key


def _short(digest: str | None) -> str:
    return "none" if digest is None else digest.removeprefix("sha256:")[:12]


def _winners(finals: list[Attempt]) -> set[str]:
    return {a.digest for a in finals if a.outcome in WINNING}


def check_final_state(history: History) -> list[Violation]:
    """Invariant 1."""
    violations: list[Violation] = []
    by_key = _finals_by_key(history)
    for key in sorted(set(history.requests.values())):
        finals = by_key.get(key, [])
        succeeded = [a for a in finals if a.outcome in SUCCESS]
        if not succeeded:
            continue
        images = history.final.get(key, [])
        if len(images) != 1:
            violations.append(Violation(1, key, f"the tag names {len(images)} images"))
            continue
        actual = images[0]
        if history.immutable:
            winners = _winners(finals)
            if actual not in winners:
                violations.append(
                    Violation(1, key, f"the tag names {_short(actual)}, which no push won")
                )
            continue
        newest = max(succeeded, key=lambda a: a.sequence)
        if actual != newest.digest:
            seen = history.sequences.get(actual)
            violations.append(
                Violation(
                    1,
                    key,
                    f"the tag names sequence {seen} ({_short(actual)}), "
                    f"expected {newest.sequence} ({_short(newest.digest)})",
                )
            )
    return violations


@dataclass(frozen=True)
class _Event:
    lo: float
    hi: float
    sequence: int
    digest: str | None


def _events(history: History) -> dict[str, list[_Event]]:
    events: dict[str, list[_Event]] = defaultdict(list)
    for write in history.writes:
        sequence = history.sequences.get(write.digest)
        if sequence is not None:
            events[write.key].append(_Event(write.sent, write.received, sequence, write.digest))
    for seen in history.observations:
        if seen.digest is None:
            # an absent tag: sequence -1, below every build
            events[seen.key].append(_Event(seen.sent, seen.received, -1, None))
            continue
        sequence = history.sequences.get(seen.digest)
        if sequence is not None:
            events[seen.key].append(_Event(seen.sent, seen.received, sequence, seen.digest))
    return events


def check_monotonic(history: History) -> list[Violation]:
    """Invariant 2: one violation per older build seen after a newer one, per key."""
    regressed: dict[tuple[str, str | None], str] = {}
    for key, events in _events(history).items():
        by_lo = sorted(events, key=lambda e: e.lo)
        by_hi = sorted(events, key=lambda e: e.hi)
        newest: _Event | None = None
        index = 0
        for event in by_lo:
            while index < len(by_hi) and by_hi[index].hi < event.lo:
                done = by_hi[index]
                if newest is None or done.sequence > newest.sequence:
                    newest = done
                index += 1
            if newest is not None and event.sequence < newest.sequence:
                regressed.setdefault(
                    (key, event.digest),
                    f"sequence {event.sequence} seen after sequence {newest.sequence}",
                )
    fenced: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for write in history.writes:
        sequence = history.sequences.get(write.digest)
        if write.token is not None and sequence is not None:
            fenced[write.key].append((write.token, sequence, write.digest))
    for key, writes in fenced.items():
        highest: tuple[int, int, str] | None = None
        for token, sequence, digest in sorted(writes):
            if highest is not None and sequence < highest[1]:
                regressed.setdefault(
                    (key, digest),
                    f"sequence {sequence} written under token {token} after sequence "
                    f"{highest[1]} under token {highest[0]}",
                )
            if highest is None or sequence > highest[1]:
                highest = (token, sequence, digest)
    return [Violation(2, key, detail) for (key, _), detail in sorted(regressed.items(), key=str)]


def check_leases(history: History) -> list[Violation]:
    """Invariant 3."""
    violations: list[Violation] = []
    by_key = defaultdict(list)
    for hold in history.holds:
        by_key[hold.key].append(hold)
    for key, holds in sorted(by_key.items()):
        ordered = sorted(holds, key=lambda h: (h.start, h.token))
        latest_end = ordered[0].end
        latest_token = ordered[0].token
        for hold in ordered[1:]:
            if hold.start < latest_end:
                violations.append(
                    Violation(
                        3,
                        key,
                        f"token {hold.token} held from {hold.start:.3f} while an earlier "
                        f"hold lasted until {latest_end:.3f}",
                    )
                )
            if hold.token <= latest_token:
                violations.append(
                    Violation(3, key, f"token {hold.token} granted after token {latest_token}")
                )
            latest_end = max(latest_end, hold.end)
            latest_token = max(latest_token, hold.token)
    return violations


def check_repush(history: History) -> list[Violation]:
    """Invariant 4."""
    violations: list[Violation] = []
    groups: dict[tuple[str, str], list[Attempt | None]] = defaultdict(list)
    finals = final_attempts(history)
    digests: dict[str, tuple[str, str]] = {}
    for attempt in history.attempts:
        digests[attempt.request_id] = (attempt.key, attempt.digest)
    for request_id, final in finals.items():
        if request_id in digests:
            groups[digests[request_id]].append(final)
    for (key, digest), group in sorted(groups.items()):
        if len(group) < 2:  # noqa: PLR2004 - a re-push needs two requests
            continue
        tag_names = history.final.get(key, [])
        for final in group:
            if final is None or final.outcome in SUCCESS:
                continue  # a lost request is invariant 6's
            if final.outcome == TAG_IMMUTABLE and history.immutable and digest not in tag_names:
                continue  # a losing digest re-pushed is refused again: correct
            violations.append(
                Violation(
                    4,
                    key,
                    f"re-push of {_short(digest)} ended in {final.outcome}"
                    + (f" ({final.error})" if final.error else ""),
                )
            )
    return violations


def check_immutable(history: History) -> list[Violation]:
    """Invariant 5 (IMMUTABLE runs only)."""
    if not history.immutable:
        return []
    violations: list[Violation] = []
    by_key = _finals_by_key(history)
    seen: dict[str, set[str]] = defaultdict(set)
    for write in history.writes:
        seen[write.key].add(write.digest)
    for observation in history.observations:
        if observation.digest is not None:
            seen[observation.key].add(observation.digest)
    for key, images in history.final.items():
        seen[key].update(images)
    for key in sorted(set(history.requests.values())):
        winners = _winners(by_key.get(key, [])) | seen.get(key, set())
        violations.extend(
            Violation(5, key, f"{len(winners)} digests won the tag, e.g. {_short(digest)}")
            for digest in sorted(winners)[1:]
        )
    return violations


def check_no_loss(history: History) -> list[Violation]:
    """Invariant 6."""
    return [
        Violation(6, history.requests[request_id], f"request {request_id} has no outcome")
        for request_id, final in sorted(final_attempts(history).items())
        if final is None
    ]


def check(history: History) -> Verdict:
    """All six invariants."""
    return Verdict(
        tuple(
            check_final_state(history)
            + check_monotonic(history)
            + check_leases(history)
            + check_repush(history)
            + check_immutable(history)
            + check_no_loss(history)
        )
    )
