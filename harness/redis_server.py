"""A real `redis-server` for the integration tests and the benchmarks.

fakeredis covers the unit tests; what it cannot show is behaviour across a real server's
life: Lua scripts under a real scheduler, Celery on a real broker, and state surviving a
restart or a SIGKILL through the append-only file. `RedisServer` runs one private server per
test (or session) on 127.0.0.1, on a free port, in its own temporary directory:

    with RedisServer(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        ...
        server.restart()   # same port, same directory: AOF data is still there
        server.kill()      # SIGKILL, as a crash would
        server.start()
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "RedisServerError", "RedisServerNotInstalled", "free_port"]

_RUNNING: weakref.WeakSet[RedisServer] = weakref.WeakSet()


class RedisServerError(RuntimeError):
    """The server did not start or stop as asked."""


class RedisServerNotInstalled(RedisServerError):
    """There is no `redis-server` binary to run."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: when the process that started the server
    # dies without cleaning up (pytest-timeout's os._exit, a SIGKILL), the kernel stops the
    # server too, so no stray servers outlive a CI run. The kernel ties this to the starting
    # *thread*: start servers from the main thread or one that outlives them.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


class RedisServer:
    """One private `redis-server` process; see the module docstring."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        appendonly: bool = True,
        options: Mapping[str, str | int] | None = None,
        directory: str | os.PathLike[str] | None = None,
        port: int | None = None,
        binary: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """Prepare a server; nothing runs until `start()` (or `with`).

        `options` are extra redis.conf directives, e.g. ``{"appendfsync": "always"}``.
        Without `directory`, a temporary one is made and removed by `close()`.
        Without `port`, a free one is picked at the first start and kept afterwards.
        """
        found = binary or shutil.which("redis-server")
        if not found:
            raise RedisServerNotInstalled(
                "redis-server is not installed (not on PATH). Run scripts/setup, which "
                "installs Debian's redis-server, or: apt-get install redis-server"
            )
        self.binary = found
        self.options: dict[str, str] = {
            "appendonly": "yes" if appendonly else "no",
            "save": "",
            "maxmemory-policy": "noeviction",
        }
        self.options.update({k: str(v) for k, v in (options or {}).items()})
        self._own_directory = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="kustom-redis-") if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or 0
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def url_for(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> RedisServer:
        """Start the server and return once it answers PING (after loading its AOF)."""
        if self.running:
            return self
        if self.port:  # given, or kept from an earlier start so clients can reconnect
            self._spawn()
            return self
        for attempt in range(3):
            self.port = free_port(self.host)
            try:
                self._spawn()
                return self
            except RedisServerError:
                # Another process may have taken the port between the probe and the bind.
                port_taken = "Address already in use" in self._log_tail()
                self.port = 0
                if not port_taken or attempt == 2:
                    raise
        raise RedisServerError("no free port found")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM: redis flushes the AOF), and free the port."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no final AOF flush."""
        self._end(signal.SIGKILL, 5.0)

    def restart(self) -> RedisServer:
        """Stop (if running) and start again on the same port and directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and, if the directory was made here, remove it."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def ping(self, timeout: float = 1.0) -> bool:
        """True when the server answers PING with PONG (not while loading its data)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state} dir={self.directory}>"

    # -- internals -----------------------------------------------------------------------

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--logfile", str(self.log_file),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        for name, value in self.options.items():
            command += [f"--{name}", value]
        return command

    def _spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.log_file.unlink()
        self._process = subprocess.Popen(
            self._command(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        _RUNNING.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.communicate()[1].decode(errors="replace")
                self._process = None
                raise RedisServerError(
                    f"redis-server exited at start on port {self.port}: "
                    f"{stderr.strip()} {self._log_tail()}".strip()
                )
            if self.ping():
                return
            time.sleep(0.02)
        self._end(signal.SIGKILL, 5.0)
        raise RedisServerError(
            f"redis-server on port {self.port} did not answer PING within "
            f"{self.startup_timeout}s: {self._log_tail()}"
        )

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
        if process.stderr:
            process.stderr.close()
        self._wait_port_free()

    def _wait_port_free(self, timeout: float = 5.0) -> None:
        # The process is gone, so the listening socket is closed; this only guards against
        # a caller that immediately reuses the port on a slow kernel.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, self.port))
                    return
                except OSError:
                    time.sleep(0.02)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.kill()
