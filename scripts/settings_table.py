"""Print the settings table of README.md from ``service.settings``'s docstring.

.venv/bin/python scripts/settings_table.py          # print it
.venv/bin/python scripts/settings_table.py --write  # replace it in README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"


def rows() -> list[tuple[str, str, str]]:
    import service.settings  # noqa: PLC0415

    lines = (service.settings.__doc__ or "").splitlines()
    rule = next(line for line in lines if line.startswith("===="))
    starts = [m.start() for m in re.finditer(r"=+", rule)]
    found = []
    for line in lines:
        if line.startswith("PUSHGATE_"):
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            found.append((cells[0], cells[1], cells[2]))
    return found


def table() -> str:
    out = ["| variable | default | meaning |", "|---|---|---|"]
    out += [f"| `{name}` | {default} | {meaning} |" for name, default, meaning in rows()]
    return "\n".join(out)


def main() -> None:
    text = table()
    if "--write" not in sys.argv:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), flags=re.DOTALL)
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", content))


if __name__ == "__main__":
    main()
