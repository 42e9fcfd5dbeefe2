"""The stress suite: reproduce the concurrent-push race under moto, prove pushgate
removes it, and keep proving it under faults.

- ``record``: the attempt log (attempts, lease holds, tag writes, observations);
- ``invariants``: the six invariants, checked purely from a recorded history;
- ``harness``: plan, dispatcher, jitter and fault hooks on botocore clients;
- ``run``: a run's configuration and the state its modes share;
- ``modes``: raw, lease, pushgate (in-process) and service (HTTP) runs;
- ``processes``: ``pushgate serve`` processes and killable worker processes;
- ``report``: the result table and ``--json`` summary.

Run it with ``pushgate stress`` or ``python -m service.stress``.
"""

from service.stress.invariants import INVARIANTS, Verdict, Violation, check
from service.stress.modes import RunResult, run_stress
from service.stress.record import Attempt, History, Hold, Observation, Recorder, TagWrite
from service.stress.run import MODES, RunConfig

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
