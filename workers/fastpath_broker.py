"""Fast path: kombu's Redis transport with one reused Redis client per channel.

What it shortcuts: kombu's Redis channel builds a new ``redis.Redis`` for every published
message (its ``conn_or_acquire`` without a client), and that constructor is a large share of
what enqueueing a task costs a web request. A ``redis.Redis`` is thread-safe over its
connection pool, so one per channel serves every publish.

What it copies: ``kombu.transport.redis.Channel.conn_or_acquire(client=None)``, a context
manager that yields the given client, or a client of the channel's (``_create_client``).

Relies on: kombu 5.7.0 as installed (pyproject: ``kombu>=5.7,<5.8``, for workers/broker.py)
and redis 8.1.0 (pyproject: ``redis>=6.4,<9``, what kombu 5.7 requires): that kombu's
channel publishes through ``conn_or_acquire()`` and builds its clients with
``_create_client()``.

Guarded by: ``tests/integration/test_fastpath_broker.py``
(``test_the_override_still_hooks_kombus_publish`` publishes through kombu on a real Redis
and fails if the override is no longer on kombu's publish path).

Built on the transport that rides out a Redis restart (workers/broker.py), which is what
``KUSTOM_FAST_PATHS=off`` gets (`workers.celery_app.transport_for`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workers import broker


class Channel(broker.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        if self._shared_client is None:
            self._shared_client = self._create_client()
        yield self._shared_client

    def close(self) -> None:
        self._shared_client = None
        super().close()


class Transport(broker.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
