"""The kombu channel override (workers/fastpath_broker.py) on a real Redis: the guard of a
kombu or redis-py upgrade.

The override replaces ``kombu.transport.redis.Channel.conn_or_acquire`` so that publishing
reuses one Redis client per channel. If kombu stops publishing through that method (or
renames it), the override silently stops working: these tests publish through Celery, as
the web does, and count the clients kombu builds.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu.transport import redis as kombu_redis

from harness.redis_server import RedisServer
from kustom_app.settings import Settings
from workers import fastpath_broker
from workers.celery_app import make_celery

pytestmark = pytest.mark.integration

BROKER_DB = 9  # this module's Redis database
QUEUE = "fastpath-broker-test"  # no worker consumes it
PUBLISHES = 5


@pytest.fixture
def broker_url(redis_server: RedisServer) -> Iterator[str]:
    url = redis_server.url_for(BROKER_DB)
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def clients_built(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every Redis client a kombu Redis channel builds (True: the consumer's asynchronous
    one), whichever transport: the override inherits ``_create_client`` from kombu."""
    built: list[bool] = []
    create = kombu_redis.Channel._create_client

    def counting(self: Any, asynchronous: bool = False) -> Any:
        built.append(asynchronous)
        return create(self, asynchronous=asynchronous)

    monkeypatch.setattr(kombu_redis.Channel, "_create_client", counting)
    return built


def publish(app: Celery) -> None:
    try:
        for n in range(PUBLISHES):
            app.send_task("fastpathBrokerProbe", args=(n,), queue=QUEUE)
    finally:
        app.close()


def test_the_override_has_the_signature_of_the_method_it_replaces():
    ours = inspect.signature(fastpath_broker.Channel.conn_or_acquire).parameters
    kombus = inspect.signature(kombu_redis.Channel.conn_or_acquire).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in kombus.values()
    ]


def test_the_override_still_hooks_kombus_publish(broker_url, clients_built, monkeypatch):
    acquired: list[Any] = []
    override = fastpath_broker.Channel.conn_or_acquire

    def counting(self: Any, client: Any = None) -> Any:
        acquired.append(client)
        return override(self, client)

    monkeypatch.setattr(fastpath_broker.Channel, "conn_or_acquire", counting)
    app = make_celery(Settings(redis_url=broker_url, celery_broker_url=broker_url))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, fastpath_broker.Transport)
    publish(app)

    assert redis.Redis.from_url(broker_url).llen(QUEUE) == PUBLISHES
    assert acquired.count(None) >= PUBLISHES, "kombu no longer publishes through the override"
    assert clients_built.count(False) == 1, "one client for every publish of the channel"


def test_kombu_still_builds_a_client_per_publish(broker_url, clients_built):
    """What the override is for. If this fails, kombu reuses its publishing client itself
    and workers/fastpath_broker.py can go."""
    off = Settings(redis_url=broker_url, celery_broker_url=broker_url, fast_paths=False)
    publish(make_celery(off))

    assert redis.Redis.from_url(broker_url).llen(QUEUE) == PUBLISHES
    assert clients_built.count(False) >= PUBLISHES
