"""GET /carts/<cartId>/kustom/events: the sync status as Server-Sent Events.

Most tests stream over a real socket from a threaded server against a real redis-server, so
pub/sub, disconnects and concurrency behave as in production; the last one runs the
production worker class (gunicorn gthread) itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
import redis
import requests

from harness.redis_server import RedisServer, free_port
from harness.waiting import wait_until
from kustom_app.render import load_render
from kustom_app.settings import Settings
from kustom_app.state import CartStore
from kustom_app.sync import ingest_render
from playground.server import ServerThread
from tests.conftest import COMMERCE_SECRET, RecordingQueue, make_render
from tests.domain import cart_store

ROOT = Path(__file__).resolve().parents[2]
SHOP = "http://shop.test"
SLOTS = "kustom.events.slots"


class EventStream:
    """Reads one SSE response on a thread: events (parsed JSON), fields and comments.

    Built on http.client so the test keeps the socket and can hang up like a closed browser
    tab (requests detaches the socket of a close-delimited response).
    """

    def __init__(self, url: str, *, origin: str | None = None) -> None:
        parts = urlsplit(url)
        headers = {"Accept": "text/event-stream"}
        if origin:
            headers["Origin"] = origin
        self.connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        self.connection.connect()
        self.sock = self.connection.sock
        self.connection.request("GET", parts.path, headers=headers)
        self.response = self.connection.getresponse()
        self.headers = self.response.headers
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.fields: list[tuple[str, str]] = []  # (name, value) of every field line
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        data: list[str] = []
        try:
            while raw := self.response.readline():
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data:
                        self.events.put(json.loads("\n".join(data)))
                        data = []
                elif line.startswith(":"):
                    self.comments.append(line)
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    self.fields.append((name, value))
                    if name == "data":
                        data.append(value)
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # hung up: http.client fails in several ways when its socket goes away
        finally:
            self.ended.set()

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        event = self.events.get(timeout=timeout)
        self.received.append(event)
        return event

    def quiet_for(self, seconds: float) -> bool:
        try:
            self.received.append(self.events.get(timeout=seconds))
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


def _settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        celery_broker_url=redis_url,
        kustom_api_url="https://kustom.test",
        kustom_username="merchant",
        kustom_password="secret-password",
        public_base_url="https://shop-kustom.test",
        commerce_webhook_secret=COMMERCE_SECRET,
        callback_secret="test-callback-secret",
        cors_allowed_origins=(SHOP,),
    )


@pytest.fixture
def serve(redis_server: RedisServer) -> Iterator[Callable[..., tuple[str, Any]]]:
    """Start the web app behind a real threaded server; returns (url, app)."""
    from webhooks.app import create_app

    servers: list[ServerThread] = []

    def start(**settings: Any) -> tuple[str, Any]:
        changes = {"events_heartbeat_seconds": 15.0, **settings}
        app = create_app(
            {
                "SETTINGS": dataclasses.replace(_settings(redis_server.url), **changes),
                "TASK_QUEUE": RecordingQueue(),
            }
        )
        server = ServerThread(app, name="events-web").start()
        servers.append(server)
        return server.url, app

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def streams() -> Iterator[Callable[..., EventStream]]:
    opened: list[EventStream] = []

    def open_stream(url: str, **kwargs: Any) -> EventStream:
        stream = EventStream(url, **kwargs)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def render(store: CartStore, cart_id: str, version: int, quantity: int) -> str:
    """Store a render (as the commerce event does) and return its payload hash."""
    _, prepared = ingest_render(store, load_render(make_render(cart_id, version, quantity)))
    return prepared.hash


def finish_sync(store: CartStore, cart_id: str) -> None:
    """What a sync job does: take the lease, 'push' to Kustom, record the landed hash."""
    step = store.begin_sync(cart_id, "job-1")
    assert step.action == "push", step
    done = store.finish_sync(cart_id, "job-1", step.hash or "", step.order_id or "", step.payload)
    assert done.action == "done", done


def status(store: CartStore, cart_id: str) -> dict[str, Any]:
    state = store.load(cart_id)
    assert state is not None
    return state.status()


# ---------------------------------------------------------------------------------- tests


def test_two_subscribers_see_the_same_transitions_in_order(
    serve, streams, redis_client: redis.Redis
) -> None:
    url, app = serve()
    store = app.extensions["kustom"].store
    cart = "cart-sse-1"
    first_hash = render(store, cart, 1, 1)
    events_url = f"{url}/carts/{cart}/kustom/events"
    a, b = streams(events_url), streams(events_url)
    expected = [status(store, cart)]
    assert expected[0]["pendingHash"] == expected[0]["syncHash"] == first_hash
    assert a.next() == b.next() == expected[0]

    def step(change: Callable[[], object]) -> None:
        change()
        now = status(store, cart)
        expected.append(now)
        assert a.next() == now
        assert b.next() == now

    step(lambda: store.record_order(cart, "order-1", first_hash, {"order_amount": 1}))
    step(lambda: render(store, cart, 2, 3))  # the shopper changed the cart: syncing
    assert expected[-1]["syncing"] is True
    # A notification that changes nothing is not passed on.
    redis_client.publish(store.events_channel(cart), cart)
    step(lambda: finish_sync(store, cart))  # Kustom has it: resume
    assert expected[-1]["syncing"] is False
    step(lambda: render(store, cart, 3, 4))
    step(lambda: finish_sync(store, cart))
    step(lambda: store.claim_completion(cart, "t1", "order-1", "confirm"))
    step(lambda: store.finish_completion(cart, "order-1", "SO-1", "confirm"))
    assert expected[-1]["cartState"] == "completed"

    assert a.quiet_for(0.3) and b.quiet_for(0.3)
    assert a.received == b.received == expected
    assert [s["syncing"] for s in a.received] == [
        False,
        False,
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    assert [s["cartState"] for s in a.received][-3:] == ["open", "completing", "completed"]
    assert all(x != y for x, y in zip(a.received, a.received[1:], strict=False))


def test_subscriber_connecting_mid_sync_gets_the_current_state_first(serve, streams) -> None:
    url, app = serve()
    store = app.extensions["kustom"].store
    cart = "cart-sse-2"
    first = render(store, cart, 1, 1)
    store.record_order(cart, "order-2", first, {"order_amount": 1})
    pending = render(store, cart, 2, 5)

    late = streams(f"{url}/carts/{cart}/kustom/events")
    now = late.next()
    assert now == {
        "cartId": cart,
        "kustomOrderId": "order-2",
        "pendingHash": pending,
        "syncHash": first,
        "syncing": True,
        "cartState": "open",
    }
    finish_sync(store, cart)
    resumed = late.next()
    assert resumed["syncing"] is False and resumed["syncHash"] == pending


def test_unknown_cart_answers_404_with_the_error_body(serve) -> None:
    url, _ = serve()
    response = requests.get(
        f"{url}/carts/nobody/kustom/events", headers={"Origin": SHOP}, timeout=5
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "cart_not_found"
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    bad = requests.get(f"{url}/carts/{'x' * 300}/kustom/events", timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cart_id"


def test_stream_headers_heartbeats_and_retry_hint(serve, streams) -> None:
    url, app = serve(events_heartbeat_seconds=0.2, events_retry_ms=1500)
    store = app.extensions["kustom"].store
    render(store, "cart-sse-3", 1, 1)
    stream = streams(f"{url}/carts/cart-sse-3/kustom/events", origin=SHOP)
    headers = stream.headers
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"].startswith("no-cache")
    assert headers["Access-Control-Allow-Origin"] == SHOP
    stream.next()
    wait_until(lambda: len(stream.comments) >= 2, timeout=3, interval=0.02)
    assert set(stream.comments) == {": keepalive"}
    assert stream.fields[0] == ("retry", "1500")


def test_stream_is_released_when_the_client_goes_away(
    serve, streams, redis_client: redis.Redis
) -> None:
    url, app = serve()  # heartbeat 15 s: the departure is noticed by peeking, not writing
    store = app.extensions["kustom"].store
    render(store, "cart-sse-4", 1, 1)
    channel = store.events_channel("cart-sse-4")
    stream = streams(f"{url}/carts/cart-sse-4/kustom/events")
    stream.next()
    assert app.extensions[SLOTS].open == 1
    assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 1)]
    stream.close()
    wait_until(lambda: app.extensions[SLOTS].open == 0, timeout=4, interval=0.02)
    wait_until(
        lambda: redis_client.pubsub_numsub(channel) == [(channel.encode(), 0)],
        timeout=2,
        interval=0.02,
    )


def test_streams_over_the_limit_poll_instead_of_taking_threads(serve, streams) -> None:
    url, app = serve(events_max_streams=1, events_busy_retry_ms=4000)
    store = app.extensions["kustom"].store
    render(store, "cart-sse-5", 1, 1)
    events_url = f"{url}/carts/cart-sse-5/kustom/events"
    held = streams(events_url)
    held.next()
    over = streams(events_url)
    assert over.next()["cartId"] == "cart-sse-5"  # still the current status...
    assert over.ended.wait(3)  # ...then closed, so the EventSource retries after 4 s
    assert [name for name, _ in over.fields] == ["retry", "data"]
    assert over.fields[0] == ("retry", "4000")
    assert app.extensions[SLOTS].open == 1
    assert requests.get(f"{url}/carts/cart-sse-5/kustom/status", timeout=2).status_code == 200


def test_redis_outage_answers_503_and_frees_the_slot() -> None:
    from webhooks.app import create_app

    app = create_app(
        {
            "SETTINGS": _settings(f"redis://127.0.0.1:{free_port()}/0"),  # nothing listens
            "TASK_QUEUE": RecordingQueue(),
        }
    )
    response = app.test_client().get("/carts/cart-down/kustom/events")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "redis_unavailable"
    assert app.extensions[SLOTS].open == 0


def test_sdk_module_is_served_with_cors_for_allowed_origins(serve) -> None:
    url, _ = serve()
    allowed = requests.get(f"{url}/static/kustom-checkout.js", headers={"Origin": SHOP}, timeout=5)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in allowed.headers["Vary"]
    assert "export function mountKustomCheckout" in allowed.text
    assert "export function confirmKustomCheckout" in allowed.text
    other = requests.get(
        f"{url}/static/kustom-checkout.js", headers={"Origin": "http://evil.test"}, timeout=5
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_stream_with_fakeredis_sends_status_then_changes(settings: Settings) -> None:
    """The same behaviour on fakeredis's pub/sub, through the Flask test client."""
    from webhooks.app import create_app

    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    app = create_app({"SETTINGS": settings, "REDIS": client, "TASK_QUEUE": RecordingQueue()})
    store = app.extensions["kustom"].store
    first = render(store, "cart-fake", 1, 1)
    response = app.test_client().get("/carts/cart-fake/kustom/events", buffered=False)
    body: Iterator[bytes] = iter(response.response)  # type: ignore[arg-type]
    opening = next(body).decode()
    assert opening.startswith("retry: 3000\ndata: ")
    assert json.loads(opening.split("data: ", 1)[1])["pendingHash"] == first
    store.record_order("cart-fake", "order-f", first, {"order_amount": 1})
    event = next(body).decode()
    assert json.loads(event.removeprefix("data: "))["kustomOrderId"] == "order-f"
    response.close()
    assert app.extensions[SLOTS].open == 0


GUNICORN = Path(sys.executable).with_name("gunicorn")


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed next to python")
def test_gunicorn_gthread_serves_streams_beside_other_requests(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """The Procfile's worker class: open streams leave threads for other requests."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "CORS_ALLOWED_ORIGINS": SHOP,
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
    }
    process = subprocess.Popen(
        [
            str(GUNICORN), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
            "--workers", "1", "--threads", "4", "--timeout", "30",
            "webhooks.app:create_app()",
        ],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    opened: list[EventStream] = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), timeout=20, interval=0.02)
        store = cart_store(redis_client)
        render(store, "cart-gthread", 1, 1)
        for _ in range(2):
            opened.append(EventStream(f"{url}/carts/cart-gthread/kustom/events"))
            opened[-1].next()
        started = time.monotonic()
        for _ in range(5):
            assert requests.get(f"{url}/carts/cart-gthread/kustom/status", timeout=3).ok
        assert time.monotonic() - started < 2
        pending = render(store, "cart-gthread", 2, 2)
        assert all(s.next()["pendingHash"] == pending for s in opened)
        for s in opened:  # leaving frees the threads: two more streams fit again
            s.close()
        time.sleep(1.5)
        for _ in range(2):
            opened.append(EventStream(f"{url}/carts/cart-gthread/kustom/events"))
            opened[-1].next()
        assert requests.get(f"{url}/healthz", timeout=3).ok
    finally:
        for s in opened:
            s.close()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        if process.stderr:
            process.stderr.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
