"""Runs across processes: ``pushgate serve`` processes for ``--mode service``, and
worker processes running the push use case, which fault tests SIGKILL and SIGSTOP.

Every child listens on or talks to 127.0.0.1 only, and is given the run's moto
endpoint the AWS way (``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_ECR``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

import httpx

from service.stress.harness import REGION, PushSpec, current_worker, run_threads
from service.stress.record import SUCCESS, Attempt, Hold, TagWrite
from service.stress.run import Run, finish, stress_settings

if TYPE_CHECKING:
    from service.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(settings: Settings, endpoint: str) -> dict[str, str]:
    """The environment of a child: the run's settings as ``PUSHGATE_*``, moto's endpoint."""
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.update(
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ENDPOINT_URL_ECR=endpoint,
    )
    for name, value in settings.model_dump().items():
        if value is None or name.endswith("endpoint_url"):
            continue
        env[f"PUSHGATE_{name.upper()}"] = str(value)
    return env


async def _ensure_tables(settings: Settings) -> None:
    from service.adapters.aws import open_clients  # noqa: PLC0415
    from service.adapters.tables import ensure_tables  # noqa: PLC0415

    async with open_clients(settings) as clients:
        await ensure_tables(clients.dynamodb, settings)


def ensure_tables(settings: Settings) -> None:
    asyncio.run(_ensure_tables(settings))


# --- pushgate serve processes ------------------------------------------------------------


class ServiceFleet:
    """``count`` ``pushgate serve`` processes on free ports of 127.0.0.1, over one set of
    tables. ``kill(i)`` SIGKILLs one; ``start(i)`` (re)starts it on the same port."""

    def __init__(self, settings: Settings, endpoint: str, count: int) -> None:
        self._env = child_env(settings, endpoint)
        self._env["PUSHGATE_LOG_LEVEL"] = "warning"
        self.ports = [free_port() for _ in range(count)]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._logs = tempfile.TemporaryDirectory(prefix="pushgate-stress-")
        self.restarts = 0

    def log_path(self, index: int) -> Path:
        return Path(self._logs.name) / f"service-{index}.log"

    def start(self, index: int, *, timeout: float = 30.0) -> None:
        command = [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports[index]),
        ]
        with self.log_path(index).open("ab") as log:
            self._procs[index] = subprocess.Popen(  # noqa: S603 - our own interpreter
                command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready(index, timeout)

    def _wait_ready(self, index: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self._procs[index]
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                log = self.log_path(index).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pushgate serve exited with {proc.returncode}:\n{log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.urls[index] + "/healthz", timeout=1.0).status_code == 200:  # noqa: PLR2004
                    return
            time.sleep(0.1)
        raise RuntimeError(f"pushgate serve on {self.urls[index]} did not start in {timeout}s")

    def kill(self, index: int) -> None:
        proc = self._procs[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self, index: int, *, down_seconds: float = 0.0) -> None:
        self.kill(index)
        time.sleep(down_seconds)
        self.start(index)
        self.restarts += 1

    def __enter__(self) -> Self:
        try:
            for index in range(len(self.ports)):
                self.start(index)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self._procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self._logs.cleanup()


def _epoch(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def collect_service_history(run: Run, url: str) -> None:
    """Read pushgate's history of every tag: pushes that moved the tag become writes
    (in their ``[started, finished]`` window, with their token); a push answered with a
    token and a lease wait becomes a hold ``[started + waited, finished]``."""
    from service.client import PushClient  # noqa: PLC0415

    waited: dict[tuple[str, int | None, str], float] = {
        (a.key, a.token, a.worker): a.waited_ms
        for a in run.recorder.history().attempts
        if a.token is not None and a.waited_ms is not None
    }
    holds: dict[tuple[str, int], Hold] = {}
    with PushClient(url) as client:
        for tag in run.config.tag_names:
            key = f"{run.config.repository}:{tag}"
            cursor: str | None = None
            for _ in range(10_000):  # bounded: at most 1,000,000 entries
                page = client.history(run.config.repository, tag, limit=100, cursor=cursor)
                for entry in page.items:
                    started, finished = _epoch(entry.started_at), _epoch(entry.finished_at)
                    if entry.outcome in {"pushed", "repaired"} and entry.digest:
                        run.recorder.write(
                            TagWrite(
                                key, entry.digest, started, finished, entry.caller, entry.token
                            )
                        )
                    wait = waited.get((key, entry.token, entry.caller))
                    if entry.token is None or wait is None or entry.outcome not in SUCCESS:
                        continue
                    # several entries share a token when pushes were answered from the
                    # holder's push (coalescing): the holder's is the earliest
                    hold = Hold(key, entry.token, started + wait / 1000, finished, entry.caller)
                    known = holds.get((key, entry.token))
                    if known is None or hold.start < known.start:
                        holds[(key, entry.token)] = hold
                cursor = page.next_cursor
                if not cursor:
                    break
    for hold in holds.values():
        run.recorder.hold(hold)


Chaos = Callable[[ServiceFleet, "Run"], None]


def run_service_mode(run: Run, chaos: Chaos | None = None) -> None:
    """Push through the HTTP API of ``instances`` service processes; workers use
    ``service.client.PushClient`` (which retries connection errors and 503s)."""
    from service.client import PushClient, PushgateError, RetryPolicy  # noqa: PLC0415
    from service.client import TagImmutable as ClientTagImmutable  # noqa: PLC0415

    settings = stress_settings(run.config, None)
    ensure_tables(stress_settings(run.config, run.endpoint))
    with ServiceFleet(settings, run.endpoint, run.config.instances) as fleet:
        chaos_thread: threading.Thread | None = None
        if chaos is not None:
            chaos_thread = threading.Thread(target=chaos, args=(fleet, run), daemon=True)
            chaos_thread.start()

        def worker(index: int) -> None:
            name = f"w{index}"
            current_worker.set(name)
            retry = RetryPolicy(deadline=run.config.request_deadline_seconds, base=0.1, cap=2.0)
            url = fleet.urls[index % len(fleet.urls)]
            with PushClient(url, caller=name, retry=retry, timeout=60.0) as client:
                while (spec := run.dispatcher.next()) is not None:
                    attempt = run.start(spec, name)
                    attempt.tries = 1
                    try:
                        result = client.push(
                            spec.repository, spec.tag, spec.manifest, sequence=spec.sequence
                        )
                    except ClientTagImmutable:
                        finish(attempt, "tag_immutable", "tag_immutable")
                    except PushgateError as exc:
                        finish(attempt, "error", str(getattr(exc, "code", type(exc).__name__)))
                    except Exception as exc:  # noqa: BLE001 - every attempt ends in an outcome
                        finish(attempt, "error", type(exc).__name__)
                    else:
                        attempt.token, attempt.waited_ms = result.token, result.waited_ms
                        finish(attempt, result.outcome)

        run_threads(run.config.workers, worker, timeout=run.config.deadline_seconds + 60)
        if chaos_thread is not None:
            chaos_thread.join(timeout=60)
        collect_service_history(run, fleet.urls[-1])


# --- worker processes (pushgate mode across processes) -----------------------------------


class WorkerProcess:
    """One ``python -m service.stress.worker``: specs in on stdin, events out on stdout."""

    def __init__(self, name: str, env: dict[str, str], config: dict[str, Any]) -> None:
        self.name = name
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter
            [sys.executable, "-m", "service.stress.worker", json.dumps(config), self.name],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None  # noqa: S101 - PIPE was asked for
        assert self.proc.stdout is not None  # noqa: S101
        self._stdin: IO[bytes] = self.proc.stdin
        self._stdout: IO[bytes] = self.proc.stdout

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, spec: PushSpec) -> bool:
        try:
            self._stdin.write(json.dumps(spec.to_json()).encode() + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def events(self) -> Iterator[dict[str, Any]]:
        """Events until the current spec is done; ends early if the process died."""
        for line in self._stdout:
            event = json.loads(line)
            yield event
            if event.get("event") == "done":
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stdout.close()


#: Called on every event of a worker process: (event, the process, the run).
EventHook = Callable[[dict[str, Any], WorkerProcess, "Run"], None]


def run_worker_processes(
    run: Run,
    *,
    processes: int,
    on_event: EventHook | None = None,
    pause_seconds: float | None = None,
) -> None:
    """Push from ``processes`` worker processes, each a push service of its own.

    A process that dies mid-request (SIGKILL) leaves its attempt unfinished and its
    lease held: the harness records the hold up to the moment the dead holder would
    have stopped trusting it, hands the request out again (its caller retries), and
    starts a fresh process. A process that stops itself (``pause``) is resumed with
    SIGCONT after ``pause_seconds``."""

    settings = stress_settings(run.config, None)
    ensure_tables(stress_settings(run.config, run.endpoint))
    env = child_env(settings, run.endpoint)
    config = {
        "seed": run.config.seed,
        "jitter_ms": run.config.jitter_ms,
        "request_deadline_seconds": run.config.request_deadline_seconds,
        "dynamodb_faults": run.config.dynamodb_faults,
        "ecr_faults": run.config.ecr_faults,
        "lease_seconds": run.config.lease_seconds,
        "run_id": run.config.run_id,
    }
    pause = pause_seconds if pause_seconds is not None else run.config.lease_seconds * 2 + 2

    def resume_later(worker: WorkerProcess) -> None:
        time.sleep(pause)
        if worker.proc.poll() is None:  # still our (stopped) child, not killed meanwhile
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGCONT)

    def drive(index: int) -> None:
        current_worker.set(f"p{index}")
        spawned = 0
        worker = WorkerProcess(f"p{index}", env, config)
        try:
            while (spec := run.dispatcher.next()) is not None:
                attempt = run.start(spec, worker.name)
                finished, holding = False, None
                if worker.send(spec):
                    finished, holding = _relay(worker, attempt, run, on_event, resume_later)
                if finished:
                    continue
                # the process died mid-request: its lease stays held until it expires
                worker.close()
                if holding is not None:
                    run.recorder.hold(
                        Hold(
                            attempt.key,
                            int(holding["token"]),
                            float(holding["start"]),
                            float(holding["trusted_until"]),
                            worker.name,
                            lost=True,
                        )
                    )
                attempt.error = "worker_killed"
                run.dispatcher.requeue(dataclasses.replace(spec, pause=None))  # once
                spawned += 1
                worker = WorkerProcess(f"p{index}.{spawned}", env, config)
        finally:
            worker.close()

    run_threads(processes, drive, timeout=run.config.deadline_seconds + 60)


def _relay(
    worker: WorkerProcess,
    attempt: Attempt,
    run: Run,
    on_event: EventHook | None,
    resume_later: Callable[[WorkerProcess], None],
) -> tuple[bool, dict[str, Any] | None]:
    """Relay one request's events into the run; (finished, the lease held if it died)."""
    holding: dict[str, Any] | None = None
    for event in worker.events():
        kind = event.get("event")
        if kind == "acquired":
            holding = event
        elif kind == "hold":
            holding = None
            run.recorder.hold(Hold(**event["hold"]))
        elif kind == "write":
            run.recorder.write(TagWrite(**event["write"]))
        elif kind == "pausing":
            threading.Thread(target=resume_later, args=(worker,), daemon=True).start()
        elif kind == "done":
            _finish_from(attempt, event["attempt"])
        if on_event is not None:
            on_event(event, worker, run)
        if kind == "done":
            return True, None
    return False, holding


def _finish_from(attempt: Attempt, data: dict[str, Any]) -> None:
    attempt.token = data.get("token")
    attempt.waited_ms = data.get("waited_ms")
    attempt.tries = int(data.get("tries", 1))
    attempt.ended = float(data["ended"])
    attempt.error = data.get("error")
    attempt.outcome = str(data["outcome"])
