"""Property-based tests from the OpenAPI document against the moto-backed service, served
by uvicorn over HTTP (the fakes' run is ``tests/unit/service/test_openapi_properties.py``):
no 5xx, declared statuses and shapes with real adapters behind the routes. Budget:
``MAX_EXAMPLES`` per operation and mode, derandomized."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.auth import hash_token
from service.main import create_app
from service.settings import Settings
from tests.uvicorn_server import serve

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 15
TOKEN = "pg_property_moto_secret"
BEARER = {"authorization": f"Bearer {TOKEN}"}
SEEN: Counter[str] = Counter()


@pytest.fixture(scope="module")
def service_url(moto_endpoint: str) -> Iterator[str]:
    """The service on the session's moto (its own tables), tokens on, served by uvicorn."""
    from tests.integration.service.conftest import _settings

    entry = {"name": "property", "sha256": hash_token(TOKEN), "scopes": ["*"]}
    settings: Settings = _settings(moto_endpoint, "property").model_copy(
        update={"auth": "tokens", "auth_tokens": json.dumps([entry])}
    )
    import asyncio

    from service.adapters.aws import open_clients
    from service.adapters.tables import ensure_tables

    async def create() -> None:
        async with open_clients(settings) as clients:
            await ensure_tables(clients.dynamodb, settings)
            await clients.ecr.create_repository(repositoryName="team/app")

    asyncio.run(create())
    with serve(create_app(settings)) as url:
        yield url


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_moto_backed_answers_match_the_document(service_url: str, mode: GenerationMode) -> None:
    """For every operation: no 5xx, every status declared, every body in the declared shape."""
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json", headers=BEARER)
    tried: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy(mode))
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=service_url, headers=BEARER, checks=CHECKS)
            SEEN[f"{mode.value}_{response.status_code // 100}xx"] += 1

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            # nothing to make invalid: no inputs (the probes) or unconstrained strings
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        tried.append(operation.label)
    print(f"\nschemathesis budget ({mode.value}): {dict(sorted(SEEN.items()))}")
    assert len(tried) >= 4, tried
