"""What the harness's servers have in common: a command in a subprocess of its own session
(so stopping it stops its children too), its output in a log file, started once a condition
holds, stopped with SIGTERM and then SIGKILL. Gunicorn, the Celery worker and beat, and any
line of the Procfile are built on it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from harness.waiting import wait_until_started

ROOT = Path(__file__).resolve().parents[1]


def procfile_command(name: str) -> str:
    """The Procfile's line for the process ``name``."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.partition(":")[2].strip()
    raise RuntimeError(f"the Procfile has no {name} line")


class LoggedProcess:
    """One command, run from the repository root with exactly ``env``."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], ready: Callable[[], bool], timeout: float) -> None:
        """Start ``argv`` and wait until ``ready()`` (it exiting first is an error)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_started(self.process, ready, timeout, self.name, self.log_tail)
        except RuntimeError:
            self.stop()
            raise

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole session (the process and its children), like a lost machine."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def __exit__(self, *exc: object) -> None:
        self.stop()
