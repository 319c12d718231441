"""The broker transport through a Redis restart (workers/broker.py), on a real redis-server.

Each test drives kombu the way Celery's consumer does when the broker connection breaks
(``Consumer.on_connection_error_after_connected``): collect the connection, close it, and
later close the consumer's channel again while restarting the consumer.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Producer, Queue
from kombu.exceptions import OperationalError

from harness.redis_server import RedisServer
from workers import broker
from workers.fastpath_broker import TRANSPORT as FAST_TRANSPORT

pytestmark = pytest.mark.integration

KOMBU_OWN = None  # kombu's Redis transport, for the record of what it does


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, options={"appendfsync": "always"}) as server:
        yield server


class HeldMessages:
    """Two queues, one message delivered (and not acknowledged) from each, on a channel
    of its own, with a BRPOP pending: a worker busy with two tasks."""

    def __init__(self, url: str, transport: str | None) -> None:
        self.connection = Connection(url, transport=transport)
        self.channels: list[Any] = []
        self.delivered: list[Any] = []
        for name in ("q-a", "q-b"):
            channel = self.connection.channel()
            queue = Queue(name, routing_key=name)
            Producer(channel).publish({"job": name}, routing_key=name, declare=[queue])
            Consumer(channel, [queue], callbacks=[self._got]).consume()
            self.channels.append(channel)
        self.connection.drain_events(timeout=5)
        self.connection.drain_events(timeout=5)
        assert len(self.delivered) == 2
        for channel in self.channels:
            if not channel._in_poll:
                channel._brpop_start()

    def _got(self, body: Any, message: Any) -> None:
        self.delivered.append(message)

    def lose_the_connection(self) -> None:
        """What Celery does once the broker connection broke."""
        with contextlib.suppress(Exception):
            self.connection.collect(socket_timeout=1.0)
        with contextlib.suppress(Exception):
            self.connection.close()

    def restart_the_consumer(self) -> None:
        """Celery closes the consumer's channels again as it restarts (and later stops)
        its consumer, each time ignoring connection errors only (kombu's
        ``ignore_errors``); anything else is its "Unrecoverable error"."""
        errors = self.connection.connection_errors + self.connection.channel_errors
        for _ in range(2):
            for channel in self.channels:
                with contextlib.suppress(*errors):
                    channel.close()

    def forget(self) -> None:
        """Drop kombu's restore-at-exit of channels left open (it would only log that it
        cannot reach the server, once pytest is gone)."""
        for channel in self.channels:
            if channel._qos is not None:
                channel._qos._on_collect.cancel()


def waiting_in(client: redis.Redis, queue: str) -> list[Any]:
    """The bodies of the messages waiting in ``queue``."""
    return [
        json.loads(base64.b64decode(json.loads(raw)["body"])) for raw in client.lrange(queue, 0, -1)
    ]


def test_kombus_own_transport_raises_the_attribute_error_the_worker_died_of(server):
    # The record of the bug this transport works around: if this stops raising, kombu
    # fixed it, and workers/broker.py can go.
    held = HeldMessages(server.url, KOMBU_OWN)
    server.kill()
    held.lose_the_connection()
    with pytest.raises(AttributeError, match="hostname"):
        held.restart_the_consumer()
    held.forget()


@pytest.mark.parametrize("transport", [broker.TRANSPORT, FAST_TRANSPORT])
def test_held_messages_are_back_on_their_queues_as_soon_as_the_broker_is_back(server, transport):
    held = HeldMessages(server.url, transport)
    client = redis.Redis.from_url(server.url)
    assert client.hlen("unacked") == 2
    server.kill()
    held.lose_the_connection()
    held.restart_the_consumer()  # no AttributeError; the restore waits for Redis
    assert len(broker.LEFT_BEHIND) == 2

    server.start()  # same port and data directory: the AOF has the unacked hash
    with Connection(server.url, transport=transport) as reconnected:
        reconnected.ensure_connection()  # the worker's consumer, reconnected
        assert len(broker.LEFT_BEHIND) == 0
        # Not in 900 s (the visibility timeout): now, and only once each.
        assert client.hlen("unacked") == 0
        assert waiting_in(client, "q-a") == [{"job": "q-a"}]
        assert waiting_in(client, "q-b") == [{"job": "q-b"}]


def test_a_message_acknowledged_during_the_outage_is_not_restored(server):
    held = HeldMessages(server.url, broker.TRANSPORT)
    client = redis.Redis.from_url(server.url)
    server.kill()
    held.lose_the_connection()
    held.restart_the_consumer()
    server.start()
    # One task finished after Redis came back: its late ack reaches Redis through the
    # old channel (kombu would need the collected transport's client for that).
    done = next(m for m in held.delivered if m.payload == {"job": "q-a"})
    done.ack()
    with Connection(server.url, transport=broker.TRANSPORT) as reconnected:
        reconnected.ensure_connection()
    assert waiting_in(client, "q-a") == []
    assert waiting_in(client, "q-b") == [{"job": "q-b"}]
    assert client.hlen("unacked") == 0


def test_a_restore_that_meets_the_outage_again_is_kept_for_the_next_channel(server):
    held = HeldMessages(server.url, broker.TRANSPORT)
    server.kill()
    held.lose_the_connection()
    held.restart_the_consumer()
    with pytest.raises(OperationalError):  # the worker's consumer retries
        Connection(server.url, transport=broker.TRANSPORT).ensure_connection(max_retries=1)
    assert len(broker.LEFT_BEHIND) == 2
    server.start()
    with Connection(server.url, transport=broker.TRANSPORT) as reconnected:
        reconnected.ensure_connection()
    assert len(broker.LEFT_BEHIND) == 0
