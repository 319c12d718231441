"""gunicorn exactly as the Procfile's web line starts it, in a subprocess.

The integration tests use it to run the production web process against a real Redis and a
real worker; the benchmarks to serve ``bench.app`` the way production serves the service.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import requests

from harness.redis_server import free_port
from harness.waiting import wait_until_started

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_APP_SPEC = "'webhooks.app:create_app()'"


def procfile_web_command(app_spec: str | None = None) -> str:
    """The Procfile's web line (to run with bash), with only the app spec swapped when
    ``app_spec`` is given."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.partition(":")[2].strip()
            break
    else:
        raise RuntimeError("the Procfile has no web line")
    if PRODUCTION_APP_SPEC not in command:
        raise RuntimeError(
            f"the Procfile's web line no longer serves {PRODUCTION_APP_SPEC}; update "
            "harness.gunicorn.procfile_web_command"
        )
    if app_spec is None:
        return command
    return command.replace(PRODUCTION_APP_SPEC, shlex.quote(app_spec))


class Gunicorn:
    """gunicorn exactly as the Procfile's web line starts it (gthread, same workers/threads,
    gunicorn.conf.py from the repo root), serving ``app_spec`` (the Procfile's own app when
    None) on a free local port."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        app_spec: str | None = None,
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.command = procfile_web_command(app_spec)
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            **env,
            "PORT": str(self.port),
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        }
        self.expected_workers = int(self.env.get("WEB_CONCURRENCY") or 2)
        self.log_path = log_path or Path(
            tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1]
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Gunicorn:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {self.command}"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_started(
                self.process,
                lambda: len(self.worker_pids()) >= self.expected_workers and self._healthy(),
                timeout,
                "gunicorn",
                self.log_tail,
            )
        except RuntimeError:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        """The pids of gunicorn's worker processes (the master's children)."""
        if self.process is None:
            return []
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [int(child) for child in children]

    def log_tail(self, lines: int = 40) -> str:
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

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
