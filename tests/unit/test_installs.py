"""Installs by job: the base install runs the client commands, and a command whose extra is
missing says in one sentence what to install.

A real base-install venv is measured by hand for the README (its "Install" section); here
the CLI runs in a subprocess whose import system refuses every module of the extras, as an
interpreter without them would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service import cli
from service.extras import MODULES, extra_providing, sentence
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]

# the extras' modules plus what only they bring in (botocore, starlette, flask via moto);
# not pydantic, which typer itself needs
NOT_IN_BASE = (frozenset(MODULES["local"]) | {"botocore", "aiobotocore", "starlette", "flask"}) - {
    "pydantic"
}

# runs the CLI with the modules named in argv[1] made unimportable
BLOCKED_CLI = """
import sys
from importlib.abc import MetaPathFinder

blocked = set(sys.argv.pop(1).split(","))

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
sys.argv[0] = "pushgate"
from service.cli import main
main()
"""


def run_cli(*args: str, blocked: frozenset[str] = NOT_IN_BASE) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PUSHGATE_")}
    env.update(PYTHONPATH=str(ROOT), PUSHGATE_DEADLINE_SECONDS="1", COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, ",".join(sorted(blocked)), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def extra_dependencies(extra: str) -> set[str]:
    """The distribution names an extra of pyproject.toml lists, without versions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] if extra == "base" else project["optional-dependencies"][extra]
    return {re.split(r"[\[<>=!~; ]", item, maxsplit=1)[0].lower() for item in listed}


def test_base_install_is_the_client_and_its_cli() -> None:
    """pushgate's own dependencies are httpx, the CLI's libraries and the retry libraries."""
    assert {"httpx", "typer", "rich", "tenacity", "stamina"} == extra_dependencies("base")


def test_server_modules_match_the_server_extra() -> None:
    """The modules the CLI checks for `server` are those its distributions install."""
    distributions = extra_dependencies("server")
    assert {name.replace("-", "_") for name in distributions} == set(MODULES["server"])


def test_local_extra_is_server_plus_moto() -> None:
    """`local` adds moto to `server` (aioboto3 is repeated only to order pip's resolution),
    and the CLI checks for both."""
    assert {"pushgate", "aioboto3", "moto"} == extra_dependencies("local")
    assert (
        "pushgate[server]"
        in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
            "local"
        ]
    )
    assert (*MODULES["server"], "moto") == MODULES["local"]


def test_client_and_cli_import_nothing_of_the_extras() -> None:
    """Importing service, service.client and the CLI loads no module of an extra."""
    code = (
        "import sys, service, service.client, service.cli;"
        f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {sorted(NOT_IN_BASE)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    assert "[]" == result.stdout.strip()


def test_help_runs_on_the_base_install() -> None:
    """`pushgate --help` lists every command without the extras."""
    result = run_cli("--help")
    assert 0 == result.returncode, result.stderr
    for command in ("push", "status", "history", "token", "serve", "init", "stress"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["push", "demo:latest", str(ROOT / "examples/build-42.json"), "--sequence", "42"],
        ["status", "demo:latest"],
        ["history", "demo:latest"],
    ],
    ids=["push", "status", "history"],
)
def test_client_commands_run_on_the_base_install(args: list[str]) -> None:
    """A client command without the extras reaches the network: nothing listening is exit 5."""
    result = run_cli(*args, "--url", f"http://127.0.0.1:{free_port()}")
    assert 5 == result.returncode, result.stderr
    assert "did not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_runs_on_the_base_install() -> None:
    """`pushgate token` makes a token without the extras."""
    result = run_cli("token", "team-a-ci", "--scope", "team-a/*")
    assert 0 == result.returncode, result.stderr
    assert result.stdout.startswith("token (give it to the client, it is not stored): pg_")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve"], "pushgate serve needs the server extra: pip install 'pushgate[server]'\n"),
        (["init"], "pushgate init needs the server extra: pip install 'pushgate[server]'\n"),
        (
            ["serve", "--local"],
            "pushgate serve --local needs the local extra: pip install 'pushgate[local]'\n",
        ),
        (["stress"], "pushgate stress needs the local extra: pip install 'pushgate[local]'\n"),
    ],
    ids=["serve", "init", "serve-local", "stress"],
)
def test_server_commands_on_the_base_install_say_what_to_install(
    args: list[str], expected: str
) -> None:
    """A command whose extra is missing prints one sentence naming it and exits 2."""
    result = run_cli(*args)
    assert (2, "", expected) == (result.returncode, result.stdout, result.stderr)


def test_serve_local_with_the_server_extra_asks_for_local() -> None:
    """With the server extra but not moto, `serve --local` asks for the local extra."""
    result = run_cli("serve", "--local", blocked=frozenset({"moto"}))
    expected = "pushgate serve --local needs the local extra: pip install 'pushgate[local]'\n"
    assert (2, expected) == (result.returncode, result.stderr)


@pytest.mark.parametrize(
    ("module", "expected"),
    [("boto3.session", "server"), ("pydantic_settings", "server"), ("moto.server", "local")],
)
def test_extra_providing_names_the_smallest_extra(module: str, expected: str) -> None:
    """A server module maps to `server`, moto to `local`."""
    assert expected == extra_providing(module)


def test_extra_providing_knows_nothing_of_other_modules() -> None:
    """A module no extra installs (a typo, a broken install) is not blamed on an extra."""
    assert None is extra_providing("httpx")


def test_an_unchecked_server_import_still_gives_one_sentence(monkeypatch, capsys) -> None:
    """A command that imports a server module without checking first still ends with the
    sentence and exit 2, not a traceback."""

    def app() -> None:
        raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["pushgate", "token", "x"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert 2 == exit_info.value.code
    assert sentence("pushgate token", "server") + "\n" == capsys.readouterr().err


def test_an_unknown_missing_module_is_not_hidden(monkeypatch) -> None:
    """A missing module no extra provides propagates as the error it is."""

    def app() -> None:
        raise ModuleNotFoundError("No module named 'nonesuch'", name="nonesuch")

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(ModuleNotFoundError, match="nonesuch"):
        cli.main()


def readme_install_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Install\n", 1)[1].split("\n## ", 1)[0]


def test_readme_install_lines_name_the_extras_of_pyproject() -> None:
    """The README's install table has one line per extra pyproject.toml defines."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = re.findall(
        r"^\| `pip install (?:-e )?'\.\[(\w+)\]'`", readme_install_section(), re.MULTILINE
    )
    assert sorted(project["optional-dependencies"]) == sorted(named)


def test_readme_shows_the_sentence_the_cli_prints() -> None:
    """The README's example of a missing extra is the CLI's own sentence."""
    assert f"$ pushgate serve\n{sentence('pushgate serve', 'server')}\n" in readme_install_section()


def test_run_sh_installs_each_job_s_extra() -> None:
    """`./run.sh serve` installs the local extra and `./run.sh test` the dev one."""
    run_sh = (ROOT / "run.sh").read_text()
    jobs = re.findall(r"^    (\w+)\)\n        ensure_venv (\w+) ", run_sh, flags=re.MULTILINE)
    assert [("serve", "local"), ("test", "dev")] == jobs
