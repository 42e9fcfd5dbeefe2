"""The ``pushgate`` command line.

- ``pushgate serve [--local] [--host 127.0.0.1] [--port 8080]`` runs the API with uvicorn;
  ``--local`` first starts an embedded moto server (``service.localaws``) for DynamoDB
  and ECR, creates the tables and a ``demo`` repository.
- ``pushgate init [--repository NAME]...`` creates the three tables (and repositories)
  wherever the settings and the AWS chain point: a first deploy, or compose's init job.
- ``push``, ``status``, ``history``: the client commands (``service.commands``).

The server imports (FastAPI, aioboto3, moto) happen inside the server commands so that
client commands stay light.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from service.commands import register as register_client_commands
from service.stress_cli import stress

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


async def _bootstrap(settings: Settings, repositories: list[str]) -> None:
    from service.adapters.aws import open_clients  # noqa: PLC0415 - server-only import
    from service.adapters.tables import ensure_tables  # noqa: PLC0415

    async with open_clients(settings) as clients:
        await ensure_tables(clients.dynamodb, settings)
        for name in repositories:
            with contextlib.suppress(clients.ecr.exceptions.RepositoryAlreadyExistsException):
                await clients.ecr.create_repository(repositoryName=name)


def _start_local_aws() -> str:
    """An embedded moto server on 127.0.0.1 (a free port) standing in for DynamoDB and ECR."""
    from service.localaws import LocalAWS  # noqa: PLC0415 - only --local needs moto

    server = LocalAWS("127.0.0.1", 0)
    server.start()
    # moto accepts any credentials; set dummy ones only where none are configured
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return server.endpoint


@app.command()
def init(
    repository: Annotated[
        list[str] | None,
        typer.Option("--repository", help="An ECR repository to create (repeatable)."),
    ] = None,
) -> None:
    """Create the lease, tags and history tables (and repositories) if missing."""
    from service.settings import Settings  # noqa: PLC0415 - server-only import

    settings = Settings()
    asyncio.run(_bootstrap(settings, list(repository or [])))
    typer.echo(
        f"tables ready: {settings.lease_table}, {settings.tags_table}, {settings.history_table}"
    )


def local_settings(settings: Settings, endpoint: str) -> Settings:
    """``--local``: AWS is the embedded moto at ``endpoint``; logs are readable (console)
    unless ``PUSHGATE_LOG_FORMAT`` asks otherwise."""
    log_format = settings.log_format if "log_format" in settings.model_fields_set else "console"
    return settings.model_copy(
        update={
            "region": LOCAL_REGION,
            "dynamodb_endpoint_url": endpoint,
            "ecr_endpoint_url": endpoint,
            "log_format": log_format,
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
    """Serve the push API (OpenAPI at /docs)."""
    import uvicorn  # noqa: PLC0415 - server-only import

    from service.main import create_app  # noqa: PLC0415
    from service.settings import Settings  # noqa: PLC0415

    settings = Settings()
    if local:
        endpoint = _start_local_aws()
        settings = local_settings(settings, endpoint)
        asyncio.run(_bootstrap(settings, [DEMO_REPOSITORY]))
        typer.echo(f"embedded moto (DynamoDB + ECR) at {endpoint}; repository '{DEMO_REPOSITORY}'")
    if not (settings.auth_tokens or settings.auth_tokens_file):
        typer.echo("auth: open (no bearer tokens configured; see PUSHGATE_AUTH_TOKENS_FILE)")
    url = f"http://{host}:{port}"
    typer.echo(f"pushgate listening on {url}  (API docs: {url}/docs)")
    typer.echo("example push:")
    typer.echo(f"  {_example_push(url)}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


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
__import__("service.image_commands").image_commands.register(app)
app.command(name="stress")(stress)


def main() -> None:
    app()
