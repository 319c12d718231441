"""What the deployment kit's tests compare it with: the service's real settings, metrics,
Procfile and ports, read from the code rather than written down again here."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from kustom_app import metrics
from kustom_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
CONTRACT = ROOT / "docs" / "contract.md"

# Read by the service, though not a field of the settings table: production mode
# (`Settings.from_env` reads it directly).
READ_BY_FROM_ENV = {"APP_ENV"}
# Read by the `celery` command line itself (its options from CELERY_<COMMAND>_<OPTION>):
# the worker's pool size, which the manifests bound to the pod's size.
READ_BY_CELERY = {"CELERY_WORKER_CONCURRENCY"}
# The contract's defaults (section 2) for the worker's metrics port, which the worker's
# metrics server reads; beat serves on the next port.
CONTRACT_WORKER_METRICS_PORT = 9540
# Built by the workers' metrics server, not kustom_app/metrics.py: the depth of each queue.
WORKER_METRICS = {"kustom_queue_depth": {"queue"}}
# Prometheus's own series about each target.
PROMETHEUS_SERIES = {"up": set(), "scrape_duration_seconds": set()}
# Every target carries these (the scrape job, and relabelling in kubernetes-scrape.yml).
TARGET_LABELS = {"job", "instance", "namespace", "pod"}


def settings_table_names() -> set[str]:
    """Every environment name of the settings table (kustom_app/settings.py)."""
    names: set[str] = set()
    for each in dataclasses.fields(Settings):
        names.update(each.metadata.get("env", ()))
    return names


def contract_settings() -> set[str]:
    """The names in the contract's section 2 (docs/contract.md, the repository's copy)."""
    text = CONTRACT.read_text()
    section = text.split("## 2. Settings", 1)[1].split("\n## 3.", 1)[0]
    names: set[str] = set()
    for row in re.findall(r"^\| (`[A-Z][A-Z0-9_]*`[^|]*)\|", section, flags=re.MULTILINE):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", row))
    return names


def procfile() -> dict[str, str]:
    lines: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not name.startswith("#"):
            lines[name.strip()] = command.strip()
    return lines


def procfile_variables() -> dict[str, str | None]:
    """The variables the Procfile's lines read, each with its `${NAME:-default}`, if any."""
    found: dict[str, str | None] = {}
    for command in procfile().values():
        for name, default in re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}", command):
            found[name] = default or None
        for name in re.findall(r"\$([A-Z][A-Z0-9_]*)", command):
            found.setdefault(name, None)
    return found


def real_settings() -> set[str]:
    """Every environment variable the service reads: the settings table, the contract's
    section 2 (some names reach the table from other parts of the work), what
    `Settings.from_env` reads by itself, what the Procfile's lines read, and the Celery
    command line's options the manifests set."""
    return (
        settings_table_names()
        | contract_settings()
        | READ_BY_FROM_ENV
        | set(procfile_variables())
        | READ_BY_CELERY
    )


def worker_metrics_port(env: dict[str, str]) -> int:
    """The worker's metrics port under ``env``: the settings table's, once it has the
    field, else the contract's default."""
    for each in dataclasses.fields(Settings):
        if "WORKER_METRICS_PORT" in each.metadata.get("env", ()):
            return int(Settings.read(each.name, env))
    return int(env.get("WORKER_METRICS_PORT") or CONTRACT_WORKER_METRICS_PORT)


def _exposed(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total", f"{name}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    return {name}


def known_metrics() -> dict[str, set[str]]:
    """Every series name a kustom-app target exposes, with its labels: the counters and
    histograms of kustom_app/metrics.py, the gauges its Redis collector yields, the
    workers' queue depth, and Prometheus's own `up`."""
    known: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = set(value._labelnames)
            for family in value.describe():
                extra = {"le"} if family.type == "histogram" else set()
                for name in _exposed(family.name, family.type):
                    known[name] = labels | (extra if name.endswith("_bucket") else set())
    collector = metrics.RedisStateCollector(fakeredis.FakeRedis(), "kustom")
    for family in collector.collect():
        known[family.name] = set()
    return {**known, **WORKER_METRICS, **PROMETHEUS_SERIES}


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[str, list[dict[str, Any]]]:
    """deploy/kubernetes/'s resources by file, kustomization.yaml aside."""
    return {
        path.name: yaml_documents(path)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def deployments() -> dict[str, dict[str, Any]]:
    """The Deployments by component (web, worker, beat, flower)."""
    found = {}
    for docs in manifests().values():
        for doc in docs:
            if doc["kind"] == "Deployment":
                found[doc["metadata"]["labels"]["app.kubernetes.io/component"]] = doc
    return found


def configmap() -> dict[str, str]:
    (doc,) = yaml_documents(KUBERNETES / "configmap.yaml")
    return dict(doc["data"])


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for component, deployment in deployments().items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield component, container


def promtool() -> str:
    """promtool's path (scripts/setup installs Debian's prometheus package for it)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH: scripts/setup installs it (apt-get prometheus)")
    return path


# --- PromQL, enough to name what an expression reads ----------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_WORD = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_reads(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """The series names an expression reads, the label names each selector matches on,
    and the label names it groups by."""
    selected: dict[str, set[str]] = {}
    for name, body in _MATCHERS.findall(_STRING.sub('""', expr)):
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body))
        selected.setdefault(name, set()).update(labels)
    grouped: set[str] = set()
    for body in _GROUPING.findall(expr):
        grouped.update(label.strip() for label in body.split(",") if label.strip())
    bare = _RANGE.sub("", _GROUPING.sub("", _MATCHERS.sub(r"\1", _STRING.sub('""', expr))))
    names = {word for word in _WORD.findall(bare) if word.lower() not in _KEYWORDS}
    names.update(name for name in selected if name)
    return names, selected, grouped


def unknown_in(expr: str) -> list[str]:
    """What ``expr`` reads that no kustom-app target exposes: series, or labels."""
    known = known_metrics()
    names, selected, grouped = promql_reads(expr)
    problems = [f"no series {name}" for name in sorted(names - set(known))]
    available = set(TARGET_LABELS)
    for name in names & set(known):
        available |= known[name]
    for name, labels in selected.items():
        allowed = (known.get(name, set()) | TARGET_LABELS) if name else available
        problems += [f"{name or 'selector'} has no label {label}" for label in labels - allowed]
    problems += [f"grouped by {label}, which no series has" for label in grouped - available]
    return problems
