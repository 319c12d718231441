"""The image's two scripts (deploy/docker/), run as the image runs them.

kustom-process must *become* the Procfile's process (same pid), so that SIGTERM from
docker or Kubernetes reaches gunicorn or Celery itself; kustom-healthcheck must tell a
healthy process from an unhealthy or absent one, for each process of the Procfile.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.kit import DEPLOY, procfile

PROCESS = DEPLOY / "docker" / "kustom_process.py"
HEALTHCHECK = DEPLOY / "docker" / "kustom_healthcheck.py"


def run(script: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **(env or {})},
        cwd=cwd,
        check=False,
    )


# --- kustom-process -----------------------------------------------------------------------


def test_the_procfile_line_replaces_the_runner(tmp_path):
    """Same pid: no supervisor or shell stays between the process and its signals."""
    (tmp_path / "Procfile").write_text(
        f"show: {sys.executable} -c 'import os; print(os.getpid())'\n"
    )
    runner = subprocess.Popen(
        [sys.executable, str(PROCESS), "show"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0
    assert int(out) == runner.pid


def test_the_lines_defaults_and_variables_expand_as_in_honcho(tmp_path):
    procfile_path = tmp_path / "Procfile"
    procfile_path.write_text("# a comment\n\ngreet: echo ${GREETING:-hello} on $PORT\n")
    assert run(PROCESS, "greet", str(procfile_path), env={"PORT": "8000"}).stdout == (
        "hello on 8000\n"
    )
    greeted = run(PROCESS, "greet", str(procfile_path), env={"GREETING": "hi", "PORT": "1"})
    assert greeted.stdout == "hi on 1\n"


def test_an_unknown_process_is_refused_with_the_names_there_are(tmp_path):
    (tmp_path / "Procfile").write_text("web: true\nworker: true\n")
    result = run(PROCESS, "wrker", cwd=tmp_path)
    assert result.returncode == 2
    assert "no process 'wrker'" in result.stderr
    assert "web, worker" in result.stderr
    assert run(PROCESS, cwd=tmp_path).returncode == 2
    assert "cannot read" in run(PROCESS, "web", str(tmp_path / "nope")).stderr


def test_it_reads_the_real_procfile_as_the_tests_do():
    sys.path.insert(0, str(PROCESS.parent))
    try:
        import kustom_process
    finally:
        sys.path.remove(str(PROCESS.parent))
    lines = kustom_process.procfile_lines((DEPLOY.parent / "Procfile").read_text())
    assert lines == procfile()
    assert set(lines) == {"web", "worker", "beat", "flower"}


# --- kustom-healthcheck --------------------------------------------------------------------


class Answers(http.server.BaseHTTPRequestHandler):
    statuses: dict[str, int] = {}

    def do_GET(self) -> None:
        self.send_response(self.statuses.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, int]]]:
    """A loopback HTTP server answering each path with the status the test sets."""
    statuses: dict[str, int] = {}
    handler = type("Handler", (Answers,), {"statuses": statuses})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # beat's probe is on WORKER_METRICS_PORT + 1: the port below must have no listener, or
    # the auto check would find the worker's port open.
    while listening(httpd.server_address[1] - 1):
        httpd.server_close()
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], statuses
    finally:
        httpd.shutdown()
        httpd.server_close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ports_with(process: str, port: int) -> dict[str, str]:
    """An environment where only ``process`` would listen on ``port``."""
    env = {
        "PORT": str(closed_port()),
        "FLOWER_PORT": str(closed_port()),
        "WORKER_METRICS_PORT": str(closed_port()),
    }
    if process == "web":
        env["PORT"] = str(port)
    elif process == "flower":
        env["FLOWER_PORT"] = str(port)
    else:
        env["WORKER_METRICS_PORT"] = str(port - (1 if process == "beat" else 0))
    return env


@pytest.mark.parametrize(
    ("process", "path"),
    [("web", "/healthz"), ("worker", "/healthz"), ("beat", "/healthz"), ("flower", "/healthcheck")],
)
@pytest.mark.parametrize("named", [True, False], ids=["named", "auto"])
def test_healthy_only_on_200_from_its_own_probe(server, process, path, named):
    port, statuses = server
    env = ports_with(process, port)
    args = [process] if named else []
    statuses[path] = 200
    healthy = run(HEALTHCHECK, *args, env=env)
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.startswith(f"{process}: GET {path} on port {port} answered 200")
    # The worker's /healthz answers 503 while it cannot reach its broker.
    statuses[path] = 503
    unhealthy = run(HEALTHCHECK, *args, env=env)
    assert unhealthy.returncode == 1
    assert "answered 503" in unhealthy.stdout


def test_nothing_listening_is_unhealthy():
    env = ports_with("web", closed_port())
    result = run(HEALTHCHECK, env=env)
    assert result.returncode == 1
    assert result.stdout.startswith("nothing listens")
    assert run(HEALTHCHECK, "worker", env=env).returncode == 1


def test_an_unknown_process_is_a_usage_error():
    assert run(HEALTHCHECK, "wrker").returncode == 2
