"""The registry front door served by uvicorn on 127.0.0.1 over the session's moto, with
tokens on, for real registry clients (skopeo, oras)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from service.auth import hash_token
from service.main import create_app
from service.settings import Settings
from tests.integration.client.conftest import client_tables
from tests.integration.service.conftest import REGION
from tests.uvicorn_server import serve

__all__ = ["client_tables"]

TOKEN = "pg_registry_ci_secret"
OTHER_TOKEN = "pg_other_team_secret"


@dataclass(frozen=True)
class Front:
    """Two replicas of pushgate on one set of tables, and ECR beside them."""

    url: str
    second_url: str
    settings: Settings
    ecr: Any

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def repository(self) -> str:
        name = f"team/img-{uuid.uuid4().hex[:8]}"
        self.ecr.create_repository(repositoryName=name)
        return name


@pytest.fixture(scope="module")
def front(moto_endpoint: str, client_tables: Settings) -> Iterator[Front]:
    tokens = [
        {"name": "registry-ci", "sha256": hash_token(TOKEN), "scopes": ["team/*"]},
        {"name": "other-team", "sha256": hash_token(OTHER_TOKEN), "scopes": ["other/*"]},
    ]
    settings = client_tables.model_copy(
        update={"auth": "tokens", "auth_tokens": json.dumps(tokens), "default_wait_seconds": 10.0}
    )
    ecr = boto3.client("ecr", endpoint_url=moto_endpoint, region_name=REGION)
    with serve(create_app(settings)) as url, serve(create_app(settings)) as second:
        yield Front(url, second, settings, ecr)
