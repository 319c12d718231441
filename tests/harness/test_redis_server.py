import socket
from pathlib import Path

import pytest
import redis

from harness.redis_server import RedisServer, RedisServerNotInstalled, free_port


def can_listen_on(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def test_starts_on_a_free_loopback_port_and_answers_ping():
    with RedisServer() as server:
        assert server.running
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.ping()
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()


def test_options_reach_the_server():
    with RedisServer(appendonly=False, options={"maxmemory": "10mb"}) as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("maxmemory") == {"maxmemory": str(10 * 1024 * 1024)}
        client.close()


def test_restart_keeps_data_through_the_append_only_file():
    with RedisServer(appendonly=True) as server:
        port, directory = server.port, server.directory
        client = redis.Redis.from_url(server.url)
        client.set("kustom:test:cart", "v7")
        client.close()

        server.restart()

        assert (server.port, server.directory) == (port, directory)
        client = redis.Redis.from_url(server.url)
        assert client.get("kustom:test:cart") == b"v7"
        client.close()


def test_data_survives_sigkill_with_appendonly():
    with RedisServer(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("kustom:test:claimed", "1")
        client.close()

        server.kill()
        assert not server.running
        server.start()

        client = redis.Redis.from_url(server.url)
        assert client.get("kustom:test:claimed") == b"1"
        client.close()


def test_without_appendonly_a_restart_starts_empty():
    with RedisServer(appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        client.set("kustom:test:volatile", "1")
        client.close()

        server.restart()

        client = redis.Redis.from_url(server.url)
        assert client.get("kustom:test:volatile") is None
        client.close()


def test_stop_frees_the_port_and_close_removes_the_temp_dir():
    server = RedisServer().start()
    port, directory = server.port, server.directory
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    client.close()

    server.stop()

    assert not server.running
    assert server.pid is None
    assert not server.ping()
    assert can_listen_on(port)
    server.close()
    assert not Path(directory).exists()


def test_a_given_directory_is_kept(tmp_path):
    with RedisServer(directory=tmp_path / "redis") as server:
        redis.Redis.from_url(server.url).set("k", "v")
    assert (tmp_path / "redis").is_dir()


def test_a_taken_port_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        server = RedisServer(port=taken, startup_timeout=5)
        with pytest.raises(RuntimeError, match=str(taken)):
            server.start()
        server.close()


def test_missing_binary_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RedisServerNotInstalled, match="scripts/setup"):
        RedisServer()


def test_free_port_is_bindable():
    assert can_listen_on(free_port())
