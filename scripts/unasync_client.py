"""Generate the blocking client ``service/client/_sync.py`` from ``_async.py`` (unasync's
token rules, then ``ruff format``), as httpcore keeps its twins in one source.

.venv/bin/python scripts/unasync_client.py          # write _sync.py
.venv/bin/python scripts/unasync_client.py --check  # exit 1 when _sync.py is stale
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "service/client/_async.py"
TARGET = ROOT / "service/client/_sync.py"

#: names unasync's own rules do not cover (they would make ``AsyncX`` ``SyncX``)
REPLACEMENTS = {
    "AsyncPushClient": "PushClient",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncRetrying": "Retrying",
    "aclose": "close",
}


def generated() -> str:
    """What ``_sync.py`` should hold."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "_async.py"
        shutil.copyfile(SOURCE, source)
        rule = unasync.Rule("_async.py", "_sync.py", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(source)], [rule])
        text = (Path(tmp) / "_sync.py").read_text()
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return formatted.stdout


def main() -> int:
    text = generated()
    if "--check" in sys.argv:
        if TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run scripts/unasync_client.py")
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
