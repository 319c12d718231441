"""A real Celery worker in a subprocess, for the integration tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from harness.waiting import wait_until_started

ROOT = Path(__file__).resolve().parents[1]


class CeleryWorker:
    def __init__(
        self,
        env: Mapping[str, str],
        *,
        name: str = "w1",
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str = "kustom.sync,kustom.orders",
    ) -> None:
        self.env = {**os.environ, **env}
        self.name = name
        self.concurrency = concurrency
        self.pool = pool
        self.queues = queues
        self.log_path = Path(tempfile.mkstemp(prefix=f"celery-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        self.log_path.write_text("")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers",  # the Procfile's entry: `celery` with the metrics directory set first
                "-A",
                "workers.celery_app",
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
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_started(
            self.process,
            lambda: " ready." in self.log_path.read_text(errors="replace"),
            timeout,
            "worker",
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
        """SIGKILL the whole worker (parent and pool children), like a lost machine."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CeleryBeat:
    """Celery beat in a subprocess, as the Procfile's beat line starts it: the sweeper's
    schedule (``RECONCILE_INTERVAL_SECONDS``) on a real broker."""

    def __init__(self, env: Mapping[str, str], *, name: str = "beat") -> None:
        self.env = {**os.environ, **env}
        self.directory = Path(tempfile.mkdtemp(prefix=f"celery-{name}-"))
        self.log_path = self.directory / "beat.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> CeleryBeat:
        self.log_path.write_text("")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.directory / 'schedule'}",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_started(
            self.process,
            lambda: "beat: Starting..." in self.log_path.read_text(errors="replace"),
            timeout,
            "beat",
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
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
