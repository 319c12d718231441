"""A real Celery worker (and beat) in a subprocess, for the integration tests and the
benchmarks, started as the Procfile starts them (``python -m workers -A workers.celery_app``).

Each one serves its own /metrics and /healthz on a free loopback port pair
(``WORKER_METRICS_PORT``, beat the next port) unless the environment names one, so that
processes of one test session never take each other's port.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from harness.processes import LoggedProcess
from harness.redis_server import free_port


def free_port_pair() -> int:
    """A free port whose next port is free too (a worker's and a beat's metrics)."""
    while True:
        port = free_port()
        if port < 65535 and _free(port + 1):
            return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class CeleryProcess(LoggedProcess):
    """One Celery command (``arguments``), ready once ``ready_line`` is in its log."""

    kind = "celery"
    ready_line = ""

    def __init__(self, env: Mapping[str, str], name: str, log_path: Path) -> None:
        full_env = {**os.environ, **env}
        full_env.setdefault("WORKER_METRICS_HOST", "127.0.0.1")
        full_env.setdefault("WORKER_METRICS_PORT", str(free_port_pair()))
        super().__init__(name, full_env, log_path)

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> Self:
        self.log_path.write_text("")
        self.spawn(
            [sys.executable, "-m", "workers", "-A", "workers.celery_app", *self.arguments()],
            lambda: self.ready_line in self.log_path.read_text(errors="replace"),
            timeout,
        )
        return self

    def __enter__(self) -> Self:
        return self.start()


class CeleryWorker(CeleryProcess):
    """The Procfile's worker line, on the given queues."""

    kind = "worker"
    ready_line = " ready."

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        name: str = "w1",
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str = "kustom.sync,kustom.orders",
    ) -> None:
        log_path = Path(tempfile.mkstemp(prefix=f"celery-{name}-", suffix=".log")[1])
        super().__init__(env, name, log_path)
        self.concurrency = concurrency
        self.pool = pool
        self.queues = queues

    def arguments(self) -> list[str]:
        return [
            "worker",
            "--loglevel=INFO",
            "-Q",
            self.queues,
            "-n",
            f"{self.name}@%h",
            f"--concurrency={self.concurrency}",
            f"--pool={self.pool}",
            "--without-gossip",
            "--without-mingle",
            "-E",
        ]


class CeleryBeat(CeleryProcess):
    """The Procfile's beat line: the sweeper's schedule (``RECONCILE_INTERVAL_SECONDS``) on a
    real broker."""

    kind = "beat"
    ready_line = "beat: Starting..."

    def __init__(self, env: Mapping[str, str], *, name: str = "beat") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"celery-{name}-"))
        super().__init__(env, name, self.directory / "beat.log")

    def arguments(self) -> list[str]:
        return ["beat", "--loglevel=INFO", f"--schedule={self.directory / 'schedule'}"]
