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


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    """The image drops root and probes /healthz."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}
    assert "HEALTHCHECK" in dockerfile
    assert "/healthz" in dockerfile


def test_compose_commands_exist_in_the_cli(compose) -> None:
    """`pushgate init` and `python -m service.localaws`, which compose runs, exist."""
    from typer.testing import CliRunner

    from service.cli import app

    result = CliRunner().invoke(app, ["init", "--help"])
    assert 0 == result.exit_code, result.output
    assert ["python", "-m", "service.localaws"] == compose["services"]["moto"]["command"][:3]
