"""Fast path: the hot Lua scripts run on a Redis connection of the calling thread's own.

What it shortcuts: redis-py's call path for a registered script. Through the client, every
script call also checks a connection out of the pool and back in (locks, a liveness read,
fork checks) and goes through the retry wrapper and the command dispatch; a cart event's
``record_render`` and a sync job's lease and result make one script call each, so that is
a real share of their cost. Here each thread (each gunicorn thread, each Celery child)
sends the ``EVALSHA`` on a connection of its own (`ThreadConnections`), packed by hiredis in
one C call (redis-py's packer wraps that same call in a split of the command name and two
copies of the arguments).

Anything unusual goes to the registered script through the client, which behaves as
always: the script not loaded yet (``NOSCRIPT``: it loads it), and a dropped or timed-out
connection (it reconnects and retries under the client's retry policy; this connection is
closed and reopened on the next call). A script's own error is raised as is.

What it copies: what redis-py does to send one command on one connection, from its pool's
settings: ``pool.connection_class(**pool.connection_kwargs)``, ``send_packed_command``,
``read_response``, and ``NoScriptError`` for a script Redis does not have.

Relies on: redis 8.1.0 and hiredis 3.5.0 as installed (pyproject: ``redis>=5.2,<9``,
``hiredis>=3,<4``): those connection and pool attributes, and ``hiredis.pack_command``
packing a command as redis-py's own packer does.

Guarded by: ``tests/integration/test_fastpath_scripts.py`` on a real redis-server
(``test_a_pinned_call_sends_and_answers_what_the_client_does`` holds the packed command and
the reply to redis-py's own; the others hold the pool, NOSCRIPT, dropped connections, forks
and threads to what the client would do).

Off (``KUSTOM_FAST_PATHS=off``): `script_pinning` hands each script back as redis-py
registered it (``register_script``: through the client and its pool).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import hiredis
import redis


class ThreadConnections:
    """One Redis connection per thread (and per process: re-made after a fork), opened from
    the client's connection settings but outside its pool: never checked in or out, and not
    counted against the pool's ``max_connections``."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()

    def get(self) -> Any:
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:  # a new thread, or a forked child
            pool = self._pool
            local.connection, local.pid = pool.connection_class(**pool.connection_kwargs), pid
        return local.connection


class PinnedScript:
    """A registered Lua script run on the calling thread's own connection (see above)."""

    def __init__(self, script: Any, connections: ThreadConnections) -> None:
        self._script = script
        self._sha: str = script.sha
        self._connections = connections

    def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        connection = self._connections.get()
        try:
            connection.send_packed_command(
                [hiredis.pack_command(("EVALSHA", self._sha, len(keys), *keys, *args))],
                check_health=False,
            )
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            pass
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            connection.disconnect()
        return self._script(keys=keys, args=args)


def script_pinning(client: redis.Redis, *, enabled: bool) -> Callable[[Any], Any]:
    """What runs a registered script of ``client``: a `PinnedScript` on each thread's own
    connection (one set of connections for every script pinned so), or, when ``enabled``
    is false (KUSTOM_FAST_PATHS=off), the registered script itself. Either is called with
    ``keys=`` and ``args=``."""
    if not enabled:
        return lambda script: script
    connections = ThreadConnections(client)
    return lambda script: PinnedScript(script, connections)


__all__ = ["PinnedScript", "ThreadConnections", "script_pinning"]
