"""Client commands of the ``pushgate`` CLI: push, status, history.

They use :mod:`service.client` only (httpx), so a build agent needs neither FastAPI
nor aioboto3. Errors print one sentence and exit with a documented code; ``--debug``
shows the traceback instead. What the server sends is printed as plain text, never as
rich markup, with control characters escaped: a ``caller`` is anyone's free text.

Exit codes come from ``service.codes``: each error code names its own (README's table
is generated from it).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from service.cli_common import (
    AsJson,
    Debug,
    Ref,
    Token,
    Url,
    _client,
    _text,
    fail,
    printable,
)
from service.client import errors as client_errors
from service.client import split_ref


def push(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REPOSITORY[:TAG]",
            help="e.g. team/app:latest; a bare REPOSITORY with --by-digest.",
        ),
    ],
    manifest_file: Annotated[
        Path,
        typer.Argument(metavar="MANIFEST_FILE", help="Manifest JSON file, sent byte for byte."),
    ],
    sequence: Annotated[
        int | None,
        typer.Option("--sequence", min=0, help="The build's position, e.g. CI build number."),
    ] = None,
    wait: Annotated[
        float | None, typer.Option("--wait", min=0, help="Seconds to wait for the tag's lease.")
    ] = None,
    media_type: Annotated[
        str | None, typer.Option("--media-type", help="Needed when the manifest has no mediaType.")
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Another tag (repeatable); each under its own lease."),
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option("--digest", help="Refuse unless the file hashes to this sha256:... digest."),
    ] = None,
    *,
    by_digest: Annotated[
        bool, typer.Option("--by-digest", help="Put by digest alone, no tag (REPOSITORY only).")
    ] = False,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Push MANIFEST_FILE to REPOSITORY:TAG through pushgate."""
    if tags or by_digest:
        from service import tag_commands  # noqa: PLC0415 - it imports this module

        tag_commands.push_untagged(
            ref, tags or [], manifest_file, by_digest=by_digest, sequence=sequence, wait=wait,
            media_type=media_type, digest=digest, url=url, token=token, as_json=as_json,
            debug=debug,
        )  # fmt: skip
        return
    try:
        repository, tag = split_ref(ref)
        with _client(url, token, as_json=as_json) as client:
            result = client.push_file(
                repository,
                tag,
                manifest_file,
                media_type=media_type,
                sequence=sequence,
                wait_seconds=wait,
                expected_digest=digest,
            )
    except (client_errors.PushgateError, ValueError, OSError) as exc:
        fail(exc, debug=debug, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result)))
        return
    seq = "" if result.sequence is None else f" sequence {result.sequence}"
    where = f"{result.repository}:{result.tag}"
    line = f"{result.outcome}: {where} {result.digest}{seq}"
    line += f" (token {result.token}, waited {result.waited_ms:.0f} ms)"
    if result.outcome == "superseded" and result.current_digest:
        line += f"; the tag stays at {result.current_digest} (sequence {result.current_sequence})"
    if result.repaired:
        line += "; repaired: the tag had drifted from its record and was put back"
    typer.echo(printable(line))


def status(
    ref: Ref, *, url: Url = None, token: Token = None, as_json: AsJson = False, debug: Debug = False
) -> None:
    """Show what REPOSITORY:TAG names now and who moved it last."""
    from rich.console import Console  # noqa: PLC0415 - only for the table
    from rich.table import Table  # noqa: PLC0415

    try:
        repository, tag = split_ref(ref)
        with _client(url, token, as_json=as_json) as client:
            record = client.tag(repository, tag)
    except (client_errors.PushgateError, ValueError) as exc:
        fail(exc, debug=debug, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(record)))
        return
    table = Table(title=_text(f"{record.repository}:{record.tag}"), show_header=False)
    for name, value in [
        ("digest", record.digest),
        ("sequence", record.sequence),
        ("token", record.token),
        ("moved by", record.caller),
        ("moved at", record.updated_at),
        ("request id", record.request_id),
    ]:
        table.add_row(name, _text("-" if value is None else value))
    Console(file=sys.stdout, width=140).print(table)


def history(
    ref: Ref,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100, help="Entries to show, newest first.")
    ] = 20,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="Where to go on: the cursor a previous page printed."),
    ] = None,
    *,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Show the recorded pushes of REPOSITORY:TAG, newest first."""
    from rich.console import Console  # noqa: PLC0415 - only for the table
    from rich.table import Table  # noqa: PLC0415

    try:
        repository, tag = split_ref(ref)
        with _client(url, token, as_json=as_json) as client:
            page = client.history(repository, tag, limit=limit, cursor=cursor)
    except (client_errors.PushgateError, ValueError) as exc:
        fail(exc, debug=debug, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(page)))
        return
    table = Table(title=_text(f"{page.repository}:{page.tag} history (newest first)"))
    for column in ("finished", "outcome", "sequence", "digest", "previous", "token", "caller"):
        table.add_column(column)
    for item in page.items:
        cells = [
            item.finished_at,
            item.outcome,
            "-" if item.sequence is None else item.sequence,
            _short(item.digest),
            _short(item.previous_digest),
            "-" if item.token is None else item.token,
            item.caller,
        ]
        table.add_row(*map(_text, cells))
    Console(file=sys.stdout, width=160).print(table)
    if page.next_cursor:
        more = f"older entries: pushgate history {ref} --limit {limit} --cursor {page.next_cursor}"
        typer.echo(printable(more))


def _short(digest: str | None) -> str:
    if not digest:
        return "-"
    return digest[:19]


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``pushgate`` app."""
    app.command()(push)
    app.command()(status)
    app.command()(history)
