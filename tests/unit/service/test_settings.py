"""Settings: environment variables, and the documented table staying true."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

import service.settings
from service.cli import local_settings
from service.settings import Settings


def documented() -> dict[str, str]:
    doc = service.settings.__doc__ or ""
    return dict(re.findall(r"^PUSHGATE_(\w+)\s+(\S+)", doc, flags=re.MULTILINE))


def test_every_setting_is_documented() -> None:
    """The module docstring's table names every field, and no field that does not exist."""
    assert {name.upper() for name in Settings.model_fields} == set(documented())


def test_documented_defaults_are_the_defaults() -> None:
    """Each concrete default in the table is the field's default."""
    for name, default in documented().items():
        if default.startswith("("):
            assert Settings.model_fields[name.lower()].default is None, name
        else:
            actual = Settings.model_fields[name.lower()].default
            if isinstance(actual, (int, float)):
                assert float(default) == actual, name
            else:
                assert default == actual, name


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """PUSHGATE_* variables configure the service."""
    monkeypatch.setenv("PUSHGATE_HISTORY_TABLE", "custom-history")
    monkeypatch.setenv("PUSHGATE_LEASE_SECONDS", "12.5")
    settings = Settings()
    assert ("custom-history", 12.5) == (settings.history_table, settings.lease_seconds)


def test_margin_must_fit_in_the_lease() -> None:
    """An ECR margin as long as the lease is refused at start-up."""
    with pytest.raises(ValidationError):
        Settings(lease_seconds=2.0, lease_margin_seconds=2.0)


def test_local_logs_are_console_unless_asked_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --local`` logs to the console by default, and keeps PUSHGATE_LOG_FORMAT
    when it is set."""
    endpoint = "http://127.0.0.1:5000"
    monkeypatch.delenv("PUSHGATE_LOG_FORMAT", raising=False)
    assert "console" == local_settings(Settings(), endpoint).log_format
    monkeypatch.setenv("PUSHGATE_LOG_FORMAT", "json")
    local = local_settings(Settings(), endpoint)
    assert ("json", endpoint, endpoint) == (
        local.log_format,
        local.dynamodb_endpoint_url,
        local.ecr_endpoint_url,
    )


def test_local_turns_auth_off_unless_asked_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --local`` sets PUSHGATE_AUTH=off explicitly, and keeps PUSHGATE_AUTH when set."""
    endpoint = "http://127.0.0.1:5000"
    monkeypatch.delenv("PUSHGATE_AUTH", raising=False)
    off = local_settings(Settings(), endpoint).auth
    monkeypatch.setenv("PUSHGATE_AUTH", "tokens")
    assert ("off", "tokens") == (off, local_settings(Settings(), endpoint).auth)


def test_wait_bound_cannot_exceed_the_limit() -> None:
    """PUSHGATE_MAX_WAIT_SECONDS is bounded by service.domain.limits.MAX_WAIT_SECONDS."""
    with pytest.raises(ValidationError):
        Settings(max_wait_seconds=10**400)
