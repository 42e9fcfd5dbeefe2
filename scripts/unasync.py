"""Write the sync twins from the async sources with the ``unasync`` library:
``locks/_sync.py`` from ``locks/_async.py`` and ``service/client/_sync.py`` from
``service/client/_async.py``.

python scripts/unasync.py          # regenerate both
python scripts/unasync.py --check  # exit 1 if either is not what it would write

unasync drops ``async``/``await`` and renames tokens; the names below map each
``_synchronization`` twin and each async-only library name to its sync one. Prose
(docstrings, comments) is left alone by unasync, so the few sentences that differ
are rewritten by ``PROSE``; each must match, so a reworded source fails loudly
instead of leaving async wording in the sync driver. The result is formatted with
ruff, so the generated file passes the project's format check.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this script's own name would shadow the unasync library
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]

import tokenize_rt  # noqa: E402
import unasync  # noqa: E402

SOURCE = ROOT / "locks" / "_async.py"
TARGET = ROOT / "locks" / "_sync.py"

HEADER = "# Generated from _async.py by scripts/unasync.py: edit that file, then run the script.\n"

NAMES = {
    # the public API
    "AsyncLeaseLock": "LeaseLock",
    "AsyncLease": "Lease",
    # locks._synchronization twins
    "AsyncBackground": "Background",
    "AsyncCondition": "Condition",
    "AsyncEvent": "Event",
    "AsyncLock": "Lock",
    "AsyncSleepFn": "SleepFn",
    "AsyncThreadLock": "ThreadLock",
    "async_default_client": "default_client",
    "async_open_client": "open_client",
    "async_shield": "shield",
    "async_sleep": "sleep",
    # libraries
    "AsyncExitStack": "ExitStack",
    "aclose": "close",
    "aioboto3": "boto3",
    "enter_async_context": "enter_context",
    "types_aiobotocore_dynamodb": "types_boto3_dynamodb",
}

PROSE = [
    (
        r'"""The asyncio driver: an aiobotocore DynamoDB client, a heartbeat task per lease\.',
        '"""The blocking driver: a boto3 DynamoDB client, a heartbeat thread per lease.',
    ),
    (
        r"Written by hand; ``_sync\.py`` is generated from it by ``scripts/unasync\.py``",
        "Generated from ``_async.py`` by ``scripts/unasync.py``",
    ),
    (r"for asyncio\.", "for threads."),
    (
        (
            r"Pass ``client`` \(an aiobotocore DynamoDB client you manage\), or use the lock\n"
            r"    as ``async with AsyncLeaseLock\(\.\.\.\) as lock`` to open a client from\n"
            r"    ``session`` \(default: a new ``aioboto3\.Session\(\)``,"
            r" the standard AWS chain\)\."
        ),
        (
            "Pass ``client`` (a boto3 DynamoDB client you manage), or ``session`` to build\n"
            "    one from (default: the standard AWS chain, with botocore's standard retry mode)."
        ),
    ),
    (r"'async with AsyncLeaseLock\(\.\.\.\)'", "'with LeaseLock(...)'"),
    (r"Wait until ``key`` is granted", "Block until ``key`` is granted"),
    (r"never waits", "never blocks"),
    (r"heartbeat task", "heartbeat thread"),
    (r"as an async context manager", "as a context manager"),
]


def generate() -> str:
    """The sync driver's source, formatted."""
    rule = unasync.Rule(fromdir="/_async/", todir="/_sync/", additional_replacements=NAMES)
    tokens = tokenize_rt.src_to_tokens(SOURCE.read_text(encoding="utf-8"))
    # Rule's file API writes beside its input; the token pass alone is what we need
    text = tokenize_rt.tokens_to_src(rule._unasync_tokens(tokens))  # noqa: SLF001
    for pattern, replacement in PROSE:
        text, count = re.subn(pattern, replacement, text)
        if count == 0:
            raise SystemExit(f"scripts/unasync.py: no match in _async.py for {pattern!r}")
    return _format(HEADER + text)


CLIENT_SOURCE = ROOT / "service" / "client" / "_async.py"
CLIENT_TARGET = ROOT / "service" / "client" / "_sync.py"
CLIENT_NAMES = {
    "AsyncPushClient": "PushClient",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncRetrying": "Retrying",
    "aclose": "close",
}


def generate_client() -> str:
    """The blocking client's source, formatted (its prose needs no rewriting)."""
    rule = unasync.Rule(fromdir="/_async/", todir="/_sync/", additional_replacements=CLIENT_NAMES)
    tokens = tokenize_rt.src_to_tokens(CLIENT_SOURCE.read_text(encoding="utf-8"))
    text = tokenize_rt.tokens_to_src(rule._unasync_tokens(tokens))  # noqa: SLF001
    return _format(text, CLIENT_TARGET)


def _format(text: str, target: Path = TARGET) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def main(argv: list[str]) -> int:
    stale = 0
    for target, make in ((TARGET, generate), (CLIENT_TARGET, generate_client)):
        expected = make()
        name = str(target.relative_to(ROOT))
        if "--check" not in argv:
            target.write_text(expected, encoding="utf-8")
            continue
        actual = target.read_text(encoding="utf-8") if target.exists() else ""
        if actual != expected:
            diff = difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                name,
                f"{name} (generated)",
            )
            sys.stdout.writelines(diff)
            print(f"{name} is stale: run python scripts/unasync.py", file=sys.stderr)
            stale = 1
    return stale


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
