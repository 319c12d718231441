"""Redis Sentinel: the state store and the Celery broker both reach the master through it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from harness.redis_server import RedisServer, free_port
from kustom_app.redis_connection import redis_from_url
from kustom_app.settings import Settings
from tests.domain import cart_store

pytestmark = pytest.mark.integration


@pytest.fixture
def sentinel_url(tmp_path: Path):
    with RedisServer(appendonly=False) as master:
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor kustom-master 127.0.0.1 {master.port} 1\n"
        )
        process = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            sentinel = redis.Redis(port=port, socket_timeout=0.5)
            while time.monotonic() < deadline:
                try:
                    if sentinel.execute_command(
                        "SENTINEL", "get-master-addr-by-name", "kustom-master"
                    ):
                        break
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
            yield f"sentinel://127.0.0.1:{port}/0?master_name=kustom-master", master
        finally:
            process.terminate()
            process.wait(5)


def test_state_store_and_broker_reach_the_master_through_sentinel(sentinel_url):
    url, master = sentinel_url
    store = cart_store(redis_from_url(url, socket_timeout=2))
    store.record_render("cart-s", 1, {"cartId": "cart-s"}, "h1", {"h": 1})
    direct = redis.Redis.from_url(master.url)
    assert direct.hget("kustom:cart:cart-s", "pending_hash") == b"h1"

    from workers.celery_app import make_celery

    app = make_celery(Settings(redis_url=url, celery_broker_url=url))
    assert app.conf.broker_transport_options["master_name"] == "kustom-master"
    app.send_task("syncKustomOrder", args=("cart-s", "h1", None), queue="kustom.sync")
    assert direct.llen("kustom.sync") == 1
