"""The CI integrations under deploy/ci run as their CI system would run them: each
script gets the CI's OIDC token (from a stand-in of the CI's token service) and pushes
through a real `pushgate serve` whose tokens accept only that CI's token, so a push
lands only if the token reached pushgate. The client is already on PATH, so the
scripts' install step is skipped (it would fetch from PyPI)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml

from tests.integration.deploy.stack import MANIFEST, REGION, ROOT, create_stack, pushgate_serve

pytestmark = pytest.mark.integration

CI = ROOT / "deploy/ci"
ID_TOKENS = {"github": "gh-id-token", "gitlab": "gl-id-token", "buildkite": "bk-id-token"}
REQUEST_TOKEN = "runner-request-token"
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]


def _entry(name: str, token: str) -> dict[str, Any]:
    return {
        "name": f"{name}-ci",
        "sha256": hashlib.sha256(token.encode()).hexdigest(),
        "scopes": ["ci/*"],
    }


@pytest.fixture(scope="module")
def pushgate(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pushgate serve` on a fresh stack, accepting one token per CI system."""
    stack = create_stack(moto_endpoint)
    tokens = json.dumps([_entry(name, token) for name, token in ID_TOKENS.items()])
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with pushgate_serve(moto_endpoint, stack, log, env={"PUSHGATE_AUTH_TOKENS": tokens}) as url:
        yield url


@pytest.fixture
def repository(moto_endpoint: str) -> str:
    name = f"ci/app-{uuid.uuid4().hex[:10]}"
    ecr = boto3.client("ecr", endpoint_url=moto_endpoint, region_name=REGION)
    ecr.create_repository(repositoryName=name)
    return name


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(MANIFEST)
    return path


def _client_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment with the client on PATH, as on a CI runner."""
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return {"PATH": path, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}


def _tag(url: str, repository: str, tag: str, token: str) -> tuple[str, int | None, str]:
    answer = httpx.get(
        f"{url}/v1/tags/{repository}/{tag}", headers={"authorization": f"Bearer {token}"}
    )
    body = answer.json()
    return body["caller"], body["sequence"], body["digest"]


def _digest() -> str:
    return "sha256:" + hashlib.sha256(MANIFEST.encode()).hexdigest()


class _TokenService(BaseHTTPRequestHandler):
    """GitHub's ID token endpoint: the runner's request token, then the audience asked."""

    audiences: list[str]

    def do_GET(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if (
            self.headers.get("authorization") != f"bearer {REQUEST_TOKEN}"
            or query.get("api-version") != "2.0"
        ):
            self.send_error(403)
            return
        self.audiences.append(query.get("audience", ""))
        body = json.dumps({"value": ID_TOKENS["github"], "count": 1}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def token_service() -> Iterator[tuple[str, list[str]]]:
    audiences: list[str] = []
    handler = type("Handler", (_TokenService,), {"audiences": audiences})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token?api-version=2.0", audiences
    finally:
        server.shutdown()
        server.server_close()


def _evaluate(value: str, inputs: dict[str, str], github: dict[str, str]) -> str:
    """The two expression forms action.yml uses: ${{ inputs.X }} and ${{ github.X }}."""

    def replace(match: re.Match[str]) -> str:
        context, name = match.group(1), match.group(2)
        return (inputs if context == "inputs" else github)[name]

    return re.sub(r"\$\{\{\s*(inputs|github)\.([\w-]+)\s*\}\}", replace, str(value))


def test_github_action_pushes_every_tag_with_the_jobs_oidc_token(
    pushgate: str,
    repository: str,
    manifest: Path,
    token_service: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    """The composite action's steps, run as the runner runs them (inputs through env,
    defaults evaluated), fetch an ID token for the audience `pushgate` and push each tag
    with the run number as its sequence; pushgate records the GitHub token's caller."""
    action = yaml.safe_load((CI / "github/action.yml").read_text())
    given = {
        "url": pushgate,
        "repository": repository,
        "tags": "main\nsha-abc\n",
        "manifest": str(manifest),
    }
    github = {"run_number": "417"}
    inputs = {
        name: given.get(name, _evaluate(spec.get("default", ""), {}, github))
        for name, spec in action["inputs"].items()
    }
    request_url, audiences = token_service
    env = {
        **_client_env(tmp_path),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_PATH": str(tmp_path / "github_path"),
        "ACTIONS_ID_TOKEN_REQUEST_URL": request_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
    }
    for step in action["runs"]["steps"]:
        assert "${{" not in step["run"], "inputs must reach scripts through env only"
        step_env = {k: _evaluate(v, inputs, github) for k, v in step.get("env", {}).items()}
        subprocess.run([*BASH, step["run"]], env={**env, **step_env}, check=True, timeout=120)
    token = ID_TOKENS["github"]
    tags = [_tag(pushgate, repository, tag, token) for tag in ("main", "sha-abc")]
    assert (["pushgate"], [("github-ci", 417, _digest())] * 2) == (audiences, tags)


def test_gitlab_template_pushes_every_tag_with_the_jobs_id_token(
    pushgate: str, repository: str, manifest: Path, tmp_path: Path
) -> None:
    """The template's script, run with the variables GitLab would set (its own, the
    job's, and the ID token named in id_tokens), pushes each tag with the pipeline's
    IID as sequence; the ID token's audience is `pushgate`."""
    template = yaml.safe_load((CI / "gitlab/pushgate.gitlab-ci.yml").read_text())
    job = template[".pushgate-push"]
    [(token_variable, token_spec)] = job["id_tokens"].items()
    variables = {
        "CI_PIPELINE_IID": "58",
        token_variable: ID_TOKENS["gitlab"],
        "PUSHGATE_URL": pushgate,
        "PUSHGATE_REPOSITORY": repository,
        "PUSHGATE_TAGS": "main v1.2",
        "PUSHGATE_MANIFEST": str(manifest),
    }
    for name, value in job["variables"].items():  # GitLab expands $VARS in variables
        variables[name] = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), ""), str(value))
    script = "\n".join(job["script"])
    env = {**_client_env(tmp_path), **variables}
    subprocess.run([*BASH, script], env=env, check=True, timeout=120)
    token = ID_TOKENS["gitlab"]
    tags = [_tag(pushgate, repository, tag, token) for tag in ("main", "v1.2")]
    assert ("pushgate", [("gitlab-ci", 58, _digest())] * 2) == (token_spec["aud"], tags)


def test_buildkite_plugin_pushes_every_tag_with_the_agents_oidc_token(
    pushgate: str, repository: str, manifest: Path, tmp_path: Path
) -> None:
    """The plugin's command hook, with the agent's BUILDKITE_PLUGIN_PUSHGATE_* variables
    for a list of tags, asks `buildkite-agent oidc request-token --audience pushgate` (a
    stand-in agent that answers only that) and pushes each tag with the build number."""
    agent = tmp_path / "bin/buildkite-agent"
    agent.parent.mkdir()
    expected = "oidc request-token --audience pushgate"
    agent.write_text(
        f'#!/bin/sh\n[ "$*" = "{expected}" ] || exit 3\necho {ID_TOKENS["buildkite"]}\n'
    )
    agent.chmod(0o755)
    env = _client_env(tmp_path)
    env["PATH"] = f"{agent.parent}:{env['PATH']}"
    env |= {
        "BUILDKITE_BUILD_NUMBER": "1203",
        "BUILDKITE_PLUGIN_PUSHGATE_URL": pushgate,
        "BUILDKITE_PLUGIN_PUSHGATE_REPOSITORY": repository,
        "BUILDKITE_PLUGIN_PUSHGATE_TAGS_0": "main",
        "BUILDKITE_PLUGIN_PUSHGATE_TAGS_1": "latest",
        "BUILDKITE_PLUGIN_PUSHGATE_MANIFEST": str(manifest),
    }
    subprocess.run([str(CI / "buildkite/hooks/command")], env=env, check=True, timeout=120)
    token = ID_TOKENS["buildkite"]
    tags = [_tag(pushgate, repository, tag, token) for tag in ("main", "latest")]
    assert [("buildkite-ci", 1203, _digest())] * 2 == tags


def test_a_wrong_token_pushes_nothing(
    pushgate: str, repository: str, manifest: Path, tmp_path: Path
) -> None:
    """Control: the same hook with a token pushgate does not know fails, and the tag
    stays unset (the other tests pass only because their token got through)."""
    env = _client_env(tmp_path) | {
        "PUSHGATE_TOKEN": "not-a-known-token",
        "BUILDKITE_BUILD_NUMBER": "1",
        "BUILDKITE_PLUGIN_PUSHGATE_URL": pushgate,
        "BUILDKITE_PLUGIN_PUSHGATE_REPOSITORY": repository,
        "BUILDKITE_PLUGIN_PUSHGATE_TAGS": "main",
        "BUILDKITE_PLUGIN_PUSHGATE_MANIFEST": str(manifest),
    }
    done = subprocess.run([str(CI / "buildkite/hooks/command")], env=env, timeout=120, check=False)
    answer = httpx.get(
        f"{pushgate}/v1/tags/{repository}/main",
        headers={"authorization": f"Bearer {ID_TOKENS['buildkite']}"},
    )
    assert (True, 404) == (done.returncode != 0, answer.status_code)
