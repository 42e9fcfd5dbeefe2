"""The result of a run: summary figures, a rich table, and the ``--json`` document."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.table import Table

from service.stress.invariants import INVARIANTS, final_attempts

if TYPE_CHECKING:
    from service.stress.modes import RunResult


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summary(result: RunResult) -> dict[str, Any]:
    """The figures of the result table, as plain data."""
    history = result.history
    finals = final_attempts(history)
    outcomes = Counter(
        (final.outcome if final is not None else "lost") for final in finals.values()
    )
    latencies = [
        (final.ended - final.started) * 1000
        for final in finals.values()
        if final is not None and final.ended is not None
    ]
    waits = [a.waited_ms for a in finals.values() if a is not None and a.waited_ms is not None]
    retried = sum(1 for a in history.attempts if a.tries > 1)
    config = result.config
    return {
        "mode": config.mode,
        "workers": config.workers,
        "tags": config.tags,
        "pushes": len(history.requests),
        "planned": config.pushes,
        "not_started": result.not_started,
        "immutable": config.immutable,
        "jitter_ms": config.jitter_ms,
        "seed": config.seed,
        "elapsed_s": round(result.elapsed, 2),
        "outcomes": dict(sorted(outcomes.items())),
        "retried_requests": retried,
        "violations": {str(n): result.verdict.count(n) for n in INVARIANTS},
        "ok": result.verdict.ok and result.not_started == 0,
        "push_latency_ms": {
            "p50": _round(_percentile(latencies, 50)),
            "p99": _round(_percentile(latencies, 99)),
        },
        "lease_wait_ms": {
            "p50": _round(_percentile(waits, 50)),
            "p99": _round(_percentile(waits, 99)),
        },
        # service mode: the calls happen inside the service processes, not counted here
        "put_image_calls": None if config.mode == "service" else result.counters.put_calls,
        "injected_faults": {
            "dynamodb": result.counters.injected_dynamodb,
            "ecr_put_image": result.counters.injected_ecr,
        },
        "examples": [
            {"invariant": v.invariant, "key": v.key, "detail": v.detail} for v in _examples(result)
        ],
    }


def _examples(result: RunResult) -> list[Any]:
    """Up to three violations of each invariant."""
    seen: Counter[int] = Counter()
    examples = []
    for violation in result.verdict.violations:
        if seen[violation.invariant] < 3:  # noqa: PLR2004 - a few examples each
            seen[violation.invariant] += 1
            examples.append(violation)
    return examples


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def table(results: list[RunResult]) -> Table:
    """One column per run: pushes, outcomes, violations of each invariant, latencies."""
    data = [summary(result) for result in results]
    grid = Table(title="pushgate stress: violations of each invariant", show_lines=False)
    grid.add_column("", style="bold", no_wrap=True)
    for item in data:
        grid.add_column(
            item["mode"] + (" (immutable)" if item["immutable"] else ""),
            justify="right",
            no_wrap=True,
        )

    def row(label: str, values: list[str]) -> None:
        grid.add_row(label, *values)

    row("pushes", [f"{d['pushes']} / {d['planned']}" for d in data])
    row("workers x tags", [f"{d['workers']} x {d['tags']}" for d in data])
    names = sorted({name for d in data for name in d["outcomes"]})
    for name in names:
        row(f"  {name}", [str(d["outcomes"].get(name, 0)) for d in data])
    for number, text in INVARIANTS.items():
        counts = [d["violations"][str(number)] for d in data]
        row(
            f"{number}. {text}",
            [f"[red]{c}[/red]" if c else "[green]0[/green]" for c in counts],
        )
    row("push latency p50", [_ms(d["push_latency_ms"]["p50"]) for d in data])
    row("push latency p99", [_ms(d["push_latency_ms"]["p99"]) for d in data])
    row("lease wait p50", [_ms(d["lease_wait_ms"]["p50"]) for d in data])
    row("lease wait p99", [_ms(d["lease_wait_ms"]["p99"]) for d in data])
    row(
        "PutImage calls",
        ["-" if d["put_image_calls"] is None else str(d["put_image_calls"]) for d in data],
    )
    if any(sum(d["injected_faults"].values()) for d in data):
        row(
            "injected faults (ddb / ecr)",
            [
                f"{d['injected_faults']['dynamodb']} / {d['injected_faults']['ecr_put_image']}"
                for d in data
            ],
        )
    row("elapsed", [f"{d['elapsed_s']:.1f} s" for d in data])
    return grid
