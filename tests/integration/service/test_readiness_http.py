"""/healthz and /readyz against real and unreachable backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.main import create_app
from service.settings import Settings
from tests.integration.service.helpers import closed_port_url

pytestmark = pytest.mark.integration


async def ready(settings: Settings, aws_session: Any) -> httpx.Response:
    application = create_app(settings, session=aws_session)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://pushgate"
        ) as http,
    ):
        return await http.get("/readyz")


async def test_ready_when_tables_and_ecr_answer(client: httpx.AsyncClient) -> None:
    """With the tables ACTIVE and ECR answering, /readyz is 200."""
    answer = await client.get("/readyz")
    assert (200, {"dynamodb": "ok", "ecr": "ok"}) == (
        answer.status_code,
        answer.json()["checks"],
    )


async def test_not_ready_when_dynamodb_is_down(settings: Settings, aws_session: Any) -> None:
    """With DynamoDB unreachable, /readyz is 503 and names DynamoDB; ECR is still ok."""
    answer = await ready(
        settings.model_copy(
            update={"dynamodb_endpoint_url": closed_port_url(), "ready_timeout_seconds": 3.0}
        ),
        aws_session,
    )
    checks = answer.json()["checks"]
    assert (503, "unavailable", "ok") == (
        answer.status_code,
        answer.json()["status"],
        checks["ecr"],
    )
    assert "ok" != checks["dynamodb"]


async def test_not_ready_when_ecr_is_down(settings: Settings, aws_session: Any) -> None:
    """With ECR unreachable, /readyz is 503 and names ECR; DynamoDB is still ok."""
    answer = await ready(
        settings.model_copy(update={"ecr_endpoint_url": closed_port_url()}), aws_session
    )
    checks = answer.json()["checks"]
    assert (503, "ok") == (answer.status_code, checks["dynamodb"])
    assert "ok" != checks["ecr"]


async def test_not_ready_when_a_table_is_missing(settings: Settings, aws_session: Any) -> None:
    """A missing table makes /readyz 503."""
    answer = await ready(settings.model_copy(update={"lease_table": "no-such-table"}), aws_session)
    assert 503 == answer.status_code
    assert "no-such-table" in answer.json()["checks"]["dynamodb"]


async def test_readiness_names_the_table_but_not_dynamodbs_text(
    settings: Settings, aws_session: Any
) -> None:
    """/readyz is unauthenticated: its check names the missing table and the error code,
    never DynamoDB's own message."""
    answer = await ready(settings.model_copy(update={"lease_table": "no-such-table"}), aws_session)
    check = answer.json()["checks"]["dynamodb"]
    assert (True, False) == (
        "ResourceNotFoundException" in check,
        "Requested resource not found" in check,
    )


async def test_not_ready_when_the_budget_table_is_missing(
    settings: Settings, aws_session: Any
) -> None:
    """With the PutImage budget on, a missing budget table makes /readyz 503 and names it."""
    missing = settings.model_copy(
        update={"putimage_budget": True, "budget_table": "no-such-budget"}
    )
    answer = await ready(missing, aws_session)
    assert 503 == answer.status_code
    assert "no-such-budget" in answer.json()["checks"]["dynamodb"]


async def test_budget_table_not_needed_with_the_budget_off(
    settings: Settings, aws_session: Any
) -> None:
    """With the budget off, its table is not part of readiness."""
    off = settings.model_copy(update={"putimage_budget": False, "budget_table": "no-such-budget"})
    assert 200 == (await ready(off, aws_session)).status_code


async def test_healthz_needs_no_backend(settings: Settings, aws_session: Any) -> None:
    """/healthz answers even when nothing behind the service is reachable."""
    down = settings.model_copy(
        update={"dynamodb_endpoint_url": closed_port_url(), "ecr_endpoint_url": closed_port_url()}
    )
    application = create_app(down, session=aws_session)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://pushgate"
        ) as http,
    ):
        assert 200 == (await http.get("/healthz")).status_code
