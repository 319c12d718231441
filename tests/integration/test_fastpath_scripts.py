"""The hot-path scripts on each thread's own connection (kustom_app.fastpath_scripts).

On a real redis-server: what the shortcut skips (the pool, the retry wrapper, loading the
script) must still happen when it is needed, and what it sends and reads is what redis-py
would (the guard of a redis-py or hiredis upgrade). With KUSTOM_FAST_PATHS=off the scripts
run through the client.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest
import redis

from harness.redis_server import RedisServer
from kustom_app.fastpath_render import fast_render_enabled, use_fast_render
from kustom_app.fastpath_scripts import PinnedScript, ThreadConnections
from kustom_app.services import Services
from kustom_app.settings import Settings
from kustom_app.state import CartStore
from tests.domain import cart_store

pytestmark = pytest.mark.integration


def _record(store: CartStore, cart_id: str, version: int) -> Any:
    return store.record_render(cart_id, version, {"cartId": cart_id}, f"h{version}", None)


def _clients(raw: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in raw.client_list() if c.get("name") == name]


@pytest.fixture
def raw(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


def test_one_connection_per_thread_outside_the_pool_limit(redis_server: RedisServer, raw) -> None:
    # A pool of one: six threads recording at once would exhaust it if the scripts took
    # their connections from it.
    client = redis.Redis.from_url(redis_server.url, max_connections=1, client_name="pinned-a")
    store = cart_store(client, key_prefix="pinned-a")
    assert _record(store, "cart-0", 1).accepted  # loads the script (through the pool)
    before = len(_clients(raw, "pinned-a"))
    errors: list[BaseException] = []
    # The threads stay alive until their connections are counted: a finished thread's
    # connection closes whenever the garbage collector gets to it, which made the count race.
    done, counted = threading.Barrier(7, timeout=60), threading.Event()

    def work(index: int) -> None:
        try:
            for version in range(2, 22):
                assert _record(store, f"cart-{index}", version).accepted
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            done.wait()
            counted.wait(60)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 7)]
    for thread in threads:
        thread.start()
    done.wait()
    connections = len(_clients(raw, "pinned-a"))
    counted.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert connections == before + 6  # one each, reused for 20 calls
    assert raw.hget("pinned-a:cart:cart-5", "version") == b"21"


def test_a_flushed_script_is_loaded_again(redis_server: RedisServer, raw) -> None:
    store = cart_store(redis.Redis.from_url(redis_server.url), key_prefix="pinned-b")
    assert _record(store, "cart-1", 1).accepted
    raw.script_flush()
    outcome = _record(store, "cart-1", 2)  # NOSCRIPT: the client loads it and runs it
    assert outcome.accepted and outcome.pending_hash == "h2"
    assert _record(store, "cart-1", 3).pending_hash == "h3"


def test_a_dropped_connection_loses_no_call(redis_server: RedisServer, raw) -> None:
    client = redis.Redis.from_url(redis_server.url, client_name="pinned-c")
    store = cart_store(client, key_prefix="pinned-c")
    assert _record(store, "cart-1", 1).accepted
    for info in _clients(raw, "pinned-c"):
        raw.client_kill_filter(_id=info["id"])
    assert _record(store, "cart-1", 2).pending_hash == "h2"  # through the client, retried
    assert _record(store, "cart-1", 3).pending_hash == "h3"  # own connection, reopened
    assert raw.hget("pinned-c:cart:cart-1", "version") == b"3"


def test_a_script_error_is_raised_not_retried(redis_server: RedisServer, raw) -> None:
    store = cart_store(redis.Redis.from_url(redis_server.url), key_prefix="pinned-d")
    raw.set("pinned-d:cart:cart-1", "not a hash")  # the script's HGET fails on it
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _record(store, "cart-1", 1)
    raw.delete("pinned-d:cart:cart-1")
    assert _record(store, "cart-1", 1).accepted  # the connection is still usable


def _child(queue: Any) -> None:
    # The store and its thread's connection came from the parent: the child must not use
    # the parent's socket.
    try:
        queue.put(_record(_FORKED["store"], "cart-child", 1).pending_hash)
    except BaseException as e:  # sent to the parent
        queue.put(repr(e))


_FORKED: dict[str, CartStore] = {}


def test_a_forked_child_opens_its_own_connection(redis_server: RedisServer, raw) -> None:
    client = redis.Redis.from_url(redis_server.url, client_name="pinned-e")
    store = _FORKED["store"] = cart_store(client, key_prefix="pinned-e")
    assert _record(store, "cart-parent", 1).accepted
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == "h1"
    # The parent's connection was not disturbed by the child.
    assert _record(store, "cart-parent", 2).pending_hash == "h2"


def test_text_that_needs_care_arrives_byte_for_byte(redis_server: RedisServer, raw) -> None:
    # The command is packed by hiredis, not by redis-py's encoder: non-ASCII text, JSON
    # escapes, CR/LF (RESP's own separator) and large integers must reach the script as sent.
    store = cart_store(redis.Redis.from_url(redis_server.url), key_prefix="pinned-e")
    assert _record(store, "cart-0", 1).accepted  # loads the script: the next call is pinned
    render = {"cartId": "cart-ä", "note": 'Größe "XL"\r\n\\ 🛒', "big": 2**62}
    assert store.record_render("cart-ä", 1, render, "hä\r\n", None).pending_hash == "hä\r\n"
    stored = raw.hgetall("pinned-e:cart:cart-ä")
    assert stored[b"pending_hash"].decode() == "hä\r\n"
    assert store.load("cart-ä").render == render


ECHO = """
return {KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]),
        redis.status_reply('OK'), {1, {'nested', ''}}, false, 0}
"""
FAILING = "return redis.error_reply('KUSTOM refused: ' .. ARGV[1])"


def test_a_pinned_call_sends_and_answers_what_the_client_does(
    redis_server: RedisServer, raw
) -> None:
    """The guard of a redis-py or hiredis upgrade: the command packed by hiredis reaches
    Redis as redis-py's would, and the reply read off the bare connection is the one the
    client gives (types and all)."""
    client = redis.Redis.from_url(redis_server.url, client_name="pinned-f")
    connections = ThreadConnections(client)
    keys = ["pinned-f:ключ"]
    args = ['Größe "XL"\r\n\\ 🛒', 2**62, -7, 1.5, b"\x00\xffraw", "", "42"]
    echo = client.register_script(ECHO)
    by_client = echo(keys=keys, args=args)  # loads it: the pinned call is not a NOSCRIPT
    pinned = PinnedScript(echo, connections)
    assert pinned(keys, args) == by_client
    assert len(_clients(raw, "pinned-f")) == 2, "the pinned call had a connection of its own"
    assert by_client[:8] == [
        "pinned-f:ключ".encode(),
        'Größe "XL"\r\n\\ 🛒'.encode(),
        b"4611686018427387904",
        b"-7",
        b"1.5",
        b"\x00\xffraw",
        b"",
        42,
    ]

    failing = client.register_script(FAILING)
    with pytest.raises(redis.ResponseError) as by_client_error:
        failing(keys=[], args=["x"])
    with pytest.raises(redis.ResponseError) as pinned_error:
        PinnedScript(failing, connections)([], ["x"])
    assert str(pinned_error.value) == str(by_client_error.value) == "KUSTOM refused: x"


def test_with_the_fast_paths_off_the_scripts_go_through_the_clients_pool(
    redis_server: RedisServer, raw
) -> None:
    was = fast_render_enabled()
    try:
        for name, switch, expected in (("pinned-on", "on", 2), ("pinned-off", "off", 1)):
            settings = Settings.from_env(
                {
                    "REDIS_URL": f"{redis_server.url}?client_name={name}",
                    "KUSTOM_KEY_PREFIX": name,
                    "KUSTOM_FAST_PATHS": switch,
                }
            )
            store = Services(settings).store
            for version in range(1, 6):
                assert _record(store, "cart-1", version).pending_hash == f"h{version}"
            assert store.begin_sync("cart-1", "job-1").action == "no_order"
            # The pool's one connection (and, pinned, the thread's own).
            assert len(_clients(raw, name)) == expected, name
    finally:
        use_fast_render(was)
