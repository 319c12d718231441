"""deploy/prometheus/: the alert rules and scrape configurations.

promtool (Debian's prometheus package; scripts/setup installs it) checks the rules and the
compose configuration, and runs the rules' unit tests (alerts.test.yml). Its Debian build
has no Kubernetes discovery, so the Kubernetes scrape job's relabelling is applied here to
the manifests' own pods. Every expression reads only series the service exposes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kit import (
    PROMETHEUS,
    deployments,
    promtool,
    unknown_in,
    yaml_documents,
)

JOBS = {"kustom-app-web", "kustom-app-worker", "kustom-app-beat"}


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    (doc,) = yaml_documents(PROMETHEUS / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_alert_rules():
    result = run_promtool("check", "rules", PROMETHEUS / "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path):
    """The check bites: an expression that does not parse fails it."""
    rules = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "max(kustom_x"}]}]}
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", path)
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_the_alert_rules_unit_tests_pass():
    result = run_promtool("test", "rules", PROMETHEUS / "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_cover_the_signals_the_docs_name():
    (doc,) = yaml_documents(PROMETHEUS / "alerts.test.yml")
    tested = {
        check["alertname"]
        for test in doc["tests"]
        for check in test["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert {
        "KustomAppDeadLetters",
        "KustomAppOrdersUnacknowledged",
        "KustomAppQueueBacklog",
        "KustomAppKustomErrors",
        "KustomAppTargetDown",
        "KustomAppNoWorker",
        "KustomAppNoBeat",
    } <= tested
    assert tested <= {rule["alert"] for rule in alert_rules()}


def test_a_failing_unit_test_fails(tmp_path):
    """promtool test rules bites: an alert expected that does not fire fails the run."""
    (doc,) = yaml_documents(PROMETHEUS / "alerts.test.yml")
    doc["rule_files"] = [str(PROMETHEUS / "alerts.yml")]
    first = doc["tests"][0]["alert_rule_test"][0]
    first["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    path = tmp_path / "wrong.test.yml"
    path.write_text(yaml.safe_dump(doc))
    result = run_promtool("test", "rules", path)
    assert result.returncode != 0
    assert "alertname: KustomAppDeadLetters, time: 5m" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_each_alert_reads_only_real_series(rule):
    assert not unknown_in(rule["expr"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]


def test_the_series_check_bites():
    assert unknown_in("max(kustom_dead_letter_entry)") == ["no series kustom_dead_letter_entry"]
    assert unknown_in('kustom_api_calls_total{result="5xx"}')
    assert unknown_in("max by (queue) (kustom_dead_letter_entries)")


def test_the_signals_the_docs_name_each_have_an_alert():
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for series in [
        "kustom_dead_letter_entries",
        "kustom_orders_unacknowledged",
        "kustom_completion_mismatches_open",
        "kustom_sync_lag_seconds_bucket",
        "kustom_queue_depth",
        "kustom_api_calls_total",
        "up",
    ]:
        assert re.search(rf"\b{series}\b", exprs), series


def test_promtool_accepts_the_compose_configuration():
    result = run_promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_configuration_scrapes_each_process_on_its_port():
    (config,) = yaml_documents(PROMETHEUS / "prometheus.yml")
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "kustom-app-web": ["web:8000"],
        "kustom-app-worker": ["worker:9540"],
        "kustom-app-beat": ["beat:9541"],
    }
    compose = yaml.safe_load((PROMETHEUS.parents[1] / "docker-compose.yml").read_text())
    assert {"web", "worker", "beat"} <= set(compose["services"])


# --- the Kubernetes scrape job, applied to the manifests' pods ----------------------------


def _meta_label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_target(deployment: dict[str, Any]) -> dict[str, str]:
    """The labels Prometheus's Kubernetes discovery gives the pod's first container port."""
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    labels = {
        "__address__": f"10.0.0.1:{container['ports'][0]['containerPort']}",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": f"{deployment['metadata']['name']}-abc12",
    }
    for key, value in template["metadata"]["labels"].items():
        labels[f"__meta_kubernetes_pod_label_{_meta_label(key)}"] = value
    for key, value in template["metadata"].get("annotations", {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{_meta_label(key)}"] = value
    return labels


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus's relabelling (the keep and replace actions), None for a dropped target."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"relabel action {action} not modelled here")
    return labels


def kubernetes_job() -> dict[str, Any]:
    (doc,) = yaml_documents(PROMETHEUS / "kubernetes-scrape.yml")
    (job,) = doc["scrape_configs"]
    return job


@pytest.mark.parametrize("component", ["web", "worker", "beat"])
def test_the_kubernetes_job_scrapes_each_pod_on_its_metrics_port(component):
    deployment = deployments()[component]
    target = relabel(pod_target(deployment), kubernetes_job()["relabel_configs"])
    assert target is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert target["__address__"] == f"10.0.0.1:{annotations['prometheus.io/port']}"
    assert target["__metrics_path__"] == "/metrics"
    assert target["job"] == f"kustom-app-{component}"
    assert target["namespace"] == "shop"


def test_the_kubernetes_job_leaves_out_pods_that_do_not_ask():
    assert relabel(pod_target(deployments()["flower"]), kubernetes_job()["relabel_configs"]) is None
    other = pod_target(deployments()["web"])
    other["__meta_kubernetes_pod_label_app_kubernetes_io_name"] = "another-app"
    assert relabel(other, kubernetes_job()["relabel_configs"]) is None


def test_the_alerts_name_the_jobs_the_scrape_configurations_make():
    """Both scrape configurations name their jobs kustom-app-<process>; every job matcher
    of the rules matches one of those, and each of those is watched."""
    watched: set[str] = set()
    for rule in alert_rules():
        for pattern in re.findall(r'job=~?"([^"]+)"', rule["expr"]):
            matched = {job for job in JOBS if re.fullmatch(pattern, job)}
            assert matched, (rule["alert"], pattern)
            watched |= matched
    assert watched == JOBS
