"""The ``pushgate`` command: ``serve --local`` (the README's main job) and ``init``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_serve_local_answers_a_push(tmp_path: Path) -> None:
    """``pushgate serve --local`` starts moto, creates `demo`, serves the API and prints a
    curl example whose push succeeds."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "serve.log").open("w+")
    command = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    process = subprocess.Popen(
        [*command, "--local", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "pushgate serve --local did not become ready"
            time.sleep(0.2)
        printed = (tmp_path / "serve.log").read_text()
        example = next(line for line in printed.splitlines() if "curl" in line)
        body = json.loads(example.split(" -d '", 1)[1].rstrip("'"))
        answer = httpx.post(f"{url}/v1/pushes", json=body, timeout=30)
        assert (200, "pushed") == (answer.status_code, answer.json()["outcome"])
        assert f"{url}/v1/pushes" in example
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_init_creates_tables_and_repository(
    service_moto: str, suffix: str, monkeypatch: pytest.MonkeyPatch, dynamodb: Any, ecr: Any
) -> None:
    """``pushgate init --repository NAME`` creates the tables and the repository."""
    monkeypatch.setenv("PUSHGATE_DYNAMODB_ENDPOINT_URL", service_moto)
    monkeypatch.setenv("PUSHGATE_ECR_ENDPOINT_URL", service_moto)
    monkeypatch.setenv("PUSHGATE_REGION", "us-east-1")
    for name in ("LEASE", "HISTORY", "BUDGET"):
        monkeypatch.setenv(f"PUSHGATE_{name}_TABLE", f"init-{name.lower()}-{suffix}")
    result = CliRunner().invoke(app, ["init", "--repository", f"init/repo-{suffix}"])
    assert 0 == result.exit_code, result.output
    for name in ("lease", "history", "budget"):  # the session's server holds many tables
        table = dynamodb.describe_table(TableName=f"init-{name}-{suffix}")["Table"]
        assert "ACTIVE" == table["TableStatus"]
    ecr.describe_repositories(repositoryNames=[f"init/repo-{suffix}"])
