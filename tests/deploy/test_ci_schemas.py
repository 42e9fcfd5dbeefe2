"""deploy/ci: each CI integration and its example validate offline against the CI
system's published JSON schema (vendored in check-jsonschema), and actionlint checks
the GitHub files where it is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "deploy/ci"
CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")

SCHEMAS = [
    ("vendor.github-actions", "github/action.yml"),
    ("vendor.github-workflows", "github/example-workflow.yml"),
    ("vendor.gitlab-ci", "gitlab/pushgate.gitlab-ci.yml"),
    ("vendor.gitlab-ci", "gitlab/example.gitlab-ci.yml"),
    ("vendor.buildkite", "buildkite/example-pipeline.yml"),
]


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK_JSONSCHEMA, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(("schema", "path"), SCHEMAS)
def test_file_meets_its_ci_systems_schema(schema: str, path: str) -> None:
    """check-jsonschema --builtin-schema finds no error."""
    done = _check("--builtin-schema", schema, str(CI / path))
    assert 0 == done.returncode, done.stdout + done.stderr


def test_buildkite_plugin_configuration_is_a_valid_schema(tmp_path: Path) -> None:
    """plugin.yml's `configuration` is a JSON Schema (checked against its metaschema)."""
    schema = tmp_path / "configuration.json"
    plugin = yaml.safe_load((CI / "buildkite/plugin.yml").read_text())
    schema.write_text(json.dumps(plugin["configuration"]))
    done = _check("--check-metaschema", str(schema))
    assert 0 == done.returncode, done.stdout + done.stderr


def test_buildkite_example_configures_the_plugin_as_its_schema_says(tmp_path: Path) -> None:
    """The example pipeline's settings for the plugin meet plugin.yml's schema, and a
    setting the plugin does not know is refused by it."""
    plugin = yaml.safe_load((CI / "buildkite/plugin.yml").read_text())
    schema = tmp_path / "configuration.json"
    schema.write_text(json.dumps(plugin["configuration"]))
    pipeline = yaml.safe_load((CI / "buildkite/example-pipeline.yml").read_text())
    [settings] = [
        value
        for step in pipeline["steps"]
        for entry in step.get("plugins", [])
        for name, value in entry.items()
        if "/pushgate#" in name
    ]
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(settings))
    bad.write_text(json.dumps({**settings, "tag": "latest"}))
    results = [_check("--schemafile", str(schema), str(file)).returncode for file in (good, bad)]
    assert [0, 1] == results


def test_actionlint_finds_nothing_in_the_github_files() -> None:
    """actionlint (shellcheck of the run scripts included, where shellcheck is
    installed) passes the example workflow that uses the action."""
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (no Debian or PyPI package here)")
    workflow = CI / "github/example-workflow.yml"
    done = subprocess.run(
        [actionlint, str(workflow)], capture_output=True, text=True, timeout=120, check=False
    )
    assert 0 == done.returncode, done.stdout + done.stderr
