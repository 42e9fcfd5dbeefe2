"""``pushgate tag REPOSITORY@sha256:DIGEST TAG...``: move tags to an image already in ECR;
and the forms of ``pushgate push`` with several tags (``--tag`` repeated) or none (by
digest alone).

Each tag is answered on its own line. The exit code is 0 when every tag succeeded, else
the exit code of the first failed tag's error code (``service.codes``: 3 for
``tag_immutable``, 4 for ``lease_timeout``...), so a CI step fails when any tag did not
move and a rerun is safe (the tags that moved answer ``unchanged``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Annotated

import typer

from service import codes
from service.cli_common import AsJson, Debug, Token, Url, _client, fail, printable
from service.client import DigestPushResult, TagsResult, split_ref
from service.client import errors as client_errors
from service.client._base import read_manifest

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
REPAIRED = "; repaired: the tag had drifted from its record and was put back"


def split_digest_ref(ref: str) -> tuple[str, str]:
    """``REPOSITORY@sha256:DIGEST`` into its parts."""
    repository, sep, digest = ref.partition("@")
    if not sep or not repository or not DIGEST_RE.fullmatch(digest):
        raise ValueError(f"expected REPOSITORY@sha256:<64 hex digits>, got {ref!r}")
    return repository, digest


def tag(
    ref: Annotated[
        str, typer.Argument(metavar="REPOSITORY@sha256:DIGEST", help="The image already in ECR.")
    ],
    tags: Annotated[list[str], typer.Argument(metavar="TAG...", help="The tags to move to it.")],
    sequence: Annotated[
        int | None,
        typer.Option("--sequence", min=0, help="The build's position, e.g. CI build number."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Read the image from this repository of the same registry."),
    ] = None,
    wait: Annotated[
        float | None, typer.Option("--wait", min=0, help="Seconds to wait for each tag's lease.")
    ] = None,
    *,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
    debug: Debug = False,
) -> None:
    """Move TAG... of REPOSITORY to the image DIGEST, one tag at a time."""
    try:
        repository, digest = split_digest_ref(ref)
        with _client(url, token, as_json=as_json) as client:
            result = client.promote(
                repository,
                digest,
                tags,
                sequence=sequence,
                source_repository=source,
                wait_seconds=wait,
            )
    except (client_errors.PushgateError, ValueError, OSError) as exc:
        fail(exc, debug=debug, as_json=as_json)
    render(result, as_json=as_json)


def push_untagged(
    ref: str,
    extra_tags: list[str],
    manifest_file: Path,
    *,
    by_digest: bool,
    sequence: int | None,
    wait: float | None,
    media_type: str | None,
    digest: str | None,
    url: str | None,
    token: str | None,
    as_json: bool,
    debug: bool,
) -> None:
    """``pushgate push`` with ``--tag`` (several tags) or ``--by-digest`` (no tag)."""
    try:
        repository, tags = _targets(ref, extra_tags, by_digest=by_digest)
        manifest = read_manifest(manifest_file)
        with _client(url, token, as_json=as_json) as client:
            answer: TagsResult | DigestPushResult
            if tags:
                answer = client.push_tags(
                    repository,
                    tags,
                    manifest,
                    media_type=media_type,
                    sequence=sequence,
                    wait_seconds=wait,
                    expected_digest=digest,
                )
            else:
                answer = client.push_digest(
                    repository, manifest, media_type=media_type, expected_digest=digest
                )
    except (client_errors.PushgateError, ValueError, OSError) as exc:
        fail(exc, debug=debug, as_json=as_json)
    if isinstance(answer, TagsResult):
        render(answer, as_json=as_json)
    elif as_json:
        typer.echo(json.dumps(dataclasses.asdict(answer)))
    else:
        line = f"{answer.outcome}: {answer.repository}@{answer.digest} (by digest, no tag)"
        typer.echo(printable(line))


def _targets(ref: str, extra_tags: list[str], *, by_digest: bool) -> tuple[str, list[str]]:
    """The repository and tags of ``pushgate push``'s REF and ``--tag``s."""
    if by_digest:
        if ":" in ref or extra_tags:
            raise ValueError("--by-digest takes a bare REPOSITORY and no --tag")
        return ref, []
    repository, first = split_ref(ref)
    return repository, [first, *extra_tags]


def render(result: TagsResult, *, as_json: bool) -> None:
    """One line per tag (or the JSON answer); exit with the first failed tag's code."""
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result)))
    else:
        seq = "" if result.sequence is None else f" sequence {result.sequence}"
        for item in result.tags:
            where = f"{result.repository}:{item.tag}"
            if item.outcome == "failed":
                typer.echo(printable(f"failed: {where}: {item.error}: {item.message}"))
                continue
            line = f"{item.outcome}: {where} {result.digest}{seq} (token {item.token})"
            if item.outcome == "superseded" and item.current_digest:
                line += f"; the tag stays at {item.current_digest}"
                line += f" (sequence {item.current_sequence})"
            if item.repaired:
                line += REPAIRED
            typer.echo(printable(line))
    if result.failed:
        first = result.failed[0].error or "internal_error"
        raise typer.Exit(int(codes.lookup(first, 500).exit))


def register(app: typer.Typer) -> None:
    """Add ``pushgate tag`` to the ``pushgate`` app."""
    app.command(name="tag")(tag)
