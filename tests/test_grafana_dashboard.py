"""docs/grafana/wshub-dashboard.json names only metrics a real hub exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.multinode.conftest import HubProcess
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana" / "wshub-dashboard.json"
METRIC = re.compile(r"\bwshub_[a-z0-9_]+")
# The series a metric family of each type is queried by.
SUFFIXES = {
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def exported_series(exposition: str) -> set[str]:
    """Every series name the text exposition declares (with a # TYPE line), sample or not."""
    names: set[str] = set()
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            family, kind = parts[2], parts[3]
            base = family.removesuffix("_total") if kind == "counter" else family
            names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def dashboard_metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Metric names of each panel's queries, by panel title."""
    found: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.setdefault(panel["title"], set()).update(METRIC.findall(target["expr"]))
    return found


def missing(dashboard: dict[str, Any], exported: set[str]) -> dict[str, set[str]]:
    by_panel = dashboard_metrics(dashboard)
    return {title: names - exported for title, names in by_panel.items() if names - exported}


def test_checker_finds_a_metric_that_is_not_exported() -> None:
    """A panel naming a metric the hub does not export is reported (the check can fail)."""
    dashboard = {"panels": [{"title": "p", "targets": [{"expr": "rate(wshub_gone_total[1m])"}]}]}
    exposition = "# TYPE wshub_publications_total counter\nwshub_publications_total 0.0\n"
    assert missing(dashboard, exported_series(exposition)) == {"p": {"wshub_gone_total"}}


def test_dashboard_is_well_formed() -> None:
    """The dashboard is JSON Grafana imports: unique panel ids, a Prometheus query in each panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(METRIC.search(t["expr"]) for t in panel["targets"]), panel["title"]


async def test_every_panel_names_an_exported_metric(tmp_path: Path) -> None:
    """Every metric the dashboard queries is declared by a running hub's /metrics (Redis engine,
    so the engine's metrics are there too)."""
    redis = RedisServer(tmp_path)
    await redis.start()
    hub = HubProcess(tmp_path, "hub", redis.url)
    await hub.start()
    try:
        status, body = await hub.http_get("/metrics")
    finally:
        await hub.stop()
        await redis.stop()
    assert status == 200
    exported = exported_series(body.decode())
    assert "wshub_publications_total" in exported
    dashboard = json.loads(DASHBOARD.read_text())
    assert missing(dashboard, exported) == {}
