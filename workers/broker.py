"""The broker transport: kombu's Redis transport, made to ride out a Redis restart.

What goes wrong without it (kombu 5.7.0, reproduced in tests/workers/test_broker.py on a
real redis-server): when Redis goes away while the worker waits in BRPOP and holds
unacknowledged messages, Celery collects the broken connection. kombu's
``Channel.close()`` first reads the pending BRPOP reply and lets the connection error
escape, so that channel is left open, its messages not restored; ``Connection.collect()``
then sets the transport's ``client`` to None. The next ``close()`` of that channel (Celery
closes it again when it restarts its consumer) restores the unacknowledged messages
through a new pool, whose parameters kombu reads from that ``client``:
``restore_unacked`` → ``conn_or_acquire`` → ``pool`` → ``_connparams`` →
``AttributeError("'NoneType' object has no attribute 'hostname'")``, which Celery reports
as an unrecoverable error, and the worker exits 1. Had the restore run while Redis was
down, it would have failed too, and the messages would have stayed in kombu's ``unacked``
hash until the visibility timeout (15 min by default) made them visible again.

What this transport changes, each in one override:

- ``close()`` reads a pending BRPOP reply, but a connection error there (the socket is
  gone, so is the reply) does not stop the close.
- A channel keeps the connection parameters it was opened with, so a close, an
  acknowledgement or a restore that comes after the transport was collected reaches Redis
  (once it is back) instead of raising AttributeError.
- Deleting an auto-delete fanout binding while closing, with Redis down, is skipped.
- Restoring unacknowledged messages while Redis is down does not fail the close: the
  delivery tags are kept in this process, and the next channel opened here (the worker
  reconnecting) puts them back on their queues at once. A tag acknowledged meanwhile (its
  task finished and its ack reached Redis) is no longer in kombu's ``unacked`` hash and is
  not restored. A task whose message is restored while it still runs may run twice; every
  task is idempotent (workers/celery_app.py), which is what kombu's own restore at close
  relies on too.

Relies on kombu 5.7.x's Redis channel (pyproject: ``kombu>=5.7,<5.8``): ``_in_poll``,
``_brpop_read``, ``_connparams``, ``_closing``, ``QoS.restore_unacked`` and
``QoS.restore_by_tag``. Guarded by tests/workers/test_broker.py (real redis-server).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from kustom_app.logs import event_log

log = event_log(__name__)


class _LeftBehind:
    """Delivery tags whose restore met a Redis outage, per process, until a channel of
    this process can restore them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: list[str] = []

    def keep(self, tags: list[str]) -> None:
        with self._lock:
            self._tags.extend(tag for tag in tags if tag not in self._tags)

    def take(self) -> list[str]:
        with self._lock:
            tags, self._tags = self._tags, []
            return tags

    def __len__(self) -> int:
        with self._lock:
            return len(self._tags)


LEFT_BEHIND = _LeftBehind()

# Who holds which message, so that the messages of a worker that died (SIGKILL, a lost
# machine) go back on their queues in seconds, not after the visibility timeout.
CONSUMERS_KEY = "kustom:broker:consumers"  # sorted set: consumer id -> last seen (epoch s)
HELD_KEY = "kustom:broker:held:{}"  # set per consumer: the delivery tags it holds
# A consumer refreshes its entry on every delivery and every restore sweep (every
# ``unacked_restore_interval`` seconds, workers/celery_app.py); unseen this long, it is dead.
DEAD_AFTER_SECONDS = 20.0

_consumer: tuple[int, str] | None = None


def consumer_id() -> str:
    """This process's consumer id (a forked child gets its own)."""
    global _consumer
    if _consumer is None or _consumer[0] != os.getpid():
        _consumer = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return _consumer[1]


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        super().append(message, delivery_tag)
        me = consumer_id()
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.sadd(HELD_KEY.format(me), delivery_tag)
            pipe.zadd(CONSUMERS_KEY, {me: time.time()})
            pipe.execute()

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        pipe = super()._remove_from_indices(delivery_tag, pipe)
        return pipe.srem(HELD_KEY.format(consumer_id()), delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        super().restore_visible(start, num, interval)
        self.restore_from_dead_consumers()

    def restore_from_dead_consumers(self) -> int:
        """Put back on their queues the messages of every consumer unseen for
        `DEAD_AFTER_SECONDS`; the one worker whose ZREM takes a dead consumer restores
        it. A message acknowledged meanwhile is not in kombu's unacked hash and stays
        done. Returns how many messages went back."""
        now = time.time()
        restored = 0
        with self.channel.conn_or_acquire() as client:
            client.zadd(CONSUMERS_KEY, {consumer_id(): now})
            for raw in client.zrangebyscore(CONSUMERS_KEY, 0, now - DEAD_AFTER_SECONDS):
                dead = bytes_to_str(raw)
                if not client.zrem(CONSUMERS_KEY, dead):
                    continue  # another worker took it
                held = HELD_KEY.format(dead)
                tags = [bytes_to_str(tag) for tag in client.smembers(held)]
                for tag in tags:
                    self.restore_by_tag(tag, client)
                client.delete(held)
                restored += len(tags)
                log.warning(
                    "kustom.broker.restored_from_dead_consumer", consumer=dead, messages=len(tags)
                )
        return restored

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except self.channel.connection_errors as e:
            tags = list(self._delivered)
            self._delivered.clear()
            LEFT_BEHIND.keep(tags)
            log.warning(  # restored when the broker is back
                "kustom.broker.restore_deferred", messages=len(tags), error=type(e).__name__
            )


class RidesOutRestarts:
    """The overrides (see the module docstring), for kombu's Redis and Sentinel channels."""

    QoS = QoS
    _remembered_connparams: dict[bool, dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._remembered_connparams = {}
        super().__init__(*args, **kwargs)  # connects (PING), or raises
        self._connparams(asynchronous=False)  # remembered, for a pool made after collect
        self._restore_left_behind()

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection  # type: ignore[attr-defined]
        if transport is not None and transport.client is not None:
            params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
            self._remembered_connparams[asynchronous] = dict(params)
            return params
        remembered = self._remembered_connparams.get(asynchronous)
        if remembered is None:
            raise kombu_redis.redis.ConnectionError("the broker connection is closed")
        return dict(remembered)

    def close(self) -> None:
        if self._in_poll:  # type: ignore[attr-defined]
            try:
                self._brpop_read()  # type: ignore[attr-defined]
            except Empty:
                pass
            except self.connection_errors as e:  # type: ignore[attr-defined]
                log.info("kustom.broker.brpop_lost", error=type(e).__name__)
        super().close()  # type: ignore[misc]

    def queue_delete(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        if not self._closing:  # type: ignore[attr-defined]
            return super().queue_delete(queue, *args, **kwargs)  # type: ignore[misc]
        try:
            return super().queue_delete(queue, *args, **kwargs)  # type: ignore[misc]
        except self.connection_errors as e:  # type: ignore[attr-defined]
            log.info("kustom.broker.binding_left", queue=queue, error=type(e).__name__)
            return None

    def _restore_left_behind(self) -> None:
        tags = LEFT_BEHIND.take()
        if not tags:
            return
        qos = self.qos  # type: ignore[attr-defined]
        done = 0
        try:
            with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
                for tag in tags:
                    qos.restore_by_tag(tag, client=client)
                    done += 1
        except self.connection_errors as e:  # type: ignore[attr-defined]
            LEFT_BEHIND.keep(tags[done:])
            log.warning(
                "kustom.broker.restore_deferred", messages=len(tags) - done, error=type(e).__name__
            )
        if done:
            log.warning("kustom.broker.restored_after_reconnect", messages=done)


class Channel(RidesOutRestarts, kombu_redis.Channel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(RidesOutRestarts, kombu_redis.SentinelChannel):
    pass


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


TRANSPORT = f"{__name__}:Transport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"
