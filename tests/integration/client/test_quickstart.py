"""The README's Quickstart, run as written: its fenced shell commands are read from
README.md, so the test follows the README rather than a copy of it.

``./run.sh serve`` is replaced by what it executes, ``pushgate serve --local``, on a free
port (checked against run.sh below): 8080 may be taken on a shared machine, and then the
commands would silently talk to someone else's pushgate. The ``.venv/bin/pushgate`` lines
run verbatim with ``PUSHGATE_URL`` (which the README documents) naming that port; the curl
example gets the port substituted into its URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
README_URL = "http://127.0.0.1:8080"
ENTRY_POINT = ".venv/bin/pushgate"
COMMAND = (
    [str(ROOT / ENTRY_POINT)]
    if (ROOT / ENTRY_POINT).exists()
    else [sys.executable, "-c", "from service.cli import main; main()"]
)
OUTCOMES = ("pushed", "unchanged", "superseded")


def quickstart_commands() -> list[str]:
    """Each command of the Quickstart section's fenced shell blocks, continuation lines
    joined, comments kept."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", section, re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def expected_outcome(command: str) -> str | None:
    """The outcome a command's comment announces (``# unchanged: a re-push ...``)."""
    _, hash_, comment = command.partition("  # ")
    if not hash_:
        return None
    word = comment.strip().split(":", 1)[0].split()[0]
    return word if word in OUTCOMES else None


@pytest.fixture(scope="module")
def pushgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``pushgate serve --local`` (what ``./run.sh serve`` executes) on a free port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("quickstart") / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env["PYTHONPATH"] = str(ROOT)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--local", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "pushgate serve --local did not get ready"
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def shell(command: str, url: str) -> subprocess.CompletedProcess[str]:
    """Run one README line with bash from the repository root, as a newcomer would."""
    if command.startswith(ENTRY_POINT) and not (ROOT / ENTRY_POINT).exists():
        command = shlex.join(COMMAND) + command.removeprefix(ENTRY_POINT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    env.update(PUSHGATE_URL=url, PYTHONPATH=str(ROOT))
    return subprocess.run(
        ["bash", "-c", command.replace(README_URL, url)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def test_quickstart_starts_pushgate_with_run_sh_serve() -> None:
    """The Quickstart's first command is ``./run.sh serve``, which runs ``pushgate serve
    --local``: what the other tests here start in its place."""
    run_sh = (ROOT / "run.sh").read_text()
    assert "./run.sh serve" == quickstart_commands()[0]
    assert re.search(r'exec "\$VENV/bin/pushgate" serve --local "\$@"', run_sh)


def test_quickstart_pushgate_commands_do_what_the_readme_says(pushgate: str) -> None:
    """Each ``pushgate`` line of the Quickstart exits 0 and prints the outcome its comment
    announces; the tag ends at build 42's digest, and status and history show it."""
    commands = [c for c in quickstart_commands() if c.startswith(ENTRY_POINT)]
    assert len(commands) >= 5, commands
    outputs = []
    for command in commands:
        result = shell(command, pushgate)
        assert 0 == result.returncode, (command, result.stdout, result.stderr)
        outcome = expected_outcome(command)
        if outcome is not None:
            assert result.stdout.startswith(f"{outcome}: demo:latest "), (command, result.stdout)
        outputs.append((command.split()[1], result.stdout))
    build_42 = (ROOT / "examples/build-42.json").read_bytes()
    digest = "sha256:" + hashlib.sha256(build_42).hexdigest()
    status = next(out for verb, out in outputs if verb == "status")
    history = next(out for verb, out in outputs if verb == "history")
    assert digest in status
    assert all(f" {outcome} " in history for outcome in OUTCOMES), history


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_quickstart_curl_example_pushes(pushgate: str) -> None:
    """The curl example (its URL pointed at the test's port) pushes demo:v1."""
    commands = [c for c in quickstart_commands() if c.startswith("curl ")]
    assert 1 == len(commands), commands
    result = shell(commands[0], pushgate)
    assert 0 == result.returncode, result.stderr
    answer = json.loads(result.stdout)
    assert ("pushed", "demo", "v1") == (answer["outcome"], answer["repository"], answer["tag"])
