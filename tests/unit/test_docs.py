"""README.md stays true to the code it documents."""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import tokenize
import urllib.parse
from pathlib import Path

from service.adapters.ecr import ERROR_TABLE

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_current() -> None:
    """The settings table in README.md is the one service.settings documents
    (regenerate with scripts/settings_table.py --write)."""
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts/settings_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.table() in (ROOT / "README.md").read_text()


# --- docs/ and the references to it ---------------------------------------------------------

DOCS = ROOT / "docs"
SOURCE_DIRS = ("locks", "service", "tests", "bench", "scripts")
URL = re.compile(r"https?://[^\s'\"`<>)\]]+")
#: Hosts a comment may name: this machine, a compose service or placeholder (one label),
#: and the names reserved for examples and tests.
LOOPBACK = {"localhost", "0.0.0.0", "::1"}
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost")
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
#: Documents of the project's workspace that are not in the repository; docs/ replaces them.
OUTSIDE_DOCUMENT = re.compile(r"\bshared/[\w.-]+\.md\b")
TRACKER = re.compile(r"(?i)\b(?:issue|pull request)\s+#?\d+\b")
#: Files whose references to outside documents are fixed by their owners' pending changes.
PENDING = {"service/domain/push.py", "service/domain/models.py"}


def python_files() -> list[Path]:
    return sorted(
        path
        for name in SOURCE_DIRS
        for path in (ROOT / name).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def prose(path: Path) -> list[tuple[int, str]]:
    """The comments and docstrings of ``path`` (every string standing alone as a
    statement), with their first line numbers."""
    source = path.read_text()
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    found += [
        (node.lineno, node.value.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    return found


def allowed_url(url: str) -> bool:
    """Loopback, a single-label host (a compose service, a placeholder) or a name
    reserved for examples: nothing outside the repository."""
    host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
    host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    host = host.lower().rstrip(".")
    if not host or any(c in host for c in "{<$"):
        return True
    if host in LOOPBACK or host.startswith("127."):
        return True
    if "." not in host:
        return True
    return host.endswith(RESERVED_SUFFIXES) or any(
        host == domain or host.endswith("." + domain) for domain in EXAMPLE_DOMAINS
    )


def outside_references(path: Path, relative: str) -> list[str]:
    """Where the comments and docstrings of ``path`` (``relative`` to the repository root)
    point outside the repository, sorted."""
    found = []
    for line, text in prose(path):
        found += [f"{relative}:{line}: {url}" for url in URL.findall(text) if not allowed_url(url)]
        found += [f"{relative}:{line}: {ref}" for ref in TRACKER.findall(text)]
        if relative not in PENDING:
            found += [f"{relative}:{line}: {doc}" for doc in OUTSIDE_DOCUMENT.findall(text)]
    return sorted(found)


def test_no_comment_or_docstring_points_outside_the_repository() -> None:
    """No comment or docstring of locks, service, tests, bench or scripts links to a
    web page, an issue tracker or a document outside the repository (docs/ holds the
    project's own account)."""
    assert [] == [
        ref
        for path in python_files()
        for ref in outside_references(path, path.relative_to(ROOT).as_posix())
    ]


def test_outside_reference_check_catches_each_kind(tmp_path: Path) -> None:
    """The check reports a web link, an issue number and an outside document, and lets
    loopback, compose service and example URLs through."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""See https://github.com/org/repo/issues/3 and shared/ECR.md."""\n'
        "# fixed in issue 12; served on http://127.0.0.1:8080 and http://pushgate:8080\n"
        'URL = "https://example.com/v2/"  # https://registry.example/v2/ is fine too\n'
    )
    assert [
        "sample.py:1: https://github.com/org/repo/issues/3",
        "sample.py:1: shared/ECR.md",
        "sample.py:2: issue 12",
    ] == outside_references(sample, "sample.py")


def test_docs_index_lists_every_page() -> None:
    """docs/README.md links every page of docs/."""
    index = (DOCS / "README.md").read_text()
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert pages == sorted(p for p in pages if f"]({p})" in index)


def test_docs_links_and_paths_exist() -> None:
    """Every relative link of docs/ and every repository path it names in backticks
    (``service/...py``) exists."""
    missing = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        links = re.findall(r"\]\(([^)#\s]+)", text)
        paths = re.findall(r"`((?:locks|service|tests|bench|scripts)/[\w/.-]+\.py)`", text)
        missing += [
            f"{page.name}: {link}"
            for link in links
            if "://" not in link and not (page.parent / link).exists()
        ]
        missing += [f"{page.name}: {path}" for path in paths if not (ROOT / path).exists()]
    assert [] == missing


def test_code_points_to_existing_docs() -> None:
    """Every docs/ page a comment or docstring points to exists."""
    named = {
        (path.relative_to(ROOT).as_posix(), doc)
        for path in python_files()
        for doc in re.findall(r"\bdocs/[\w-]+\.md\b", path.read_text())
    }
    assert [] == sorted(f"{path}: {doc}" for path, doc in named if not (ROOT / doc).exists())


def test_ecr_page_lists_every_mapped_error_code() -> None:
    """docs/ecr.md's table of PutImage errors names exactly the ECR codes that
    service.adapters.ecr maps."""
    text = (DOCS / "ecr.md").read_text()
    section = text.split("## PutImage's errors", 1)[1].split("\n## ", 1)[0]
    assert sorted(ERROR_TABLE) == sorted(set(re.findall(r"`(\w+Exception)`", section)))
