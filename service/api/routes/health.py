"""``/healthz`` (the process is up), ``/readyz`` (DynamoDB tables, the PutImage budget's
table when the budget is on, and ECR answer),
``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.api.deps import (
    HistoryDep,
    MetricsDep,
    RecordsDep,
    RegistryDep,
    ServicesDep,
    SettingsDep,
)
from service.api.errors import backend_fault
from service.api.schemas import ReadyResponse
from service.domain.errors import PushError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check(probe: Awaitable[None], timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            await probe
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except PushError as exc:
        return exc.message
    return "ok"


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(
    request: Request,
    settings: SettingsDep,
    records: RecordsDep,
    history: HistoryDep,
    registry: RegistryDep,
    services: ServicesDep,
) -> JSONResponse:
    """Ready when the DynamoDB tables (leases, tags, history, and the budget's when it is
    on) are ACTIVE, ECR answers, and no push was lately refused by DynamoDB for a
    deployment fault the probes cannot see (a permission, an operation); 503 otherwise."""
    timeout = settings.ready_timeout_seconds

    async def dynamodb() -> None:
        await records.ping()
        await history.ping()
        if services.budget is not None:
            await services.budget.ping()

    dynamo, ecr = await asyncio.gather(
        _check(dynamodb(), timeout), _check(registry.ping(), timeout)
    )
    checks = {"dynamodb": backend_fault(request.app) or dynamo, "ecr": ecr}
    ready = all(value == "ok" for value in checks.values())
    answer = ReadyResponse(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(answer.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
