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
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from service import codes
from service.client import PushClient, split_ref
from service.client import errors as client_errors
from service.codes import Exit

if TYPE_CHECKING:
    from rich.text import Text

#: Errors that are not the API's: the CLI's own input, and no answer at all.
EXIT_FOR: list[tuple[type[Exception], Exit]] = [
    (client_errors.ServiceUnreachable, codes.code("service_unreachable").exit),
    (ValueError, Exit.INVALID),
    (OSError, Exit.INVALID),
]

Url = Annotated[str | None, typer.Option("--url", envvar="PUSHGATE_URL", help="pushgate base URL.")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="PUSHGATE_TOKEN", help="Bearer token.", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
Ref = Annotated[str, typer.Argument(metavar="REPOSITORY:TAG", help="e.g. team/app:latest")]


#: What a terminal acts on rather than shows: C0 controls (ESC among them), DEL, C1
#: controls, and the bidirectional controls that reorder what follows them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """``value`` as text a terminal shows as it is: each control character as its
    escape (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"  # noqa: PLR2004


def _text(value: object) -> Text:
    """A table cell or title: plain text, never read as rich markup."""
    from rich.text import Text  # noqa: PLC0415 - only for the tables

    return Text(printable(value))


def exit_code(exc: BaseException) -> Exit:
    """An API error exits with its code's exit code (``service.codes``; an unknown code
    with the one its status stands for); other errors by ``EXIT_FOR``."""
    if isinstance(exc, client_errors.ApiError):
        return codes.lookup(exc.code, exc.status).exit
    for cls, code in EXIT_FOR:
        if isinstance(exc, cls):
            return code
    return Exit.FAILED


def _code(exc: BaseException) -> str:
    """The error's code for ``--json``: the API's, or one of the CLI's own."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    if isinstance(exc, OSError):
        return "unreadable_file"
    if isinstance(exc, ValueError):
        return "invalid_input"
    return "error"


def fail(exc: BaseException, *, debug: bool, as_json: bool) -> NoReturn:
    if debug:
        raise exc
    code = exit_code(exc)
    if as_json:
        payload: dict[str, Any] = {"error": _code(exc)}
        payload["message"] = str(exc)
        payload.update(getattr(exc, "details", {}) or {})
        typer.echo(json.dumps(payload), err=True)
    elif isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or exc
        typer.echo(printable(f"error: cannot read {exc.filename}: {reason}"), err=True)
    else:
        typer.echo(printable(f"error: {exc}"), err=True)
    raise typer.Exit(int(code))


def _client(url: str | None, token: str | None, *, as_json: bool = False) -> PushClient:
    # with --json, stderr carries one JSON document on failure and nothing else
    return PushClient(url, token, caller=None, on_retry=None if as_json else _StillTrying())


class _StillTrying:
    """Says once, on stderr, that the command is retrying, so a CI log shows why it
    waits instead of staying silent until the deadline."""

    def __init__(self) -> None:
        self.said = False

    def __call__(self, error: Exception, delay: float, remaining: float) -> None:
        if self.said:
            return
        self.said = True
        typer.echo(
            printable(
                f"{error}; retrying in {delay:.1f} s, for up to {remaining:.1f} s more "
                "(PUSHGATE_DEADLINE_SECONDS bounds the whole command)"
            ),
            err=True,
        )


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
