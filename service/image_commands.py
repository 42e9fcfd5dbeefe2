"""``pushgate push-image``: a whole image (OCI layout, OCI tar or ``docker save`` tar)
through pushgate's registry API, with a progress bar on a terminal.

It uses :mod:`service.client.images` only (httpx), like the other client commands, and
their exit codes (``service.codes.Exit``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Self

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from service.cli_common import AsJson, Debug, Token, Url, fail
from service.client import errors as client_errors
from service.client import split_ref
from service.client.images import ImagePushResult, push_image


class ProgressBar:
    """Bytes and blobs uploaded, on stderr (``push_image``'s progress receiver)."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task: TaskID | None = None
        self.blobs = 0
        self.done = 0

    def __enter__(self) -> Self:
        self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.stop()

    def planned(self, blobs: int, size: int) -> None:
        self.blobs = blobs
        self.task = self.bar.add_task(self._label(), total=size)

    def advanced(self, size: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, size)

    def blob_done(self, _digest: str) -> None:
        self.done += 1
        if self.task is not None:
            self.bar.update(self.task, description=self._label())

    def _label(self) -> str:
        return f"blobs {self.done}/{self.blobs}"


def _repository_and_tags(targets: list[str]) -> tuple[str, list[str]]:
    pairs = [split_ref(target) for target in targets]
    repositories = {repository for repository, _ in pairs}
    if len(repositories) != 1:
        raise ValueError(f"all tags must be of one repository, got {sorted(repositories)}")
    return pairs[0][0], [tag for _, tag in pairs]


def push_image_command(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SOURCE", help="OCI layout directory, OCI layout tar or `docker save` tar."
        ),
    ],
    targets: Annotated[
        list[str],
        typer.Argument(metavar="REPOSITORY:TAG...", help="One or more tags of one repository."),
    ],
    sequence: Annotated[
        int | None,
        typer.Option("--sequence", min=0, help="The build's position, e.g. CI build number."),
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, max=32, help="Blob uploads at once.")
    ] = 4,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="The image of a layout naming several, by its ref name."),
    ] = None,
    *,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Push the image at SOURCE (its missing blobs, its manifests) under each tag."""
    try:
        repository, tags = _repository_and_tags(targets)
        # a progress bar only where a person watches: never with --json or into a log
        quiet = as_json or not sys.stderr.isatty()
        with contextlib.nullcontext() if quiet else ProgressBar() as bar:
            result = push_image(
                url,
                source,
                repository,
                tags,
                sequence=sequence,
                token=token,
                parallel=parallel,
                progress=bar,
                ref=ref,
            )
    except (client_errors.PushgateError, ValueError, OSError) as exc:
        fail(exc, debug=debug, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result)))
        return
    _print(result)


def _print(result: ImagePushResult) -> None:
    typer.echo(
        f"blobs: {result.blobs_uploaded} uploaded ({result.bytes_uploaded} bytes), "
        f"{result.blobs_skipped} already in {result.repository}"
    )
    for tag in result.tags:
        line = f"{tag.outcome}: {result.repository}:{tag.tag} {tag.digest}"
        if tag.outcome == "superseded":
            line += " (a newer build holds the tag; this image is stored by digest)"
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``push-image`` to the ``pushgate`` app."""
    app.command(name="push-image")(push_image_command)
