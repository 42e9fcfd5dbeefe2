"""Create the service's three tables (``pushgate serve --local``, tests, first deploys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from locks import AsyncLeaseLock
from service.adapters.aws import create_table
from service.adapters.budget import ensure_budget_table
from service.adapters.items import HistoryItem, table_schema

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from service.settings import Settings


async def ensure_tables(client: DynamoDBClient, settings: Settings) -> None:
    """Create the lease (which carries the tag records), history and budget tables if
    missing; no-op when they exist."""
    await AsyncLeaseLock(settings.lease_table, client=client).ensure_table()
    await create_table(client, settings.history_table, table_schema(HistoryItem))
    await ensure_budget_table(client, settings.budget_table)
