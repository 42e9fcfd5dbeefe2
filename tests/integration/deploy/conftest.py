"""Fixtures of the deployment kit's tests: moto's CloudFormation corrected where it
departs from AWS on the resources the template declares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table


@pytest.fixture(scope="module", autouse=True)
def _cloudformation_table_settings() -> Iterator[None]:
    """moto's CloudFormation creates an ``AWS::DynamoDB::Table`` but drops its
    ``TimeToLiveSpecification`` and ``PointInTimeRecoverySpecification``, which AWS
    applies. Apply them as AWS does while this module's tests run (the moto server is in
    this process), so DescribeTimeToLive compares what the template declares."""
    original = Table.create_from_cloudformation_json

    def create(
        _cls: type[Table],
        /,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Table:
        table: Table = original(
            resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        properties = cloudformation_json["Properties"]
        backend = dynamodb_backends[account_id][region_name]
        if ttl := properties.get("TimeToLiveSpecification"):
            enabled = str(ttl.get("Enabled")).lower() == "true"
            spec = {"AttributeName": ttl["AttributeName"], "Enabled": enabled}
            backend.update_time_to_live(table.name, spec)
        if pitr := properties.get("PointInTimeRecoverySpecification"):
            enabled = str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true"
            backend.update_continuous_backups(table.name, {"PointInTimeRecoveryEnabled": enabled})
        return table

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Table, "create_from_cloudformation_json", classmethod(create))
        yield
