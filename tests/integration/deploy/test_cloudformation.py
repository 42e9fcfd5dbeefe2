"""deploy/cloudformation/pushgate.yaml: cfn-lint clean, created in moto's CloudFormation,
identical tables to `pushgate init`'s, and a policy that is exactly what a running
`pushgate serve` calls."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from service.cli import app
from tests.integration.deploy.stack import (
    MANIFEST,
    REGION,
    TABLES,
    TEMPLATE,
    create_stack,
    policy_document,
    pushgate_serve,
)

pytestmark = pytest.mark.integration


def test_template_is_cfn_lint_clean() -> None:
    """cfn-lint (its schemas, IAM action names, best practices) finds nothing."""
    assert [] == [str(match) for match in lint_file(TEMPLATE)]


def _table_shape(dynamodb: Any, name: str) -> dict[str, Any]:
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return {
        "key_schema": table["KeySchema"],
        "attributes": sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "billing_mode": table["BillingModeSummary"]["BillingMode"],
        "ttl": (ttl["TimeToLiveStatus"], ttl.get("AttributeName")),
    }


def test_stack_tables_are_the_tables_pushgate_init_creates(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key schema, attribute definitions, billing mode and TTL of each table, read back
    with DescribeTable/DescribeTimeToLive, are the same for the stack and for `init`."""
    stack = create_stack(moto_endpoint)
    init_tables = {key: f"init-{name}" for key, name in stack.tables.items()}
    monkeypatch.setenv("PUSHGATE_DYNAMODB_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("PUSHGATE_ECR_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("PUSHGATE_REGION", REGION)
    for key, name in init_tables.items():
        monkeypatch.setenv(TABLES[key], name)
    result = CliRunner().invoke(app, ["init"])
    assert 0 == result.exit_code, result.output
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    from_init = {key: _table_shape(dynamodb, name) for key, name in init_tables.items()}
    from_stack = {key: _table_shape(dynamodb, name) for key, name in stack.tables.items()}
    assert from_init == from_stack


def _operations(metrics_text: str, family_name: str) -> set[str]:
    return {
        sample.labels["operation"]
        for family in text_string_to_metric_families(metrics_text)
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_count") and sample.value > 0
    }


#: the ECR calls each route of the registry front door makes (its layer calls are not in
#: the per-push histogram, so the test maps the front door requests it answered)
FRONT_DOOR_ACTIONS = {
    ("/v2/{name:path}/blobs/uploads/", "POST"): {
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
    },
    ("/v2/{name:path}/blobs/{digest}", "HEAD"): {"ecr:BatchCheckLayerAvailability"},
    ("/v2/{name:path}/blobs/{digest}", "GET"): {
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
    },
}


def _front_door_actions(metrics_text: str) -> set[str]:
    answered = {
        (sample.labels["route"], sample.labels["method"])
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "pushgate_http_request_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.value > 0
    }
    return {
        action for key in answered & FRONT_DOOR_ACTIONS.keys() for action in FRONT_DOOR_ACTIONS[key]
    }


def test_policy_is_exactly_what_a_running_pushgate_calls(
    moto_endpoint: str, tmp_path: Path
) -> None:
    """`pushgate serve` on the stack's tables gets ready, pushes, re-pushes (unchanged;
    each push's tag is read back after its answer), answers status and history; the DynamoDB and ECR operations it made (from its own /metrics) need exactly
    the policy's actions, and the DynamoDB statement names the stack's three tables only."""
    stack = create_stack(moto_endpoint)
    ecr = boto3.client("ecr", endpoint_url=moto_endpoint, region_name=REGION)
    repository = f"cfn/app-{stack.name}"
    ecr.create_repository(repositoryName=repository)
    with pushgate_serve(moto_endpoint, stack, tmp_path / "serve.log") as url:
        body = {"repository": repository, "tag": "v1", "manifest": MANIFEST, "sequence": 7}
        outcomes = [httpx.post(f"{url}/v1/pushes", json=body, timeout=30) for _ in range(2)]
        assert [(200, "pushed"), (200, "unchanged")] == [
            (answer.status_code, answer.json()["outcome"]) for answer in outcomes
        ]
        for path in (f"/v1/tags/{repository}/v1", f"/v1/tags/{repository}/v1/history"):
            assert 200 == httpx.get(f"{url}{path}", timeout=10).status_code
        blob = b"layer bytes"
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        uploads = f"{url}/v2/{repository}/blobs/uploads/"
        assert 201 == httpx.post(uploads, params={"digest": digest}, content=blob).status_code
        assert 200 == httpx.head(f"{url}/v2/{repository}/blobs/{digest}").status_code
        httpx.get(f"{url}/v2/{repository}/blobs/{digest}")  # moto offers no download URL
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    # every DynamoDB call is a single-item operation, authorized by its own name
    called = {
        f"dynamodb:{operation}"
        for operation in _operations(metrics, "pushgate_dynamodb_call_seconds")
    }
    called |= {f"ecr:{op}" for op in _operations(metrics, "pushgate_ecr_call_seconds")}
    called.add("ecr:DescribeRepositories")  # /readyz's ECR probe, which it answered
    # the tag's verify runs after each push's answer, outside the request whose metrics
    # count ECR calls (tests/integration/service/test_round_trips.py counts it there)
    called.add("ecr:BatchGetImage")
    called |= _front_door_actions(metrics)
    statements = policy_document(moto_endpoint, stack.outputs["ServicePolicyArn"])["Statement"]
    granted = {
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    tables = next(s["Resource"] for s in statements if s["Sid"] == "Tables")
    arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/"
    assert (called, sorted(arn + name for name in stack.tables.values())) == (
        granted,
        sorted(tables),
    )


@pytest.mark.filterwarnings("ignore:Tried to parse AWS..EKS..PodIdentityAssociation:UserWarning")
def test_pod_identity_role_carries_the_policy(moto_endpoint: str) -> None:
    """With EksClusterName, the stack makes a role that EKS Pod Identity may assume and
    that has the service policy attached. (moto does not create the association itself;
    cfn-lint checks its properties.)"""
    stack = create_stack(moto_endpoint, EksClusterName="prod")
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name=REGION)
    role_name = stack.outputs["ServiceRoleArn"].rsplit("/", 1)[1]
    role = iam.get_role(RoleName=role_name)["Role"]
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert (
        {"Service": "pods.eks.amazonaws.com"},
        ["sts:AssumeRole", "sts:TagSession"],
        [stack.outputs["ServicePolicyArn"]],
    ) == (statement["Principal"], statement["Action"], [p["PolicyArn"] for p in attached])


def test_without_a_cluster_no_role_is_made(moto_endpoint: str) -> None:
    """By default (IRSA or another setup) the stack makes no role: the policy is attached
    to a role the team makes for its cluster."""
    stack = create_stack(moto_endpoint)
    assert "ServiceRoleArn" not in stack.outputs
