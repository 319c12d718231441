"""A real Celery worker (and beat) in a subprocess, for the integration tests and the
benchmarks, started as the Procfile starts them (``python -m workers -A workers.celery_app``).

Each one serves its own /metrics and /healthz on a free loopback port pair
(``WORKER_METRICS_PORT``, beat the next port) unless the environment names one, so that
processes of one test session never take each other's port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from harness.redis_server import free_port
from harness.waiting import wait_until_started

ROOT = Path(__file__).resolve().parents[1]


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


class CeleryProcess:
    """One Celery command in a subprocess of its own session, its output in ``log_path``."""

    kind = "celery"
    ready_line = ""

    def __init__(self, env: Mapping[str, str], name: str, log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.env.setdefault("WORKER_METRICS_HOST", "127.0.0.1")
        self.env.setdefault("WORKER_METRICS_PORT", str(free_port_pair()))
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> Self:
        self.log_path.write_text("")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers", "-A", "workers.celery_app", *self.arguments()],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_started(
            self.process,
            lambda: self.ready_line in self.log_path.read_text(errors="replace"),
            timeout,
            self.kind,
            self.log_tail,
        )
        return self

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole process group (parent and pool children), like a lost machine."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
