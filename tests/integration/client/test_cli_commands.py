"""The ``pushgate`` client commands through their entry point (a subprocess), against the
running service: ``push`` / ``status`` / ``history`` output, and each exit code of the
README's table, with one sentence and no traceback unless ``--debug``."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from locks import LeaseLock, LockConfig
from service.client import PushClient
from service.domain.models import ImageRef
from tests.integration.client.conftest import Service
from tests.integration.service.helpers import closed_port_url, manifest
from tests.uvicorn_server import serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ENTRY_POINT = ROOT / ".venv/bin/pushgate"
COMMAND = (
    [str(ENTRY_POINT)]
    if ENTRY_POINT.exists()
    else [sys.executable, "-c", "from service.cli import main; main()"]
)

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(service: Service) -> Run:
    """Runs ``pushgate ARGS...`` with ``PUSHGATE_URL`` on the service (``url=`` to
    override) and a short client deadline (``deadline=``; None for the default)."""

    def run(*args: str, url: str | None = None, deadline: float | None = 10.0) -> Any:
        env = {**os.environ, "PUSHGATE_URL": url or service.url, "PYTHONPATH": str(ROOT)}
        env.pop("PUSHGATE_TOKEN", None)
        env.pop("PUSHGATE_DEADLINE_SECONDS", None)
        if deadline is not None:
            env["PUSHGATE_DEADLINE_SECONDS"] = str(deadline)
        return subprocess.run(
            [*COMMAND, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    return run


@pytest.fixture
def sdk(service: Service) -> Iterator[PushClient]:
    """The Python client, to set a tag up faster than a subprocess would."""
    with PushClient(service.url) as client:
        yield client


def write(tmp_path: Path, n: int, salt: str) -> Path:
    path = tmp_path / f"manifest-{n}.json"
    path.write_text(manifest(n, salt))
    return path


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single sentence a failing command prints, checked to be just that (after at
    most one note that it was retrying)."""
    *notes, last = result.stderr.strip().splitlines()
    assert len(notes) <= 1, result.stderr
    assert all("; retrying in " in note for note in notes), result.stderr
    assert last.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return last


# --- push ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "sequence", "outcome"),
    [(None, 42, "pushed"), (42, 42, "unchanged"), (43, 42, "superseded")],
)
def test_push_prints_its_outcome_on_one_line(
    cli: Run,
    sdk: PushClient,
    service: Service,
    tag: str,
    tmp_path: Path,
    before: int | None,
    sequence: int,
    outcome: str,
) -> None:
    """``push`` exits 0 for pushed, unchanged and superseded, printing one line that
    starts with the outcome and names the ref and digest."""
    path = write(tmp_path, 1, tag)
    if before is not None:  # the same manifest (unchanged) or a newer build (superseded)
        text = path.read_text() if before == sequence else manifest(2, tag)
        sdk.push(service.repo, tag, text, sequence=before)
    result = cli("push", f"{service.repo}:{tag}", str(path), "--sequence", str(sequence))
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert (0, "") == (result.returncode, result.stderr)
    assert 1 == len(result.stdout.splitlines()), result.stdout
    assert result.stdout.startswith(f"{outcome}: {service.repo}:{tag} {digest} sequence 42")


def test_push_json_is_the_result(cli: Run, service: Service, tag: str, tmp_path: Path) -> None:
    """``push --json`` prints the result as JSON: outcome, digest of the file, token."""
    path = write(tmp_path, 1, tag)
    result = cli("push", f"{service.repo}:{tag}", str(path), "--sequence", "7", "--json")
    answer = json.loads(result.stdout)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert (0, "pushed", digest, 7) == (
        result.returncode,
        answer["outcome"],
        answer["digest"],
        answer["sequence"],
    )
    assert isinstance(answer["token"], int)


# --- status and history -------------------------------------------------------------


def test_status_prints_the_record(cli: Run, sdk: PushClient, service: Service, tag: str) -> None:
    """``status`` exits 0 with a table naming the tag's digest and sequence."""
    pushed = sdk.push(service.repo, tag, manifest(1, tag), sequence=31)
    result = cli("status", f"{service.repo}:{tag}")
    assert 0 == result.returncode, result.stderr
    assert pushed.digest in result.stdout
    assert "31" in result.stdout


def test_status_json_is_the_record(cli: Run, sdk: PushClient, service: Service, tag: str) -> None:
    """``status --json`` prints the record as JSON."""
    pushed = sdk.push(service.repo, tag, manifest(1, tag), sequence=31)
    answer = json.loads(cli("status", f"{service.repo}:{tag}", "--json").stdout)
    assert (service.repo, tag, pushed.digest, 31, pushed.token) == (
        answer["repository"],
        answer["tag"],
        answer["digest"],
        answer["sequence"],
        answer["token"],
    )


def test_history_prints_a_table(cli: Run, sdk: PushClient, service: Service, tag: str) -> None:
    """``history`` exits 0 with one row per recorded push, newest first."""
    sdk.push(service.repo, tag, manifest(1, tag), sequence=1)
    sdk.push(service.repo, tag, manifest(1, tag), sequence=1)
    result = cli("history", f"{service.repo}:{tag}")
    lines = result.stdout.splitlines()
    rows = [line for line in lines if " pushed " in line or " unchanged " in line]
    assert 0 == result.returncode, result.stderr
    assert ["unchanged", "pushed"] == [
        "unchanged" if " unchanged " in row else "pushed" for row in rows
    ]


def test_history_json_honours_limit(cli: Run, sdk: PushClient, service: Service, tag: str) -> None:
    """``history --limit 2 --json`` prints the newest two entries and a cursor."""
    for sequence in (1, 2, 3):
        sdk.push(service.repo, tag, manifest(sequence, tag), sequence=sequence)
    result = cli("history", f"{service.repo}:{tag}", "--limit", "2", "--json")
    page = json.loads(result.stdout)
    assert [3, 2] == [item["sequence"] for item in page["items"]]
    assert page["next_cursor"]


def test_history_cursor_pages_on(cli: Run, sdk: PushClient, service: Service, tag: str) -> None:
    """``history --limit 2`` prints the command for older entries; running it shows them."""
    for sequence in (1, 2, 3):
        sdk.push(service.repo, tag, manifest(sequence, tag), sequence=sequence)
    first = cli("history", f"{service.repo}:{tag}", "--limit", "2")
    [more] = [line for line in first.stdout.splitlines() if line.startswith("older entries: ")]
    cursor = more.split("--cursor ")[1]
    older = cli("history", f"{service.repo}:{tag}", "--limit", "2", "--cursor", cursor, "--json")
    assert [1] == [item["sequence"] for item in json.loads(older.stdout)["items"]]


# --- exit codes ---------------------------------------------------------------------


def test_bad_ref_exits_2(cli: Run, tmp_path: Path) -> None:
    """A ref without ``:TAG`` is invalid input: exit 2 with one sentence."""
    result = cli("push", "no-tag-here", str(write(tmp_path, 1, "")))
    assert 2 == result.returncode
    assert "REPOSITORY:TAG" in one_error_line(result)


def test_missing_manifest_file_exits_2(cli: Run, service: Service, tmp_path: Path) -> None:
    """A manifest file that does not exist is invalid input: exit 2 naming the file."""
    missing = tmp_path / "nope.json"
    result = cli("push", f"{service.repo}:v1", str(missing))
    assert 2 == result.returncode
    assert f"error: cannot read {missing}: No such file or directory" == one_error_line(result)


def test_invalid_request_exits_2(cli: Run, service: Service, tmp_path: Path) -> None:
    """A tag the service refuses (422 invalid_request) exits 2, naming the field."""
    result = cli("push", f"{service.repo}:-bad", str(write(tmp_path, 1, "")))
    assert 2 == result.returncode
    assert "tag" in one_error_line(result)


def test_manifest_rejected_by_ecr_exits_2(
    cli: Run, service: Service, tag: str, tmp_path: Path
) -> None:
    """A manifest ECR refuses (layers_not_found) is invalid input: exit 2."""
    service.fidelity.inject(service.repo, "LayersNotFoundException", "Layers missing")
    try:
        result = cli("push", f"{service.repo}:{tag}", str(write(tmp_path, 1, tag)))
    finally:
        service.fidelity.clear()
    assert 2 == result.returncode
    one_error_line(result)


def test_tag_immutable_exits_3(
    cli: Run, sdk: PushClient, service: Service, tag: str, tmp_path: Path
) -> None:
    """Another manifest on an immutable tag is a conflict: exit 3."""
    sdk.push(service.immutable_repo, tag, manifest(2, tag))
    result = cli("push", f"{service.immutable_repo}:{tag}", str(write(tmp_path, 1, tag)))
    assert 3 == result.returncode
    assert "immutable" in one_error_line(result)


def test_lease_timeout_exits_4(cli: Run, service: Service, tag: str, tmp_path: Path) -> None:
    """While another holder keeps the tag's lease, a push that gives up (``--wait`` and
    ``PUSHGATE_DEADLINE_SECONDS``) is busy: exit 4."""
    lock = LeaseLock(
        service.settings.lease_table,
        client=service.dynamodb,
        config=LockConfig(lease_seconds=30.0),
        owner="another-pushgate",
    )
    path = str(write(tmp_path, 1, tag))
    with lock.acquire(ImageRef(service.repo, tag).key, timeout=5.0):
        result = cli("push", f"{service.repo}:{tag}", path, "--wait", "0.2", deadline=0.5)
    assert 4 == result.returncode
    one_error_line(result)


def test_push_with_wait_exits_4_after_that_wait(
    cli: Run, service: Service, tag: str, tmp_path: Path
) -> None:
    """``push --wait`` on a tag another holder keeps busy exits 4 after that one wait:
    no retry of the lease_timeout, however long ``PUSHGATE_DEADLINE_SECONDS`` is."""
    lock = LeaseLock(
        service.settings.lease_table,
        client=service.dynamodb,
        config=LockConfig(lease_seconds=30.0),
        owner="another-pushgate",
    )
    path = str(write(tmp_path, 1, tag))
    with lock.acquire(ImageRef(service.repo, tag).key, timeout=5.0):
        result = cli("push", f"{service.repo}:{tag}", path, "--wait", "0.3", deadline=25.0)
    assert 4 == result.returncode
    assert [] == result.stderr.splitlines()[:-1]  # no "retrying" note
    one_error_line(result)


def test_unreachable_service_exits_5(cli: Run) -> None:
    """Nothing listening at ``PUSHGATE_URL``, with the default 120 s deadline: exit 5
    after a few seconds of retries (not the deadline), having said once that it keeps
    trying (a CI log shows why it waits)."""
    result = cli("status", "team/app:v1", url=closed_port_url(), deadline=None)
    assert 5 == result.returncode
    assert "127.0.0.1" in one_error_line(result)
    [note] = result.stderr.splitlines()[:-1]
    assert "did not answer" in note
    assert "PUSHGATE_DEADLINE_SECONDS" in note


def test_unreachable_service_with_json_prints_one_document(cli: Run) -> None:
    """``--json``: stderr holds the error as one JSON document, no retry note."""
    result = cli("status", "team/app:v1", "--json", url=closed_port_url(), deadline=1.0)
    assert 5 == result.returncode
    assert "service_unreachable" == json.loads(result.stderr)["error"]


def test_registry_error_exits_6(cli: Run, service: Service, tag: str, tmp_path: Path) -> None:
    """A registry fault that outlasts the client's retries (kms_error) exits 6."""
    members = {"kmsError": "KMSDisabledException"}
    service.fidelity.inject(service.repo, "KmsException", "key off", times=50, members=members)
    try:
        path = str(write(tmp_path, 1, tag))
        result = cli("push", f"{service.repo}:{tag}", path, deadline=0.5)
    finally:
        service.fidelity.clear()
    assert 6 == result.returncode
    one_error_line(result)


def test_missing_repository_exits_7(cli: Run, tag: str, tmp_path: Path) -> None:
    """A push to a repository ECR does not have is not found: exit 7."""
    result = cli("push", f"team/missing-{tag}:v1", str(write(tmp_path, 1, tag)))
    assert 7 == result.returncode
    one_error_line(result)


async def _unauthorized(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering every request as a pushgate with tokens would a bad one."""
    if scope["type"] != "http":
        return
    body = {"error": "unauthorized", "message": "A valid bearer token is required."}
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def test_unauthorized_exits_8(cli: Run) -> None:
    """A 401 unauthorized answer exits 8."""
    with serve(_unauthorized) as url:
        result = cli("status", "team/app:v1", url=url)
    assert 8 == result.returncode
    assert "bearer token" in one_error_line(result)


async def _not_pushgate(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering 200 with JSON that is not pushgate's."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"hello": "world"}'})


def test_unexpected_answer_exits_1(cli: Run) -> None:
    """``PUSHGATE_URL`` naming a service that is not pushgate is unexpected: exit 1, with
    one sentence and no traceback."""
    with serve(_not_pushgate) as url:
        result = cli("status", "team/app:v1", url=url)
    assert 1 == result.returncode
    one_error_line(result)


# --- error output -------------------------------------------------------------------


def test_history_of_a_tag_never_pushed_exits_7(cli: Run, service: Service, tag: str) -> None:
    """``history`` of a tag with no recorded push is not found (exit 7), as ``status``
    is, not an empty table and exit 0."""
    result = cli("history", f"{service.repo}:{tag}")
    assert (7, "") == (result.returncode, result.stdout)
    assert tag in one_error_line(result)


def test_json_error_is_a_document(cli: Run, service: Service, tag: str) -> None:
    """``status`` of a tag never pushed is not found (exit 7); with ``--json`` the error is
    one JSON document on stderr carrying the API code."""
    result = cli("status", f"{service.repo}:{tag}", "--json")
    answer = json.loads(result.stderr)
    assert (7, "tag_not_found") == (result.returncode, answer["error"])


def test_debug_shows_the_traceback(cli: Run, service: Service, tag: str) -> None:
    """``--debug`` shows the traceback instead of the one sentence."""
    result = cli("status", f"{service.repo}:{tag}", "--debug")
    assert 0 != result.returncode
    assert "Traceback" in result.stderr
    assert "TagNotFound" in result.stderr


# --- what other callers wrote ---------------------------------------------------------

MARKUP_CALLER = "[/bold] [link=https://evil.example]release-bot[/link] [red]x"
CONTROL_CALLER = "mallory\x1b[2K\rrelease-bot\u202e\x9b"


@contextlib.contextmanager
def doctoring_proxy(upstream: str, old: str, new: str) -> Iterator[str]:
    """A stand-in service on 127.0.0.1 that answers GETs from ``upstream`` with ``old``
    replaced by ``new`` in the JSON text."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = httpx.get(upstream + self.path, timeout=10.0)
            data = answer.text.replace(old, new).encode()
            self.send_response(answer.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def push_as(service: Service, tag: str, caller: str) -> None:
    """A push whose body names ``caller`` (free text, as the API takes it)."""
    body = {"repository": service.repo, "tag": tag, "manifest": manifest(1, tag), "caller": caller}
    response = httpx.post(f"{service.url}/v1/pushes", json=body, timeout=30.0)
    assert 200 == response.status_code, response.text


@pytest.mark.parametrize("command", ["status", "history"])
def test_a_caller_written_as_markup_is_printed_as_text(
    cli: Run, service: Service, tag: str, command: str
) -> None:
    """A ``caller`` holding rich markup neither breaks ``status``/``history`` nor
    styles their output: it is printed as the text it is."""
    push_as(service, tag, MARKUP_CALLER)
    result = cli(command, f"{service.repo}:{tag}")
    assert (0, "") == (result.returncode, result.stderr)
    assert "[/bold] [link=https://evil.example]release-bot" in result.stdout


@pytest.mark.parametrize("command", ["status", "history"])
def test_control_characters_of_a_caller_are_escaped(
    cli: Run, service: Service, tag: str, command: str
) -> None:
    """ESC, carriage return, C1 and bidirectional controls in a ``caller`` reach the
    terminal as visible escapes, never as the controls themselves. The API refuses such a
    caller now; older records (or another service answering at PUSHGATE_URL) may hold one,
    so a stand-in serves the real answers with the caller changed."""
    push_as(service, tag, "release-bot")
    caller = json.dumps(CONTROL_CALLER)[1:-1]
    with doctoring_proxy(service.url, "release-bot", caller) as url:
        result = cli(command, f"{service.repo}:{tag}", url=url)
    assert 0 == result.returncode, result.stderr
    assert not any(ch in result.stdout for ch in "\x1b\r\x9b\u202e")
    assert "mallory\\x1b[2K" in result.stdout
