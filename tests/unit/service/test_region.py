"""The region resolves as AWS SDKs resolve it, AWS_REGION included."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment naming no region, with an empty AWS config file."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "PUSHGATE_REGION"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return config


def test_aws_region_is_read(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_REGION alone (as compose and the README set it) names the region."""
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert "eu-west-3" == Settings().region


def test_aws_region_comes_before_the_default(
    no_region: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_REGION wins over AWS_DEFAULT_REGION, as in the AWS SDKs."""
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert "eu-west-3" == Settings().region


def test_default_region_is_read(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_DEFAULT_REGION is read when AWS_REGION is unset."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert "us-west-2" == Settings().region


def test_profile_region_is_read(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile's region is read last."""
    no_region.write_text("[profile build]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_PROFILE", "build")
    assert "ap-south-1" == Settings().region


def test_pushgate_region_wins(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PUSHGATE_REGION overrides the AWS chain."""
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("PUSHGATE_REGION", "ca-central-1")
    assert "ca-central-1" == Settings().region


def test_no_region_is_none(no_region: Path) -> None:
    """Nothing naming a region leaves it unset (the commands then say so)."""
    assert Settings().region is None


def test_unknown_profile_is_no_region(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile that does not exist names no region (rather than failing the settings)."""
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    assert Settings().region is None
