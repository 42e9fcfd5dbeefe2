"""What the client commands share: their options, plain-text printing of what the server
sends (never rich markup; control characters escaped: a ``caller`` is anyone's free
text), exit codes from ``service.codes`` and the one-sentence failure.

``service.commands``, ``service.tag_commands`` and ``service.image_commands`` import it;
it imports none of them.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from service import codes
from service.client import PushClient
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
