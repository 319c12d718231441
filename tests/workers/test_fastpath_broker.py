"""Which kombu transport the broker URL gets (the override's guard on a real Redis is in
tests/integration/test_fastpath_broker.py)."""

from __future__ import annotations

from kustom_app.settings import Settings
from workers import broker, fastpath_broker
from workers.celery_app import make_celery


def transport_of(settings: Settings) -> type:
    with make_celery(settings).connection_for_write() as connection:
        return type(connection.transport)


def test_plain_redis_urls_get_the_override_unless_the_fast_paths_are_off():
    for url in ("redis://10.0.0.5:6379/0", "rediss://10.0.0.5:6380/0"):
        assert transport_of(Settings(celery_broker_url=url)) is fastpath_broker.Transport
        off = Settings(celery_broker_url=url, fast_paths=False)
        assert transport_of(off) is broker.Transport  # rides out restarts, no shared client


def test_sentinel_gets_kombus_sentinel_transport_riding_out_restarts():
    url = "sentinel://10.0.0.7:26379;sentinel://10.0.0.8:26379/0?master_name=main"
    assert transport_of(Settings(redis_url=url, celery_broker_url=url)) is (
        broker.SentinelTransport
    )
