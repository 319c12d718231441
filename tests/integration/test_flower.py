"""Issue 15: Flower, run as the Procfile's flower line, against the real Redis.

Its Broker page and queue-length API read the queues (the broker URL Flower sees is plain
``redis://``, not the worker's custom transport); without FLOWER_BASIC_AUTH it listens on
127.0.0.1 alone, with it on every interface behind basic auth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from harness.procfile import ProcfileProcess
from harness.redis_server import free_port
from kustom_app.settings import Settings
from tests.integration.conftest import wait_until
from workers.celery_app import make_celery

pytestmark = pytest.mark.integration

FLOWER_DB = 12  # this module's Redis database: the broker Flower reads
CREDENTIALS = ("operator", "s3cret-Flower")
INHERITED = ("PROMETHEUS_MULTIPROC_DIR", "KUSTOM_METRICS_PROCESS_DIR")


@pytest.fixture
def broker(redis_server) -> Iterator[str]:
    url = redis_server.url_for(FLOWER_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def start_flower(service_env, broker_url: str, tmp_path: Path, **extra: str) -> tuple[str, Any]:
    port = free_port()
    env = {**os.environ, **service_env, "REDIS_URL": broker_url, "FLOWER_PORT": str(port)}
    env.update(extra)
    for name in (*INHERITED, "FLOWER_BASIC_AUTH", "FLOWER_ADDRESS"):
        if name not in extra:
            env.pop(name, None)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthcheck", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    flower = ProcfileProcess("flower", env, tmp_path / "flower.log").start(up, timeout=60)
    return url, flower


def listening_address(port: int) -> str:
    """The local address the socket listening on ``port`` is bound to (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    raise AssertionError(f"nothing listens on {port}")


def queue_jobs(broker_url: str, service_env, count: int) -> None:
    producer = make_celery(Settings.from_env({**service_env, "REDIS_URL": broker_url}))
    for n in range(count):
        producer.send_task("acknowledgeKustomOrder", args=[f"cart-{n}", f"order-{n}"])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_without_basic_auth_flower_listens_on_loopback_and_its_broker_page_works(
    service_env, broker, tmp_path
):
    queue_jobs(broker, service_env, 2)
    url, flower = start_flower(service_env, broker, tmp_path)
    try:
        assert listening_address(port_of(url)) == "127.0.0.1"
        page = requests.get(f"{url}/broker", timeout=10)
        assert page.status_code == 200, page.text
        assert "not supported" not in page.text
        assert "redis://" in page.text
        assert "kustom.orders" in page.text
        # Its API is refused without authentication (Flower's own rule).
        assert requests.get(f"{url}/api/queues/length", timeout=10).status_code == 401
    finally:
        flower.stop()


def test_with_basic_auth_flower_listens_everywhere_and_asks_for_the_credentials(
    service_env, broker, tmp_path
):
    queue_jobs(broker, service_env, 3)
    url, flower = start_flower(
        service_env, broker, tmp_path, FLOWER_BASIC_AUTH=":".join(CREDENTIALS)
    )
    try:
        assert listening_address(port_of(url)) == "0.0.0.0"  # noqa: S104
        assert requests.get(f"{url}/broker", timeout=10).status_code == 401
        wrong = requests.get(f"{url}/broker", auth=("operator", "wrong"), timeout=10)
        assert wrong.status_code == 401
        page = requests.get(f"{url}/broker", auth=CREDENTIALS, timeout=10)
        assert page.status_code == 200
        assert "kustom.orders" in page.text

        def lengths() -> dict[str, int]:
            response = requests.get(f"{url}/api/queues/length", auth=CREDENTIALS, timeout=10)
            assert response.status_code == 200, response.text
            return {q["name"]: q["messages"] for q in response.json()["active_queues"]}

        assert wait_until(lambda: lengths().get("kustom.orders") == 3, timeout=20)
    finally:
        flower.stop()
