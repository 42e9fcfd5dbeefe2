"""Promotions, multi-tag pushes and pushes by digest through the Python clients (sync and
async) and the ``pushgate`` CLI, against the uvicorn-served service on moto."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.client import ImageNotFound, ManifestRejected, TagImmutable
from service.domain.models import manifest_digest
from tests.integration.client.conftest import Driver, Service
from tests.integration.service.helpers import manifest, tag_digest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
COMMAND = [sys.executable, "-c", "from service.cli import main; main()"]


def fresh() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def cli(service: Service) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs ``pushgate ARGS...`` against the service."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PUSHGATE_URL": service.url,
            "PUSHGATE_DEADLINE_SECONDS": "10",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("PUSHGATE_TOKEN", None)
        return subprocess.run(
            [*COMMAND, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    return run


@pytest.fixture
def manifest_file(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(manifest(1, fresh()))
    return path


async def test_client_promotes_an_image_pushed_by_digest(
    make_client: Callable[..., Driver], service: Service
) -> None:
    """push_digest, then promote: every tag answered pushed and names the image."""
    client = make_client(service.url)
    pushed = await client.push_digest(service.repo, manifest(1, fresh()))
    tags = [f"a-{fresh()}", f"b-{fresh()}"]
    result = await client.promote(service.repo, pushed.digest, tags, sequence=1)
    assert ("ok", ["pushed", "pushed"]) == (result.status, [t.outcome for t in result.tags])
    assert [pushed.digest] * 2 == [tag_digest(service.ecr, service.repo, t) for t in tags]


async def test_client_promote_of_unknown_digest_raises_image_not_found(
    make_client: Callable[..., Driver], service: Service
) -> None:
    """An unknown digest raises ImageNotFound."""
    client = make_client(service.url)
    with pytest.raises(ImageNotFound):
        await client.promote(service.repo, manifest_digest(manifest(9, fresh())), ["v1"])


async def test_client_push_tags_answers_each_tag(
    make_client: Callable[..., Driver], service: Service
) -> None:
    """push_tags: one answer per tag."""
    client = make_client(service.url)
    tags = sorted([f"a-{fresh()}", f"b-{fresh()}"])
    result = await client.push_tags(service.repo, tags, manifest(1, fresh()))
    assert tags == [t.tag for t in result.tags]


async def test_client_expected_digest_mismatch_raises(
    make_client: Callable[..., Driver], service: Service
) -> None:
    """expected_digest other than the bytes' digest raises ManifestRejected digest_mismatch."""
    client = make_client(service.url)
    with pytest.raises(ManifestRejected) as raised:
        await client.push(
            service.repo, "v1", manifest(1, fresh()), expected_digest="sha256:" + "0" * 64
        )
    assert (422, "digest_mismatch") == (raised.value.status, raised.value.code)


async def test_client_raise_for_status_raises_the_failed_tags_error(
    make_client: Callable[..., Driver], service: Service
) -> None:
    """A partial promotion's raise_for_status raises the failed tag's error class."""
    client = make_client(service.url)
    taken = f"t-{fresh()}"
    await client.push(service.immutable_repo, taken, manifest(2, fresh()))
    pushed = await client.push_digest(service.immutable_repo, manifest(1, fresh()))
    result = await client.promote(service.immutable_repo, pushed.digest, [taken, f"u-{fresh()}"])
    with pytest.raises(TagImmutable):
        result.raise_for_status()
    assert "partial" == result.status


def test_cli_push_by_digest_then_tag(cli: Any, service: Service, manifest_file: Path) -> None:
    """pushgate push REPO FILE --by-digest puts by digest; pushgate tag REPO@DIGEST TAGS moves them."""
    digest = manifest_digest(manifest_file.read_text())
    pushed = cli("push", service.repo, str(manifest_file), "--by-digest")
    tag = f"v-{fresh()}"
    moved = cli("tag", f"{service.repo}@{digest}", tag, "--sequence", "4")
    assert f"pushed: {service.repo}@{digest} (by digest, no tag)\n" == pushed.stdout
    assert (0, f"pushed: {service.repo}:{tag} {digest} sequence 4") == (
        moved.returncode,
        moved.stdout.split(" (token")[0],
    )


def test_cli_tag_partial_exits_with_the_failed_tags_code(
    cli: Any, service: Service, manifest_file: Path
) -> None:
    """A tag refused as immutable: its failed line, and exit 3 (conflict)."""
    repo = service.immutable_repo
    taken = f"t-{fresh()}"
    other = manifest_file.parent / "other.json"
    other.write_text(manifest(2, fresh()))
    cli("push", f"{repo}:{taken}", str(other))
    cli("push", repo, str(manifest_file), "--by-digest")
    digest = manifest_digest(manifest_file.read_text())
    answer = cli("tag", f"{repo}@{digest}", taken)
    assert (3, f"failed: {repo}:{taken}: tag_immutable:") == (
        answer.returncode,
        answer.stdout[: len(f"failed: {repo}:{taken}: tag_immutable:")],
    )


def test_cli_push_with_repeated_tag(cli: Any, service: Service, manifest_file: Path) -> None:
    """pushgate push REPO:A FILE --tag B: one line per tag, both pushed."""
    first, second = sorted([f"a-{fresh()}", f"b-{fresh()}"])
    answer = cli("push", f"{service.repo}:{first}", str(manifest_file), "--tag", second)
    lines = answer.stdout.splitlines()
    expected = [f"pushed: {service.repo}:{first}", f"pushed: {service.repo}:{second}"]
    assert (0, expected) == (answer.returncode, [line.split(" sha256")[0] for line in lines])


def test_cli_push_with_wrong_digest_exits_2(
    cli: Any, service: Service, manifest_file: Path
) -> None:
    """--digest other than the file's digest: exit 2 (invalid)."""
    answer = cli("push", f"{service.repo}:v1", str(manifest_file), "--digest", "sha256:" + "0" * 64)
    assert 2 == answer.returncode


def test_cli_line_says_repaired(cli: Any, service: Service, manifest_file: Path) -> None:
    """A tag moved behind pushgate's back is put back, and the plain line says so."""
    digest = manifest_digest(manifest_file.read_text())
    tag = f"v-{fresh()}"
    cli("push", f"{service.repo}:{tag}", str(manifest_file))
    service.ecr.put_image(
        repositoryName=service.repo, imageTag=tag, imageManifest=manifest(3, fresh())
    )
    answer = cli("tag", f"{service.repo}@{digest}", tag)
    assert ("unchanged", True, digest) == (
        answer.stdout.split(":")[0],
        "; repaired: the tag had drifted" in answer.stdout,
        tag_digest(service.ecr, service.repo, tag),
    )


def test_cli_by_digest_with_a_tag_exits_2(cli: Any, service: Service, manifest_file: Path) -> None:
    """--by-digest with REPOSITORY:TAG is invalid input: exit 2, nothing pushed."""
    answer = cli("push", f"{service.repo}:v1", str(manifest_file), "--by-digest")
    assert (2, "error: --by-digest takes a bare REPOSITORY and no --tag\n") == (
        answer.returncode,
        answer.stderr,
    )
