"""The CloudFormation template created as a stack in moto, and `pushgate serve` run as a
subprocess against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy/cloudformation/pushgate.yaml"
REGION = "us-east-1"
MANIFEST = json.dumps(
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
TABLES = {  # template parameter -> pushgate setting
    "LeaseTableName": "PUSHGATE_LEASE_TABLE",
    "HistoryTableName": "PUSHGATE_HISTORY_TABLE",
    "BudgetTableName": "PUSHGATE_BUDGET_TABLE",
}


@dataclass(frozen=True)
class Stack:
    name: str
    tables: dict[str, str]  # parameter -> table name
    outputs: dict[str, str]


def create_stack(endpoint: str, **parameters: str) -> Stack:
    """Create the template's stack with fresh table names; wait for CREATE_COMPLETE."""
    suffix = uuid.uuid4().hex[:8]
    tables = {key: f"cfn-{key.removesuffix('TableName').lower()}-{suffix}" for key in TABLES}
    cloudformation = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    name = f"pushgate-{suffix}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in {**tables, **parameters}.items()
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Stack(name=name, tables=tables, outputs=outputs)


def policy_document(endpoint: str, arn: str) -> dict[str, Any]:
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION)
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document: dict[str, Any] = iam.get_policy_version(PolicyArn=arn, VersionId=version)[
        "PolicyVersion"
    ]["Document"]
    return document


@contextmanager
def pushgate_serve(
    endpoint: str, stack: Stack, log: Path, *, preamble: str = "", env: dict[str, str] | None = None
) -> Iterator[str]:
    """`pushgate serve` in a subprocess, configured by environment variables only (as in
    the Kubernetes manifests), on the stack's tables; yields its URL once /readyz is 200.
    ``preamble`` is Python run first in that process. Auth is off unless ``env`` gives
    tokens."""
    port = free_port()
    tokens = "PUSHGATE_AUTH_TOKENS" in (env or {})
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PUSHGATE_AUTH": "tokens" if tokens else "off",
        "PUSHGATE_METRICS_OPEN": "1",
        "PUSHGATE_REGION": REGION,
        "PUSHGATE_DYNAMODB_ENDPOINT_URL": endpoint,
        "PUSHGATE_ECR_ENDPOINT_URL": endpoint,
        **{TABLES[key]: value for key, value in stack.tables.items()},
        **(env or {}),
    }
    code = f"{preamble}\nfrom service.cli import main\nmain()"
    command = [sys.executable, "-c", code, "serve"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=output, stderr=subprocess.STDOUT, env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while not _ready(url):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"not ready:\n{log.read_text()}"
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
