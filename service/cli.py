"""The ``pushgate`` command line.

- ``pushgate serve [--local] [--host 127.0.0.1] [--port 8080]`` runs the API with uvicorn;
  ``--local`` first starts an embedded moto server (``service.localaws``) for DynamoDB
  and ECR, creates the tables and a ``demo`` repository.
- ``pushgate init [--repository NAME]...`` creates the three tables (and repositories)
  wherever the settings and the AWS chain point: a first deploy, or compose's init job.
- ``push``, ``status``, ``history``: the client commands (``service.commands``).

The base install has the client commands and ``token``; ``serve`` and ``init`` need the
``server`` extra, ``serve --local`` and ``stress`` the ``local`` one (``service.extras``).
Their imports happen inside the commands, after the check, so client commands stay light.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from service.commands import register as register_client_commands
from service.extras import MISSING_EXTRA_EXIT, extra_providing, require, sentence
from service.image_commands import register as register_image_commands
from service.stress.cli import stress
from service.tag_commands import register as register_tag_commands

if TYPE_CHECKING:
    from service.settings import Settings

app = typer.Typer(help="pushgate: serialized ECR pushes.", no_args_is_help=True)


@app.callback()
def root() -> None:
    """pushgate: a shared push backend for ECR."""


LOCAL_REGION = "us-east-1"
DEMO_REPOSITORY = "demo"


def _example_push(url: str) -> str:
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + "0" * 64,
                "size": 2,
            },
            "layers": [],
        },
        separators=(",", ":"),
    )
    body = json.dumps(
        {"repository": DEMO_REPOSITORY, "tag": "latest", "manifest": manifest, "sequence": 1}
    )
    return f"curl -sS -X POST {url}/v1/pushes -H 'content-type: application/json' -d '{body}'"


async def _bootstrap(
    settings: Settings, repositories: list[str], tags_table: str | None = None
) -> str | None:
    """Create what is missing; with ``tags_table``, import its records and say how many."""
    from service.adapters.aws import open_clients  # noqa: PLC0415 - server-only import
    from service.adapters.tables import ensure_tables  # noqa: PLC0415
    from service.adapters.tags_import import import_tags_table  # noqa: PLC0415

    async with open_clients(settings) as clients:
        await ensure_tables(clients.dynamodb, settings)
        for name in repositories:
            with contextlib.suppress(clients.ecr.exceptions.RepositoryAlreadyExistsException):
                await clients.ecr.create_repository(repositoryName=name)
        if tags_table is None:
            return None
        report = await import_tags_table(
            clients.dynamodb, source=tags_table, lease_table=settings.lease_table
        )
    return (
        f"imported {report.imported} tag records from {tags_table} "
        f"({report.kept} kept: their lease item has a record already; {report.empty} empty; "
        f"{report.unreadable} not in a tags table's format)"
    )


def _start_local_aws() -> str:
    """An embedded moto server on 127.0.0.1 (a free port) standing in for DynamoDB and ECR."""
    from service.localaws import LocalAWS  # noqa: PLC0415 - only --local needs moto

    server = LocalAWS("127.0.0.1", 0)
    server.start()
    # moto accepts any credentials; set dummy ones only where none are configured
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return server.endpoint


def _fail(sentence: str, code: int = 2) -> NoReturn:
    """A server command cannot start: one sentence on stderr, no traceback."""
    typer.echo(f"pushgate: {sentence}", err=True)
    raise typer.Exit(code)


def _server_settings() -> Settings:
    """The environment's settings, or one sentence naming the bad variable."""
    from pydantic import ValidationError  # noqa: PLC0415 - server-only import

    from service.settings import Settings  # noqa: PLC0415

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "PUSHGATE_" + "_".join(str(part) for part in first["loc"]).upper()
        _fail(f"{name} is invalid: {first['msg']}.")


NO_REGION = (
    "no AWS region is configured: set AWS_REGION (or AWS_DEFAULT_REGION, PUSHGATE_REGION, "
    "or a region in the AWS profile)."
)


@app.command()
def init(
    repository: Annotated[
        list[str] | None,
        typer.Option("--repository", help="An ECR repository to create (repeatable)."),
    ] = None,
    import_tags_table: Annotated[
        str | None,
        typer.Option(
            "--import-tags-table",
            help="Copy the tag records of an earlier release's tags table into the lease "
            "items (before the new release serves pushes; a second run changes nothing).",
        ),
    ] = None,
) -> None:
    """Create the lease, history and budget tables (and repositories) if missing (server
    extra)."""
    require("server", "pushgate init")
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from service.domain.errors import PushError  # noqa: PLC0415

    settings = _server_settings()
    if settings.region is None:
        _fail(NO_REGION)
    try:
        imported = asyncio.run(_bootstrap(settings, list(repository or []), import_tags_table))
    except (BotoCoreError, ClientError) as exc:
        _fail(f"could not create the tables: {exc}", code=1)
    except PushError as exc:
        _fail(f"could not import the tags table: {exc.message}", code=1)
    typer.echo(
        f"tables ready: {settings.lease_table}, {settings.history_table}, {settings.budget_table}"
    )
    if imported is not None:
        typer.echo(imported)


def local_settings(settings: Settings, endpoint: str) -> Settings:
    """``--local``: AWS is the embedded moto at ``endpoint``; logs are readable (console)
    and auth is off, unless ``PUSHGATE_LOG_FORMAT`` / ``PUSHGATE_AUTH`` ask otherwise."""
    log_format = settings.log_format if "log_format" in settings.model_fields_set else "console"
    auth = settings.auth if "auth" in settings.model_fields_set else "off"
    return settings.model_copy(
        update={
            "region": LOCAL_REGION,
            "dynamodb_endpoint_url": endpoint,
            "ecr_endpoint_url": endpoint,
            "log_format": log_format,
            "auth": auth,
        }
    )


@app.command()
def serve(
    *,
    local: Annotated[
        bool, typer.Option("--local", help="Embedded moto server for DynamoDB and ECR.")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve the push API (its OpenAPI description at /openapi.json); server extra, local
    extra for --local."""
    if local:
        require("local", "pushgate serve --local")
    else:
        require("server", "pushgate serve")
    import structlog  # noqa: PLC0415 - server-only imports

    from service.auth import AuthConfigError  # noqa: PLC0415
    from service.logging import configure_process_logging  # noqa: PLC0415
    from service.main import create_app  # noqa: PLC0415
    from service.server import Server, server_config  # noqa: PLC0415

    settings = _server_settings()
    configure_process_logging(settings)  # before anything else is said
    if local:
        endpoint = _start_local_aws()
        settings = local_settings(settings, endpoint)
        configure_process_logging(settings)
        asyncio.run(_bootstrap(settings, [DEMO_REPOSITORY]))
    if settings.region is None:
        _fail(NO_REGION)
    try:
        application = create_app(settings)
    except AuthConfigError as exc:
        _fail(str(exc))
    log = structlog.get_logger("pushgate")
    url = f"http://{host}:{port}"

    def started() -> None:
        aws = settings.ecr_endpoint_url if local else None
        log.info("listening", url=url, openapi=f"{url}/openapi.json", local=local, aws=aws)
        if settings.log_format == "console":  # a person is reading: say how to start
            if local:
                typer.echo(
                    f"embedded moto (DynamoDB + ECR) at {aws}; repository '{DEMO_REPOSITORY}'"
                )
            typer.echo("example push:")
            typer.echo(f"  {_example_push(url)}")

    Server(server_config(application, settings, host=host, port=port), started).run()


@app.command()
def token(
    name: Annotated[str, typer.Argument(help="Who uses it, e.g. team-a-ci (goes into history).")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="Repository glob, e.g. 'team-a/*'; repeatable.")
    ],
) -> None:
    """Make a bearer token: prints the token once and the entry for the tokens file."""
    from service.auth import hash_token, new_token  # noqa: PLC0415

    secret = new_token()
    entry = {"name": name, "sha256": hash_token(secret), "scopes": scope}
    typer.echo(f"token (give it to the client, it is not stored): {secret}")
    typer.echo(f"entry (add it to PUSHGATE_AUTH_TOKENS_FILE's list): {json.dumps(entry)}")


register_client_commands(app)
register_tag_commands(app)
register_image_commands(app)
app.command(name="stress")(stress)


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        # a server module imported by a command that did not check first: still one sentence
        extra = extra_providing(exc.name or "")
        if extra is None:
            raise
        command = " ".join(["pushgate", *sys.argv[1:2]])
        typer.echo(sentence(command, extra), err=True)
        raise SystemExit(MISSING_EXTRA_EXIT) from None
