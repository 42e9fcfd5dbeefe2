"""``docker-compose.yml``'s environment starts pushgate: its ``init`` job and a replica run
as processes with exactly the environment the file gives them (read from the file, its
anchors merged), the emulator's host name pointed at a local ``service.localaws``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PUSHGATE = [sys.executable, "-c", "from service.cli import main; main()"]
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "1" * 64,
            "size": 2,
        },
        "layers": [],
    }
)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    given = service.get("environment") or {}
    if isinstance(given, list):  # the KEY=VALUE form
        given = dict(item.split("=", 1) for item in given)
    return {str(name): str(value) for name, value in given.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


class Compose:
    """The services of docker-compose.yml that matter here, found by what they run."""

    def __init__(self, path: Path) -> None:
        services: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text())["services"]
        self.emulator = next(
            name for name, s in services.items() if "service.localaws" in _command(s)
        )
        self.init = next(s for s in services.values() if _command(s)[:2] == ["pushgate", "init"])
        self.replica = next(
            s
            for name, s in services.items()
            if name != self.emulator
            and not _command(s)
            and any(key.startswith("PUSHGATE_") for key in _environment(s))
        )

    def environment(self, service: dict[str, Any], endpoint: str) -> dict[str, str]:
        """The service's environment, the emulator's URL replaced by ``endpoint``."""
        host = re.compile(rf"https?://{re.escape(self.emulator)}:\d+")
        return {name: host.sub(endpoint, value) for name, value in _environment(service).items()}


@pytest.fixture
def emulator() -> Iterator[str]:
    """``python -m service.localaws`` (compose's AWS stand-in) on a free local port."""
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "service.localaws", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
        try:
            wait_for_port(port, timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()


def process_env(tmp_path: Path, compose_env: dict[str, str]) -> dict[str, str]:
    """Only what a container has besides compose's variables: PATH and a home without
    AWS files (and the source tree on PYTHONPATH)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        **compose_env,
    }


def test_compose_environment_inits_serves_and_pushes(tmp_path: Path, emulator: str) -> None:
    """``pushgate init`` (compose's command) and ``pushgate serve`` with compose's
    environment start, and a push to the ``demo`` repository init made is ``pushed``."""
    compose = Compose(ROOT / "docker-compose.yml")
    init_env = process_env(tmp_path, compose.environment(compose.init, emulator))
    done = subprocess.run(
        [*PUSHGATE, *_command(compose.init)[1:]],
        env=init_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    port = free_port()
    serve_env = process_env(tmp_path, compose.environment(compose.replica, emulator))
    log = tmp_path / "serve.log"
    with (
        log.open("w") as out,
        subprocess.Popen(
            [*PUSHGATE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=serve_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while not _ready(url):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            body = {"repository": "demo", "tag": "compose", "manifest": MANIFEST, "sequence": 1}
            answer = httpx.post(f"{url}/v1/pushes", json=body, timeout=30)
        finally:
            process.terminate()
    assert (200, "pushed") == (answer.status_code, answer.json().get("outcome")), answer.text


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
