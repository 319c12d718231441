"""docker-compose.yml passes every documented setting into the service containers.

Docker is not needed: the file is parsed as compose would read it (YAML with merge keys),
and the settings are taken from the tables of docs/configuration.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kustom_app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ["web", "worker", "beat", "flower", "web2", "worker2", "worker3"]
# Fixed by the compose file: the redis service, and the ports it publishes.
FIXED = {"REDIS_URL": "redis://redis:6379/0", "PORT": "8000", "FLOWER_PORT": "5555"}
# Documented, but nothing in the containers reads it: `make run`'s shop playground.
NOT_IN_CONTAINERS = {"SHOP_PORT"}


def documented_settings() -> set[str]:
    section = (ROOT / "docs" / "configuration.md").read_text()
    names: set[str] = set()
    for row in re.findall(r"^\| (`[A-Z][A-Z0-9_]*`[^|]*)\|", section, flags=re.MULTILINE):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", row))
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_configuration_tables_are_read():
    names = documented_settings()
    assert {"REDIS_URL", "CALLBACK_SECRET", "KUSTOM_KEY_PREFIX", "EVENTS_MAX_STREAMS"} <= names
    assert {"WEB_THREADS", "WEB_CONCURRENCY", "SHOP_PORT", "RECONCILE_BATCH"} <= names


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_documented_setting_reaches_the_service(compose, service):
    environment = compose["services"][service]["environment"]
    missing = documented_settings() - NOT_IN_CONTAINERS - set(environment)
    assert not missing, f"{service} does not pass {sorted(missing)}"
    for name in [
        "KUSTOM_MIN_ORDER_TOTAL",
        "KUSTOM_ALLOWED_CHANNELS",
        "KUSTOM_VALIDATION_RULES",
        "KUSTOM_VALIDATION_REJECT",
        "LOG_FORMAT",
        "KUSTOM_KEY_PREFIX",
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "EVENTS_MAX_STREAMS",
    ]:
        assert name in environment, name


@pytest.mark.parametrize("service", APP_SERVICES)
def test_an_unset_setting_stays_unset_in_the_container(compose, service):
    """A key without a value takes the shell's or .env's value, and is absent when neither
    has one; only the fixed values and PUBLIC_BASE_URL's default are filled in."""
    environment = compose["services"][service]["environment"]
    given = {name: value for name, value in environment.items() if value is not None}
    # Flower listens on the container's interfaces, published on the host's loopback only
    # (workers/flowerconfig.py).
    flower = {"FLOWER_ADDRESS": "0.0.0.0"} if service == "flower" else {}  # noqa: S104
    assert given == {
        **FIXED,
        **flower,
        "PUBLIC_BASE_URL": "${PUBLIC_BASE_URL:-http://localhost:8000}",
    }


def test_settings_given_empty_in_env_mean_unset(compose):
    """`NAME=` in .env reaches the container as an empty value: the service's default."""
    environment = compose["services"]["web"]["environment"]
    env = {name: "" for name, value in environment.items() if value is None}
    redis_url = FIXED["REDIS_URL"]
    expected = Settings(redis_url=redis_url, celery_broker_url=redis_url)
    assert Settings.from_env({**env, **FIXED}) == expected


def test_an_empty_metrics_directory_means_the_default():
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": ""}
    env.pop("KUSTOM_METRICS_PROCESS_DIR", None)  # this test process's own directory
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, webhooks.app; print(os.environ['PROMETHEUS_MULTIPROC_DIR'])",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The process's own directory (issue 15: one per process) in the default node directory.
    node, own = os.path.split(shown)
    assert node.endswith(f"kustom-app-metrics-{os.getuid()}")
    assert own.startswith("web-")
