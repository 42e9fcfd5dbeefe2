"""pushgate runs on a read-only root filesystem (the Kubernetes manifests set
``readOnlyRootFilesystem``): a running server writes no file at all."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import pytest

from tests.integration.deploy.stack import MANIFEST, REGION, create_stack, pushgate_serve

pytestmark = pytest.mark.integration

# Python's audit hooks see every file the interpreter opens or changes, its imports'
# bytecode caches included; each write is printed (printing opens nothing).
AUDIT = """
import os, sys
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.symlink",
           "os.link", "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.move"}
def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = any(c in (mode or "") for c in "wax+") or (flags or 0) & WRITES
        if writes and isinstance(path, (str, bytes)) and not str(path).startswith("/dev/"):
            print("FILE-WRITE", event, path, mode, flags, file=sys.__stderr__, flush=True)
    elif event in CHANGES:
        print("FILE-WRITE", event, args[0], file=sys.__stderr__, flush=True)
sys.addaudithook(_hook)
"""


def test_a_serving_pushgate_writes_no_file(moto_endpoint: str, tmp_path: Path) -> None:
    """From start-up through readiness, a push, a re-push, status, history and /metrics,
    `pushgate serve` (with PYTHONDONTWRITEBYTECODE=1, as the manifests set) opens no
    file for writing and creates, moves or removes none."""
    stack = create_stack(moto_endpoint)
    repository = f"ro/app-{stack.name}"
    boto3.client("ecr", endpoint_url=moto_endpoint, region_name=REGION).create_repository(
        repositoryName=repository
    )
    log = tmp_path / "serve.log"
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PUSHGATE_LOG_FORMAT": "json"}
    with pushgate_serve(moto_endpoint, stack, log, preamble=AUDIT, env=env) as url:
        body = {"repository": repository, "tag": "v1", "manifest": MANIFEST, "sequence": 1}
        for _ in range(2):
            assert 200 == httpx.post(f"{url}/v1/pushes", json=body, timeout=30).status_code
        for path in (f"/v1/tags/{repository}/v1", f"/v1/tags/{repository}/v1/history", "/metrics"):
            assert 200 == httpx.get(f"{url}{path}", timeout=10).status_code
    writes = [line for line in log.read_text().splitlines() if line.startswith("FILE-WRITE")]
    assert [] == writes
