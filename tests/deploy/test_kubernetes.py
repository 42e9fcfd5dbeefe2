"""deploy/kubernetes: the base and the example overlay render with `kubectl kustomize`,
validate offline against the Kubernetes schemas (`kubernetes-validate`, strict), and
hold what a production deployment of pushgate needs."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from service.settings import Settings
from tests.deploy.manifests import ROOT, TREES, one, render

CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor")}  # CRDs: no schema offline
KUBERNETES_VERSION = "1.30.0"  # the oldest version whose schemas the manifests must meet


def _container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [container] = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("tree", TREES)
def test_every_document_meets_the_kubernetes_schemas(tree: str) -> None:
    """Each rendered object but the ServiceMonitor (a CRD) validates strictly (no unknown
    fields) against the Kubernetes 1.30 and latest schemas bundled with kubernetes-validate."""
    documents = [d for d in render(tree) if (d["apiVersion"], d["kind"]) not in CUSTOM]
    for version in (KUBERNETES_VERSION, kubernetes_validate.latest_version()):
        for document in documents:
            kubernetes_validate.validate(document, version, strict=True)
    kinds = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    assert kinds <= {d["kind"] for d in documents}


@pytest.mark.parametrize("tree", TREES)
def test_service_monitor_scrapes_the_service_metrics(tree: str) -> None:
    """The ServiceMonitor (validated by structure: its CRD schema is not available
    offline) selects the Service by its labels and scrapes /metrics on a named port."""
    documents = render(tree)
    monitor, service = one(documents, "ServiceMonitor"), one(documents, "Service")
    labels = service["metadata"]["labels"]
    selected = monitor["spec"]["selector"]["matchLabels"]
    ports = {port["name"] for port in service["spec"]["ports"]}
    endpoints = [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]]
    assert (selected, [("http", "/metrics")]) == (
        {k: v for k, v in labels.items() if k in selected},
        [(port, path) for port, path in endpoints if port in ports],
    )


def test_deployment_runs_replicated_probed_and_locked_down() -> None:
    """Two or more replicas, readiness on /readyz and liveness on /healthz, requests
    and a memory limit, non-root, read-only root filesystem with /tmp on an emptyDir."""
    documents = render("overlays/example")
    deployment = one(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(documents)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    facts = {
        "replicas>=2": deployment["spec"]["replicas"] >= 2,
        "readiness": container["readinessProbe"]["httpGet"]["path"],
        "liveness": container["livenessProbe"]["httpGet"]["path"],
        "requests": sorted(container["resources"]["requests"]),
        "limits": sorted(container["resources"]["limits"]),
        "non-root": pod["securityContext"]["runAsNonRoot"],
        "read-only": container["securityContext"]["readOnlyRootFilesystem"],
        "escalation": container["securityContext"]["allowPrivilegeEscalation"],
        "tmp": "emptyDir" in volumes[mounts["/tmp"]],  # noqa: S108 - a mount path
    }
    assert {
        "replicas>=2": True,
        "readiness": "/readyz",
        "liveness": "/healthz",
        "requests": ["cpu", "memory"],
        "limits": ["memory"],
        "non-root": True,
        "read-only": True,
        "escalation": False,
        "tmp": True,
    } == facts


def test_disruption_budget_and_service_select_the_pods() -> None:
    """The PodDisruptionBudget and the Service select exactly the Deployment's pods, and
    the budget leaves at least one of them up."""
    documents = render("overlays/example")
    deployment = one(documents, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget, service = one(documents, "PodDisruptionBudget"), one(documents, "Service")
    assert (pod_labels, pod_labels) == (
        budget["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
    )
    assert deployment["spec"]["replicas"] - budget["spec"]["maxUnavailable"] >= 1


def test_overlay_binds_the_service_account_to_an_iam_role() -> None:
    """The example overlay's ServiceAccount carries the IRSA annotation, and the pods run
    under it."""
    documents = render("overlays/example")
    account = one(documents, "ServiceAccount")
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert (True, account["metadata"]["name"]) == (
        role.startswith("arn:aws:iam::"),
        pod["serviceAccountName"],
    )


@pytest.mark.parametrize("tree", TREES)
def test_every_pushgate_variable_is_a_setting(tree: str) -> None:
    """Each PUSHGATE_* variable the manifests set (env and the generated ConfigMap) names
    a field of service.settings.Settings."""
    documents = render(tree)
    names = {e["name"] for e in _container(documents).get("env", [])}
    names |= set(one(documents, "ConfigMap")["data"])
    settings = {f"PUSHGATE_{field.upper()}" for field in Settings.model_fields}
    pushgate = {name for name in names if name.startswith("PUSHGATE_")}
    assert set() == pushgate - settings
    assert "PUSHGATE_LOG_FORMAT" in pushgate


def test_pods_run_as_the_images_user() -> None:
    """The Deployment's runAsUser is the uid the Dockerfile creates and switches to."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"useradd .*--uid (\d+)", dockerfile)
    pod = one(render("base"), "Deployment")["spec"]["template"]["spec"]
    assert (True, pod["securityContext"]["runAsUser"]) == (
        uid is not None,
        int(uid[1]) if uid else None,
    )
