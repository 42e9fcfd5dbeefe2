"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules` and
their unit tests (`promtool test rules`), every dashboard query parses as PromQL, and
every metric they name is one pushgate exposes (service.metrics)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/pushgate-alerts.yaml"
RULE_TESTS = ROOT / "deploy/prometheus/pushgate-alerts.test.yaml"
DASHBOARD = ROOT / "deploy/grafana/pushgate-dashboard.json"
NAME = re.compile(r"\bpushgate_[a-z0-9_]+")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*"}


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return promtool


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_rules_pass_promtool_check() -> None:
    """promtool check rules: the file and every expression parse."""
    done = _run(_promtool(), "check", "rules", str(RULES))
    assert 0 == done.returncode, done.stdout + done.stderr


def test_rules_fire_as_their_unit_tests_say() -> None:
    """promtool test rules: lost leases, 5xx rate and budget saturation fire on series
    that cross their thresholds, and stay quiet on series that do not."""
    done = _run(_promtool(), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert 0 == done.returncode, done.stdout + done.stderr


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each dashboard query, with Grafana's variables filled in, parses (as a recording
    rule checked by promtool)."""
    rules = []
    for index, query in enumerate(_dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)  # noqa: PLW2901 - filled in place
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _run(_promtool(), "check", "rules", str(path))
    assert 0 == done.returncode, done.stdout + done.stderr


def test_every_metric_named_exists() -> None:
    """Each pushgate_* series named by an alert or a dashboard query is exposed by
    Metrics' registry (its _total, _bucket, _count, _info series included)."""
    exposed = Metrics().names()
    named = {n for rule in _alerts() for n in NAME.findall(rule["expr"])}
    named |= {n for query in _dashboard_queries() for n in NAME.findall(query)}
    assert (set(), True) == (named - exposed, len(named) > 10)


def test_every_alert_says_how_bad_and_what() -> None:
    """Each alert has a severity label and a summary and description."""
    missing = [
        rule["alert"]
        for rule in _alerts()
        if rule["labels"].get("severity") not in {"warning", "critical"}
        or not {"summary", "description"} <= set(rule["annotations"])
    ]
    assert [] == missing


def test_dashboard_panels_have_unique_ids_and_refs() -> None:
    """Grafana needs unique panel ids and, per panel, unique target refIds."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    refs = [[t["refId"] for t in panel["targets"]] for panel in panels]
    assert (len(ids), [len(r) for r in refs]) == (len(set(ids)), [len(set(r)) for r in refs])


def test_readme_lists_every_metric() -> None:
    """The README's Observability section names every metric family pushgate exposes."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Observability", 1)[1].split("\n## ", 1)[0]
    families = {
        family.name
        + ("_total" if family.type == "counter" else "")
        + ("_info" if family.type == "info" else "")
        for family in Metrics().registry.collect()
    }
    assert set() == {name for name in families if f"`{name}" not in section}
