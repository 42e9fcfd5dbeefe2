"""deploy/ci: each CI integration and its example validate offline against the CI
system's published JSON schema (vendored in check-jsonschema), and actionlint checks
the GitHub files where it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _readme_snippets() -> list[Any]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    return [yaml.safe_load(block) for block in blocks]


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_readme_ci_snippets_meet_their_schemas(tmp_path: Path) -> None:
    """The README's GitHub step (in a workflow), GitLab job and Buildkite step validate
    against their CI system's schema, and each sets what its integration requires."""
    github, gitlab, buildkite = _readme_snippets()
    workflow = {
        "on": "push",
        "permissions": {"id-token": "write"},
        "jobs": {"release": {"runs-on": "ubuntu-latest", "steps": github}},
    }
    results = [
        _check("--builtin-schema", "vendor.github-workflows", _write(tmp_path, "w.json", workflow)),
        _check("--builtin-schema", "vendor.gitlab-ci", _write(tmp_path, "g.json", gitlab)),
        _check("--builtin-schema", "vendor.buildkite", _write(tmp_path, "b.json", buildkite)),
    ]
    assert [0, 0, 0] == [r.returncode for r in results], [r.stdout for r in results]


def test_readme_github_step_gives_the_actions_required_inputs() -> None:
    """The README's `with:` names only inputs of action.yml, and all its required ones."""
    action = yaml.safe_load((CI / "github/action.yml").read_text())
    [step] = _readme_snippets()[0]
    required = {name for name, spec in action["inputs"].items() if spec.get("required")}
    given = set(step["with"])
    assert (set(), set()) == (given - set(action["inputs"]), required - given)


def test_readme_gitlab_job_sets_what_the_template_script_reads() -> None:
    """The README's job extends the template and sets every PUSHGATE_* variable its script
    reads that the template leaves unset."""
    template = yaml.safe_load((CI / "gitlab/pushgate.gitlab-ci.yml").read_text())
    job = template[".pushgate-push"]
    read = set(re.findall(r"\$\{?(PUSHGATE_[A-Z_]+)", "\n".join(job["script"])))
    provided = set(job["variables"]) | set(job["id_tokens"]) | {"PUSHGATE_TOKEN"}
    readme_job = _readme_snippets()[1]["release-image"]
    assert (".pushgate-push", set()) == (
        readme_job["extends"],
        read - provided - set(readme_job["variables"]),
    )


def test_readme_buildkite_settings_meet_the_plugin_schema(tmp_path: Path) -> None:
    """The README's plugin settings validate against plugin.yml's configuration schema."""
    plugin = yaml.safe_load((CI / "buildkite/plugin.yml").read_text())
    [step] = _readme_snippets()[2]["steps"]
    [settings] = [v for entry in step["plugins"] for k, v in entry.items() if "/pushgate#" in k]
    schema = _write(tmp_path, "schema.json", plugin["configuration"])
    done = _check("--schemafile", schema, _write(tmp_path, "settings.json", settings))
    assert 0 == done.returncode, done.stdout
