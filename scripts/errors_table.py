"""Print README.md's error-code and exit-code tables from ``service.codes``.

.venv/bin/python scripts/errors_table.py          # print them
.venv/bin/python scripts/errors_table.py --write  # replace them in README.md
.venv/bin/python scripts/errors_table.py --check  # exit 1 when README.md's differ
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import codes  # noqa: E402 - after the path is set

README = ROOT / "README.md"
MARKERS = {"errors": "errors-table", "exits": "exit-codes-table"}


def errors_table() -> str:
    """One row per code the API answers with, by status."""
    answered = [code for code in codes.CODES.values() if code.status is not None]
    out = [
        "| status | `error` | retry | client exception | meaning |",
        "|---|---|---|---|---|",
    ]
    for code in sorted(answered, key=lambda c: c.status or 0):
        retry = "yes" if code.retryable else "no"
        out.append(
            f"| {code.status} | `{code.name}` | {retry} | `{code.client}` | {code.meaning} |"
        )
    return "\n".join(out)


def exits_table() -> str:
    """One row per exit code of the CLI, with the error codes that exit with it."""
    out = ["| exit code | meaning | error codes |", "|---|---|---|"]
    for exit_code, meaning in codes.EXIT_MEANINGS.items():
        names = ", ".join(f"`{c.name}`" for c in codes.CODES.values() if c.exit is exit_code)
        out.append(f"| {int(exit_code)} | {meaning} | {names or '-'} |")
    return "\n".join(out)


TABLES = {"errors": errors_table, "exits": exits_table}


def _pattern(marker: str) -> re.Pattern[str]:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    return re.compile(re.escape(begin) + ".*?" + re.escape(end), flags=re.DOTALL)


def rewritten(content: str) -> str:
    """``content`` with each marked table replaced by the current one."""
    for key, marker in MARKERS.items():
        text = TABLES[key]()
        block = f"<!-- {marker}:begin -->\n{text}\n<!-- {marker}:end -->"
        content, found = _pattern(marker).subn(block.replace("\\", r"\\"), content)
        if found != 1:
            raise SystemExit(f"README.md needs exactly one {marker} block, found {found}")
    return content


def main() -> None:
    if "--write" in sys.argv:
        README.write_text(rewritten(README.read_text()))
    elif "--check" in sys.argv:
        content = README.read_text()
        if rewritten(content) != content:
            print("README.md's error tables are stale: run scripts/errors_table.py --write")
            raise SystemExit(1)
    else:
        print(errors_table(), exits_table(), sep="\n\n")


if __name__ == "__main__":
    main()
