"""``pushgate stress``: reproduce the concurrent-push race under moto and show that
pushgate removes it. The command function is :func:`stress`; ``service.cli`` registers
it, and ``python -m service.stress`` runs it alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from service.extras import require

if TYPE_CHECKING:
    from rich.console import Console

    from service.stress.modes import Mode, RunConfig, RunResult

MODE_NAMES = ("raw", "lease", "pushgate", "service")


@contextlib.contextmanager
def local_aws(where: str) -> Iterator[str]:
    """A LocalAWS (moto, one AWS call at a time) on 127.0.0.1: in a child process by
    default (its own interpreter lock, so moto does not slow the workers down)
    (``service.stress.localaws``)."""
    # moto accepts any credentials; set dummy ones only where none are configured
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    if where == "thread":
        from service.localaws import LocalAWS  # noqa: PLC0415

        server = LocalAWS()
        server.start()
        try:
            yield server.endpoint
        finally:
            server.stop()
        return
    from service.stress.processes import free_port  # noqa: PLC0415

    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "service.stress.localaws", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None  # noqa: S101 - PIPE was asked for
        endpoint = proc.stdout.readline().strip()  # its URL, once it listens
        if not endpoint:
            raise RuntimeError("the local moto server did not start")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _run_with_progress(config: RunConfig, endpoint: str, console: Console) -> RunResult:
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from service.stress.modes import execute, prepare  # noqa: PLC0415

    run = prepare(config, endpoint)
    results: list[RunResult] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(execute(run))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="stress-run", daemon=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{config.mode} pushes", total=config.pushes)
        thread.start()
        while thread.is_alive():
            done, _ = run.recorder.counts()
            progress.update(task, completed=done)
            thread.join(timeout=0.2)
    if errors:
        raise errors[0]
    return results[0]


def stress(
    *,
    mode: Annotated[
        str,
        typer.Option(help=f"{' | '.join(MODE_NAMES)}, or 'all' for one column each."),
    ] = "raw",
    workers: Annotated[int, typer.Option(min=1, max=256, help="Concurrent pushers.")] = 10,
    tags: Annotated[int, typer.Option(min=1, max=1000, help="Tags pushed to at once.")] = 4,
    pushes: Annotated[int, typer.Option(min=1, max=1_000_000, help="Push requests.")] = 200,
    jitter_ms: Annotated[
        float, typer.Option(min=0, help="Random delay before and after each PutImage.")
    ] = 20.0,
    immutable: Annotated[bool, typer.Option(help="An IMMUTABLE repository.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the plan and the jitter.")] = 1,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(help="Use this moto/AWS-compatible endpoint instead of a local moto."),
    ] = None,
    local_aws_in: Annotated[
        str, typer.Option("--local-aws", help="Run the local moto in a 'process' or 'thread'.")
    ] = "process",
    check_then_act: Annotated[
        bool, typer.Option(help="raw mode: read the tag, push only over an older build.")
    ] = False,
    lease_seconds: Annotated[float, typer.Option(min=1, help="Lease length.")] = 10.0,
    dynamodb_faults: Annotated[
        float, typer.Option(min=0, max=0.9, help="Fraction of DynamoDB calls that fail.")
    ] = 0.0,
    ecr_faults: Annotated[
        float, typer.Option(min=0, max=0.9, help="Fraction of PutImage calls throttled.")
    ] = 0.0,
    switch_interval: Annotated[
        float | None, typer.Option(help="sys.setswitchinterval for the run, e.g. 1e-6.")
    ] = None,
    deadline: Annotated[
        float, typer.Option(min=1, help="Stop handing out pushes after S.")
    ] = 1800.0,
    fail_on_violation: Annotated[
        bool, typer.Option(help="Exit 1 when any invariant was violated.")
    ] = False,
) -> None:
    """Push concurrently to the same tags and check six invariants from the history
    (local extra)."""
    require("local", "pushgate stress")
    import structlog  # noqa: PLC0415 - imported here so that `pushgate` stays light
    from rich.console import Console  # noqa: PLC0415

    from service.stress.modes import MODES, RunConfig  # noqa: PLC0415
    from service.stress.report import summary, table  # noqa: PLC0415

    modes: list[Mode] = list(MODES) if mode == "all" else []
    if not modes:
        if mode not in MODES:
            raise typer.BadParameter(
                f"must be one of {', '.join(MODES)} or all", param_hint="--mode"
            )
        modes = [mode]
    # the service's own errors (e.g. tag_repair_impossible) on stderr; stdout is the result
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    console = Console(stderr=True)
    results: list[RunResult] = []
    aws = contextlib.nullcontext(endpoint) if endpoint else local_aws(local_aws_in)
    with aws as url:
        for each in modes:
            config = RunConfig(
                mode=each,
                workers=workers,
                tags=tags,
                pushes=pushes,
                jitter_ms=jitter_ms,
                immutable=immutable,
                seed=seed,
                check_then_act=check_then_act,
                lease_seconds=lease_seconds,
                dynamodb_faults=dynamodb_faults,
                ecr_faults=ecr_faults,
                switch_interval=switch_interval,
                deadline_seconds=deadline,
            )
            results.append(_run_with_progress(config, url, console))
    if json_output:
        typer.echo(json.dumps([summary(r) for r in results], indent=2))
    else:
        Console().print(table(results))
        for result in results:
            for item in summary(result)["examples"]:
                where = f"{result.config.mode}: #{item['invariant']} {item['key']}"
                console.print(f"  [dim]{where}: {item['detail']}[/dim]")
    if fail_on_violation and any(not r.verdict.ok or r.not_started for r in results):
        raise typer.Exit(1)
