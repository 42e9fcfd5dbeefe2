"""``pushgate serve`` and ``init`` as processes: what they refuse, and what they print."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PUSHGATE = [sys.executable, "-c", "from service.cli import main; main()"]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A bare environment: no AWS or PUSHGATE variables but ``extra``, no AWS profile."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "PUSHGATE_"))
    }
    config = tmp_path / "aws-config"
    config.write_text("")
    env.update(
        PYTHONPATH=str(ROOT),
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(config),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        **extra,
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PUSHGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_init_without_region_is_one_sentence(tmp_path: Path) -> None:
    """``pushgate init`` with no region anywhere says so in one line, exit 2, no traceback."""
    done = run(["init"], environment(tmp_path))
    assert (2, "", 1) == (done.returncode, done.stdout, len(done.stderr.splitlines()))
    assert "AWS_REGION" in done.stderr


def test_serve_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    """``pushgate serve`` with no tokens and no PUSHGATE_AUTH=off refuses, in one sentence."""
    done = run(["serve", "--port", str(free_port())], environment(tmp_path, AWS_REGION="us-east-1"))
    assert (2, 1) == (done.returncode, len(done.stderr.splitlines()))
    assert "PUSHGATE_AUTH=off" in done.stderr


def test_serve_with_an_empty_tokens_file_refuses_to_start(tmp_path: Path) -> None:
    """A tokens file holding [] does not start an open service."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text("[]")
    env = environment(tmp_path, AWS_REGION="us-east-1", PUSHGATE_AUTH_TOKENS_FILE=str(tokens))
    done = run(["serve", "--port", str(free_port())], env)
    assert (2, "") == (done.returncode, done.stdout)


def test_bad_setting_is_one_sentence(tmp_path: Path) -> None:
    """A setting that does not parse is named in one sentence, without a traceback."""
    env = environment(tmp_path, AWS_REGION="us-east-1", PUSHGATE_AUTH="maybe")
    done = run(["serve"], env)
    assert (2, 1) == (done.returncode, len(done.stderr.splitlines()))
    assert "PUSHGATE_AUTH" in done.stderr


def test_serve_logs_json_only_and_listening_once_bound(tmp_path: Path, service_moto: str) -> None:
    """In production (json logs) every line printed is JSON, there is no banner, and the
    ``listening`` event comes once the port accepts connections."""
    port = free_port()
    env = environment(
        tmp_path,
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL_DYNAMODB=service_moto,
        AWS_ENDPOINT_URL_ECR=service_moto,
        PUSHGATE_AUTH="off",
        PUSHGATE_LOG_FORMAT="json",
    )
    lines: list[str] = []
    with subprocess.Popen(
        [*PUSHGATE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if '"listening"' in line:
                break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # bound before it said so
        finally:
            process.terminate()
    events = [json.loads(line)["event"] for line in lines]
    assert ["auth_disabled", "listening"] == events
