"""deploy/grafana/kustom-app.json: a dashboard Grafana can import, whose every query reads
only series the service exposes and parses as PromQL (promtool checks each one as a
recording rule)."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.kit import GRAFANA, promtool, unknown_in

# Grafana's own variables, as promtool cannot read them: $__rate_interval is at least
# four scrape intervals (15 s in deploy/prometheus/).
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "kustom-app.json").read_text())


def queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def test_the_dashboard_is_importable():
    board = dashboard()
    assert board["uid"] == "kustom-app"
    assert isinstance(board["schemaVersion"], int)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    (datasource,) = board["templating"]["list"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


@pytest.mark.parametrize(("title", "expr"), queries(), ids=[f"{t}:{e[:40]}" for t, e in queries()])
def test_each_query_reads_only_real_series(title, expr):
    assert not unknown_in(as_promql(expr)), title


def test_the_dashboard_shows_the_signals_the_alerts_watch():
    exprs = " ".join(expr for _, expr in queries())
    for series in [
        "kustom_dead_letter_entries",
        "kustom_orders_unacknowledged",
        "kustom_completion_mismatches_open",
        "kustom_sync_lag_seconds_bucket",
        "kustom_queue_depth",
        "kustom_api_calls_total",
        "kustom_carts_syncing",
        "up",
    ]:
        assert re.search(rf"\b{series}\b", exprs), series


def test_promtool_parses_every_query(tmp_path):
    rules = [
        {"record": f"dashboard:query_{index}", "expr": as_promql(expr)}
        for index, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
