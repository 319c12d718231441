"""gunicorn exactly as the Procfile's web line starts it, in a subprocess.

The integration tests use it to run the production web process against a real Redis and a
real worker; the benchmarks to serve ``bench.app`` the way production serves the service.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import requests

from harness.processes import LoggedProcess, procfile_command
from harness.redis_server import free_port

PRODUCTION_APP_SPEC = "'webhooks.app:create_app()'"


def procfile_web_command(app_spec: str | None = None) -> str:
    """The Procfile's web line (to run with bash), with only the app spec swapped when
    ``app_spec`` is given."""
    command = procfile_command("web")
    if PRODUCTION_APP_SPEC not in command:
        raise RuntimeError(
            f"the Procfile's web line no longer serves {PRODUCTION_APP_SPEC}; update "
            "harness.gunicorn.procfile_web_command"
        )
    if app_spec is None:
        return command
    return command.replace(PRODUCTION_APP_SPEC, shlex.quote(app_spec))


class Gunicorn(LoggedProcess):
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
        full_env = {
            **os.environ,
            **env,
            "PORT": str(self.port),
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        }
        self.expected_workers = int(full_env.get("WEB_CONCURRENCY") or 2)
        super().__init__(
            "gunicorn",
            full_env,
            log_path or Path(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1]),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Gunicorn:
        self.spawn(
            ["bash", "-c", f"exec {self.command}"],
            lambda: len(self.worker_pids()) >= self.expected_workers and self._healthy(),
            timeout,
        )
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

    def __enter__(self) -> Gunicorn:
        return self.start()
