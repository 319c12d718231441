"""A line of the Procfile run as is (with bash, the venv on PATH), in a subprocess: for
the processes the tests start exactly as production does (beat, Flower)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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


class ProcfileProcess:
    """The Procfile's ``name`` line with exactly ``env`` as its environment (plus the venv
    on PATH): nothing of this process's environment leaks in."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path | None = None) -> None:
        self.name = name
        venv_bin = str(Path(sys.executable).parent)
        self.env = {**env, "PATH": f"{venv_bin}:{env.get('PATH', os.environ.get('PATH', ''))}"}
        self.log_path = log_path or Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> ProcfileProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {procfile_command(self.name)}"],
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
        return self

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
