"""Server-Sent Events of a cart's sync status (CONTRACT section 3).

``GET /carts/<cartId>/kustom/events`` answers ``text/event-stream``: one unnamed event
(``onmessage`` in an EventSource) whose data is the status JSON of ``/kustom/status`` at
connect, then one on every change of ``pendingHash``, ``syncHash`` or ``cartState``. Every
state transition in Redis is a Lua script that PUBLISHes the cart id on
``{prefix}:events:{cartId}``, so a change made by any web or worker process reaches every
open stream at once. The storefront SDK suspends the Kustom iframe while ``syncing``.

Decisions, in the order a reader will wonder about them:

* **Unknown cart: 404** with the service's error body, as ``/kustom/status`` answers. An
  EventSource gives up on a non-200 answer instead of reconnecting forever to a cart that
  does not exist; the SDK opens the stream only after the checkout call stored the cart.
  A cart that expires while streamed ends its stream; the reconnect then gets the 404.
* **No change is lost**: the stream subscribes and waits for Redis's confirmation before it
  reads the state it sends first. A change after that read is published to a channel we
  already listen on.
* **Latest state, never a stale one**: a notification means "read the state again". The
  stream sends the state as it is when read, unless equal to the last one it sent, so a
  burst of changes may be coalesced into its final state, but every subscriber sees the
  states in the order they happened and always ends on the current one.
* **Heartbeats**: a ``: keepalive`` comment every ``events_heartbeat_seconds`` (15 s; the
  ``events_*`` values are `Settings`) keeps proxies from closing an idle stream.
* **A client that goes away** is noticed within a second: the stream peeks at the client's
  socket (gunicorn and werkzeug put it in the WSGI environ) between waits, and otherwise at
  the next write at the latest. Its thread and Redis connection are released then.
* **Bounded life**: after ``events_max_stream_seconds`` (5 min) the stream ends; the
  EventSource reconnects after the ``retry:`` delay and gets the current state first. That
  recycles threads held by forgotten tabs and spreads streams over restarted workers.

Worker class and thread count (see Procfile: ``gunicorn --worker-class gthread --threads
${WEB_THREADS:-16}``): an open stream occupies one thread, parked in ``select()`` on its
Redis connection, for as long as the shopper sits on the checkout page. gthread makes that
cheap and keeps the worker's heartbeat to the arbiter independent of request threads, so
long streams never trip ``--timeout``. The sync worker class would give a whole process to
one shopper; gevent/eventlet would need monkey-patching under redis-py, requests and the
Celery producer this app enqueues with. The price of gthread is that streams and ordinary
requests share ``WEB_THREADS`` per worker, so each process admits at most
``EVENTS_MAX_STREAMS`` (default 12, for 16 threads: four always stay free for the
checkout, confirm and callback requests that must not wait). A stream over that limit still
answers: the current status and a ``retry:`` hint, then it closes, so that EventSource
polls every ``events_busy_retry_ms`` (5 s) until a slot is free. Size it as
``WEB_THREADS - 4`` when changing the thread count; expect one stream per open checkout
page, per worker process.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Generator, Iterator
from typing import Any

import redis
from flask import Blueprint, Response, request

from kustom_app.logs import event_log
from kustom_app.state import CartStore
from webhooks import extension
from webhooks.errors import ApiError
from webhooks.extension import StreamSlots
from webhooks.storefront import _cors as storefront_cors
from webhooks.storefront import checked_cart_id

log = event_log(__name__)

bp = Blueprint("events", __name__)

SDK_PATH = "/static/kustom-checkout.js"
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
# How long one wait on Redis lasts: also how soon a departed client is noticed.
POLL_SECONDS = 1.0

# The same CORS rules as the storefront endpoints (CORS_ALLOWED_ORIGINS).
bp.after_request(storefront_cors)


@bp.after_app_request
def _sdk_cors(response: Response) -> Response:
    """The SDK is an ES module: a storefront on another origin may only import it with CORS."""
    if request.endpoint == "static" and request.path == SDK_PATH:
        response = storefront_cors(response)
        if "Origin" not in response.headers.get("Vary", ""):
            response.headers.add("Vary", "Origin")  # caches must not mix origins
    return response


def _status_json(status: dict[str, Any]) -> str:
    return json.dumps(status, separators=(",", ":"))


def _event(data: str, *, retry_ms: int | None = None) -> str:
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"{retry}data: {data}\n\n"


class ClientSocket:
    """Peeks at the shopper's connection to notice a departure without writing to it."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.sock: socket.socket | None = environ.get("gunicorn.socket") or environ.get(
            "werkzeug.socket"
        )

    def gone(self) -> bool:
        if self.sock is None:
            return False
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False  # open, nothing sent: the normal case
        except ValueError:
            self.sock = None  # a TLS socket cannot peek; rely on the next write instead
            return False
        except OSError:
            return True  # reset by the peer
        return data == b""  # EOF: the client closed its side


class StatusStream:
    """The body of one event stream; ``close()`` releases its slot and Redis connection.

    A class rather than a bare generator: the WSGI server calls ``close()`` even when the
    client left before the first byte, and a generator never started runs no ``finally``.
    """

    def __init__(
        self,
        store: CartStore,
        pubsub: redis.client.PubSub | None,
        cart_id: str,
        first: str,
        *,
        slots: StreamSlots | None,
        client: ClientSocket,
        heartbeat: float,
        max_seconds: float,
        retry_ms: int,
        only_first: bool = False,
    ) -> None:
        self.store = store
        self.pubsub = pubsub
        self.cart_id = cart_id
        self.first = first
        self.slots = slots
        self.client = client
        self.heartbeat = heartbeat
        self.max_seconds = max_seconds
        self.retry_ms = retry_ms
        self.only_first = only_first
        self._closed = False
        self._body = self._events()

    def __iter__(self) -> Iterator[str]:
        return self._body

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._body.close()
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                self.pubsub.close()
        if self.slots is not None:
            self.slots.give_back()
        log.info("kustom.events.closed", cart=self.cart_id)

    def _events(self) -> Generator[str, None, None]:
        yield _event(self.first, retry_ms=self.retry_ms)
        if self.only_first or self.pubsub is None:
            return
        last = self.first
        started = time.monotonic()
        next_beat = started + self.heartbeat
        try:
            while True:
                now = time.monotonic()
                if now - started >= self.max_seconds or self.client.gone():
                    return
                wait = max(0.0, min(POLL_SECONDS, next_beat - now))
                message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                if message is not None:
                    # Every queued notification means the same: read the state again.
                    while self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0):
                        pass
                    state = self.store.load(self.cart_id)
                    if state is None:
                        log.info("kustom.events.cart_gone", cart=self.cart_id)
                        return
                    current = _status_json(state.status())
                    if current != last:
                        last = current
                        next_beat = time.monotonic() + self.heartbeat
                        yield _event(current)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat
                    yield ": keepalive\n\n"
        except redis.RedisError as e:
            # The EventSource reconnects after `retry` and gets the current state first.
            log.warning("kustom.events.redis_error", cart=self.cart_id, error=e)


def _subscribe(client: redis.Redis, channel: str) -> redis.client.PubSub:
    """A pub/sub connection on ``channel``, returned once Redis confirmed the subscription."""
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(channel)
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is not None and message.get("type") == "subscribe":
                return pubsub
        raise redis.TimeoutError("no subscription confirmation from Redis")
    except BaseException:
        pubsub.close()
        raise


@bp.get("/carts/<cart_id>/kustom/events")
def events(cart_id: str) -> Response:
    checked_cart_id(cart_id)
    services = extension.services()
    settings = services.settings
    store = services.store
    slots = extension.stream_slots()
    streaming = slots.take()  # over the limit: the current status only, then close
    pubsub: redis.client.PubSub | None = None
    try:
        if streaming:
            pubsub = _subscribe(services.redis, store.events_channel(cart_id))
        state = store.load(cart_id)  # only now: every later change reaches `pubsub`
        if state is None:
            raise ApiError(404, "cart_not_found", f"Nothing is known about cart {cart_id}.")
    except BaseException:  # a RedisError answers 503 redis_unavailable, as everywhere
        if pubsub is not None:
            pubsub.close()
        if streaming:
            slots.give_back()
        raise
    if not streaming:
        log.warning("kustom.events.busy", cart=cart_id, open=slots.open)
    body = StatusStream(
        store,
        pubsub,
        cart_id,
        _status_json(state.status()),
        slots=slots if streaming else None,
        client=ClientSocket(request.environ),
        heartbeat=settings.events_heartbeat_seconds,
        max_seconds=settings.events_max_stream_seconds,
        retry_ms=settings.events_retry_ms if streaming else settings.events_busy_retry_ms,
        only_first=not streaming,
    )
    if streaming:
        log.info("kustom.events.opened", cart=cart_id, open=slots.open)
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return response
