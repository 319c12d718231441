"""`make run` (scripts/run under honcho) restarts a process that dies, and Ctrl-C still stops
everything, with exit status 0 (so make does not report "Error 130").

scripts/run keeps its state in <checkout>/.run and allows one run per checkout, so the test
runs it from a scratch checkout: the scripts copied, everything else linked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.redis_server import free_port
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What the processes need from the checkout (scripts/run works in its own directory).
LINKED = [".venv", "Procfile", "gunicorn.conf.py", "kustom_app", "webhooks", "workers"]
LINKED += ["playground"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    for script in ("run", "keep-running"):
        shutil.copy2(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


class Run:
    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout
        self.port = free_port()
        self.log_path = checkout / "run.log"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("KUSTOM_", "REDIS_", "CELERY_", "COMMERCE_", "CALLBACK_"))
        }
        env.update(
            PORT=str(self.port),
            FLOWER_PORT=str(free_port()),
            # The README's route to Kustom's playground: credentials, no KUSTOM_API_URL.
            KUSTOM_USERNAME="merchant-test",
            KUSTOM_PASSWORD="not-a-real-password",
            COMMERCE_API_URL="http://127.0.0.1:9",
            COMMERCE_WEBHOOK_SECRET="run-script-test-secret",
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", str(checkout / "scripts" / "run"), "web", "worker"],
                cwd=checkout,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process running in the scratch checkout."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if Path(os.readlink(entry / "cwd")) != self.checkout:
                    continue
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode() + " "
            except OSError:
                continue
            found.append((int(entry.name), cmdline))
        return found

    def celery_worker_main(self) -> int | None:
        """The worker's main process (its pool processes are its children)."""
        workers = {
            pid
            for pid, cmd in self.processes()
            # The Procfile's `python -m workers -A … worker` (not keep-running's command line,
            # which holds it too).
            if Path(cmd.split(" ")[0]).name.startswith("python")
            and cmd.split(" ")[1:3] == ["-m", "workers"]
            and " worker " in cmd
        }
        for pid in workers:
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent not in workers:
                return pid
        return None

    def stop_everything(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for pid, _ in self.processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def run(checkout: Path) -> Iterator[Run]:
    run = Run(checkout)
    try:
        yield run
    finally:
        run.stop_everything()


def until(run: Run, predicate: Callable[[], Any], timeout: float) -> Any:
    try:
        return wait_until(predicate, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; scripts/run's output:\n{run.log()[-4000:]}") from None


def test_a_process_that_dies_is_restarted_and_ctrl_c_stops_everything_cleanly(run):
    until(run, lambda: "ready: Ctrl-C stops everything" in run.log(), 60)
    assert "https://api.playground.kustom.co (the default)" in run.log()
    assert "unbound variable" not in run.log()
    until(run, lambda: run.log().count(" ready.") >= 1, 60)  # celery's ready line
    assert "metrics.server.unavailable" not in run.log()  # its own free metrics port
    first = until(run, run.celery_worker_main, 10)

    os.kill(first, signal.SIGKILL)  # the worker crashes
    until(run, lambda: "keep-running: worker exited" in run.log(), 20)
    until(run, lambda: run.log().count(" ready.") >= 2, 60)
    assert run.celery_worker_main() not in (None, first)
    health = requests.get(f"http://127.0.0.1:{run.port}/healthz", timeout=5)
    assert health.status_code == 200, "the web kept running"
    assert run.process.poll() is None

    # Ctrl-C in the terminal: SIGINT to scripts/run (the processes run in sessions of their
    # own, so only scripts/run gets it from the terminal).
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(60) == 0, run.log()[-3000:]
    assert "stopped" in run.log()
    deadline = time.monotonic() + 10
    while run.processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.processes() == [], "nothing of the run is left"
