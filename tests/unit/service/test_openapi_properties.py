"""Property-based tests of the API from its own OpenAPI document (schemathesis).

Every operation, over the app wired to the fakes with auth on, gets generated requests
(valid and invalid): no answer is a 5xx, every answer's status is one the document
declares, and every body matches the declared schema (errors: ``{"error", "message"}``).
Refusals without a token are tested by ``test_auth_guard.py``.
Budget: ``MAX_EXAMPLES`` per operation and data-generation mode, derandomized so a run is
reproducible; the whole module runs in well under a minute.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.auth import hash_token
from service.main import create_app
from tests.unit.service.fakes import SETTINGS, World, services_of

MAX_EXAMPLES = 60
TOKEN = "pg_property_secret"
BEARER = {"authorization": f"Bearer {TOKEN}"}
SEEN: Counter[str] = Counter()


def _app() -> FastAPI:
    entry = {"name": "property", "sha256": hash_token(TOKEN), "scopes": ["*"]}
    settings = SETTINGS.model_copy(update={"auth": "tokens", "auth_tokens": json.dumps([entry])})
    services = services_of(World())
    app = create_app(settings, services=services)
    app.state.services = services  # what the lifespan does; the test client runs none
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app(), headers=BEARER)


@pytest.fixture(scope="module", autouse=True)
def _budget() -> Iterator[None]:
    """Counts the examples tried, by status class; printed with ``-s``."""
    SEEN.clear()
    yield
    print(f"\nschemathesis budget: {dict(sorted(SEEN.items()))}")


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api_answers_match_its_document(case: schemathesis.Case) -> None:
    """No 5xx; every status declared; every body in the declared shape."""
    response = case.call_and_validate(
        headers=BEARER,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    SEEN["examples"] += 1
    SEEN[f"status_{response.status_code // 100}xx"] += 1
