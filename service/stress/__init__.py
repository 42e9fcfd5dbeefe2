"""The stress suite: reproduce the concurrent-push race under moto, prove pushgate
removes it, and keep proving it under faults.

- ``record``: the attempt log (attempts, lease holds, tag writes, observations);
- ``invariants``: the six invariants, checked purely from a recorded history;
- ``harness``: plan, dispatcher, jitter and fault hooks on botocore clients;
- ``run``: a run's configuration and the state its modes share;
- ``modes``: raw, lease, pushgate (in-process) and service (HTTP) runs;
- ``processes``: ``pushgate serve`` processes and killable worker processes;
- ``report``: the result table and ``--json`` summary.

Run it with ``pushgate stress`` or ``python -m service.stress`` (the command: ``cli``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: where each public name lives; imported on first use, so that ``service.stress.cli``
#: (registered by the ``pushgate`` CLI) loads no server or moto module on a client install
_HOME = {
    "INVARIANTS": "invariants",
    "Verdict": "invariants",
    "Violation": "invariants",
    "check": "invariants",
    "RunResult": "modes",
    "run_stress": "modes",
    "Attempt": "record",
    "History": "record",
    "Hold": "record",
    "Observation": "record",
    "Recorder": "record",
    "TagWrite": "record",
    "MODES": "run",
    "RunConfig": "run",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


__all__ = [
    "INVARIANTS",
    "MODES",
    "Attempt",
    "History",
    "Hold",
    "Observation",
    "Recorder",
    "RunConfig",
    "RunResult",
    "TagWrite",
    "Verdict",
    "Violation",
    "check",
    "run_stress",
]
