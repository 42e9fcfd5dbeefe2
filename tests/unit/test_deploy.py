"""docker-compose.yml and the Dockerfile, checked by parsing (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AWS_VARIABLES = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_ECR",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_aws_stand_in_init_two_replicas_and_a_balancer(compose) -> None:
    """The deployment: moto, a one-shot init, two pushgate replicas and nginx in front."""
    assert {"moto", "init", "pushgate-1", "pushgate-2", "lb"} == set(compose["services"])
    assert compose["services"]["lb"]["image"].startswith("nginx")


def test_only_the_balancer_publishes_a_port(compose) -> None:
    """Clients reach pushgate through the balancer on 8080; nothing else is published."""
    published = {
        name: svc.get("ports") for name, svc in compose["services"].items() if svc.get("ports")
    }
    assert {"lb": ["8080:8080"]} == published


def test_every_long_running_service_has_a_healthcheck(compose) -> None:
    """moto, both replicas and the balancer report health; init runs once and exits."""
    services = compose["services"]
    missing = [
        name
        for name in ("moto", "pushgate-1", "pushgate-2", "lb")
        if "healthcheck" not in services[name]
    ]
    assert [] == missing
    assert "no" == services["init"]["restart"]


def test_replicas_wait_for_init_and_are_checked_on_readyz(compose) -> None:
    """A replica starts after the tables exist and is healthy only when /readyz is."""
    for name in ("pushgate-1", "pushgate-2"):
        service = compose["services"][name]
        assert "service_completed_successfully" == service["depends_on"]["init"]["condition"]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])


def test_every_environment_variable_is_a_real_setting(compose) -> None:
    """Each PUSHGATE_* variable the compose file sets names a Settings field; the rest are AWS's own."""
    fields = {f"PUSHGATE_{name.upper()}" for name in Settings.model_fields}
    unknown = set()
    for service in compose["services"].values():
        for variable in service.get("environment", {}):
            if variable.startswith("PUSHGATE_"):
                if variable not in fields:
                    unknown.add(variable)
            elif variable not in AWS_VARIABLES:
                unknown.add(variable)
    assert set() == unknown


def test_balancer_config_names_both_replicas() -> None:
    """nginx balances over exactly the two replica services."""
    config = (ROOT / "deploy/nginx.conf").read_text()
    assert ["pushgate-1:8080", "pushgate-2:8080"] == re.findall(r"server (pushgate-\d:\d+)", config)


@pytest.fixture(scope="module")
def stages() -> dict[str, tuple[str, str]]:
    """The Dockerfile's stages in order: name -> (what it is built FROM, its instructions)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    found = re.finditer(
        r"^FROM (\S+) AS (\S+)\n(.*?)(?=^FROM |\Z)", dockerfile, flags=re.MULTILINE | re.DOTALL
    )
    return {match[2]: (match[1], match[3]) for match in found}


def image_of(stages: dict[str, tuple[str, str]], name: str) -> str:
    """The instructions that make stage ``name``'s image: its own and its bases'."""
    parts = []
    while name in stages:
        name, body = stages[name]
        parts.append(body)
    return "\n".join(reversed(parts))


def test_dockerfile_runs_as_non_root_with_a_healthcheck(stages) -> None:
    """The production image drops root and probes /healthz."""
    production = image_of(stages, "production")
    users = re.findall(r"^USER (\S+)", production, flags=re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}
    assert "HEALTHCHECK" in production
    assert "/healthz" in production


def test_production_image_is_the_default_target(stages) -> None:
    """`docker build .` (no --target) builds the last stage: the production image."""
    assert "production" == list(stages)[-1]


def test_production_image_installs_the_server_extra_and_no_moto(stages) -> None:
    """The production image installs pushgate[server]; nothing of moto or the local extra."""
    production = image_of(stages, "production")
    assert ["pushgate[server]"] == re.findall(r"'(pushgate\[\w+\])'", production)
    assert "moto" not in production.lower()


def test_emulator_stage_installs_the_local_extra_as_non_root(stages) -> None:
    """The emulator stage installs pushgate[local] (moto) and drops root."""
    emulator = image_of(stages, "emulator")
    assert ["pushgate[local]"] == re.findall(r"'(pushgate\[\w+\])'", emulator)
    assert re.findall(r"^USER (\S+)", emulator, flags=re.MULTILINE)[-1] not in {"root", "0"}


def test_compose_runs_moto_from_the_emulator_stage(compose) -> None:
    """The AWS stand-in is the emulator stage; init and the replicas the production one."""
    targets = {
        name: svc["build"]["target"] for name, svc in compose["services"].items() if "build" in svc
    }
    expected = {
        "moto": "emulator",
        "init": "production",
        "pushgate-1": "production",
        "pushgate-2": "production",
    }
    assert expected == targets


def test_compose_names_each_stage_s_image_apart(compose) -> None:
    """The emulator and production builds tag different images, so neither replaces the other."""
    images: dict[str, set[str]] = {}
    for svc in compose["services"].values():
        if "build" in svc:
            images.setdefault(svc["build"]["target"], set()).add(svc["image"])
    assert 1 == len(images["emulator"]) == len(images["production"])
    assert images["emulator"].isdisjoint(images["production"])


def test_compose_commands_exist_in_the_cli(compose) -> None:
    """`pushgate init` and `python -m service.localaws`, which compose runs, exist."""
    from typer.testing import CliRunner

    from service.cli import app

    result = CliRunner().invoke(app, ["init", "--help"])
    assert 0 == result.exit_code, result.output
    assert ["python", "-m", "service.localaws"] == compose["services"]["moto"]["command"][:3]
