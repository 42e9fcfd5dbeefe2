"""The sync driver is generated from the async one, and ``import locks`` stays light.

``scripts/unasync.py --check`` runs here so a stale ``locks/_sync.py`` fails the test
suite (and CI with it). The import checks run in a fresh interpreter, since this one
has long loaded everything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _loaded_after(code: str) -> set[str]:
    """Top-level packages of interest loaded after running ``code`` in a new interpreter."""
    probe = (
        f"{code}\nimport sys\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'aioboto3', 'aiobotocore', 'aiohttp', 'boto3', 'pynamodb'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    )
    return set(done.stdout.split())


def test_generated_sync_driver_is_up_to_date():
    """locks/_sync.py is exactly what scripts/unasync.py writes from locks/_async.py."""
    done = _check(ROOT)

    assert (0, "") == (done.returncode, done.stdout)


def test_check_fails_on_a_stale_sync_driver(tmp_path: Path) -> None:
    """--check exits 1 and shows the diff when _sync.py differs from the generated one."""
    for name in ("pyproject.toml", "scripts/unasync.py", "locks/_async.py", "locks/_sync.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    sync = tmp_path / "locks" / "_sync.py"
    sync.write_text(sync.read_text().replace("def key(self)", "def key(self, x=1)"))

    done = _check(tmp_path)

    assert 1 == done.returncode
    assert "+    def key(self) -> str:" in done.stdout


def test_import_locks_loads_neither_aiobotocore_nor_pynamodb():
    """import locks needs botocore only: no aioboto3, aiobotocore, boto3 or PynamoDB."""
    assert set() == _loaded_after("import locks")


def test_sync_lock_with_a_boto3_client_loads_no_async_stack():
    """A LeaseLock over a boto3 client loads boto3, never aioboto3 or PynamoDB."""
    code = (
        "import boto3, locks\n"
        "lock = locks.LeaseLock('t', client=boto3.client('dynamodb', region_name='us-east-1'))"
    )

    assert {"boto3"} == _loaded_after(code)


def test_async_lock_with_a_client_loads_no_sync_stack():
    """An AsyncLeaseLock given a client imports neither boto3 nor PynamoDB itself."""
    code = "import locks\nlock = locks.AsyncLeaseLock('t', client=object())"

    assert set() == _loaded_after(code)


def test_lease_model_imports_pynamodb_when_called():
    """PynamoDB is loaded by lease_model, the one place that uses it."""
    assert {"pynamodb"} == _loaded_after("import locks\nlocks.lease_model('t')")
