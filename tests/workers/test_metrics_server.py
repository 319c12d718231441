"""The worker's and beat's HTTP endpoints, on a real loopback socket."""

from __future__ import annotations

import time

import requests

from harness.redis_server import free_port
from workers.metrics_server import BrokerProbe, MetricsServer, broker_queue_lists


def serve(healthy) -> MetricsServer:
    render = lambda: (b"kustom_up 1\n", "text/plain; version=0.0.4")  # noqa: E731
    return MetricsServer("127.0.0.1", 0, render, healthy).start()


def test_healthz_answers_503_in_the_error_shape_when_the_broker_is_away():
    server = serve(BrokerProbe(f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens
    try:
        started = time.monotonic()
        response = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        assert time.monotonic() - started < 5  # bounded: 1 s connect timeout
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "broker_unavailable"
    finally:
        server.stop()


def test_metrics_and_unknown_paths():
    server = serve(lambda: True)
    try:
        base = f"http://127.0.0.1:{server.port}"
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert (metrics.status_code, metrics.text) == (200, "kustom_up 1\n")
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        missing = requests.get(f"{base}/other", timeout=5)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    finally:
        server.stop()


def test_the_queue_depth_counts_every_priority_list_of_kombus_redis_transport():
    from kombu.transport.redis import Channel

    lists = broker_queue_lists()
    assert set(lists) == {"kustom.sync", "kustom.orders"}
    assert lists["kustom.sync"][0] == "kustom.sync"
    assert f"kustom.sync{Channel.sep}9" in lists["kustom.sync"]
