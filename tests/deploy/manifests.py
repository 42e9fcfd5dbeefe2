"""Render the kustomize trees with `kubectl kustomize` (skipped, with the reason, when
kubectl is missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy/kubernetes"
TREES = ("base", "overlays/example")


def render(tree: str) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize` renders for ``deploy/kubernetes/<tree>``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize trees cannot be rendered here")
    output = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / tree)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [doc for doc in documents if doc["kind"] == kind]
    return found
