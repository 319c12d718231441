"""Each process's metrics directory under the node's: made, wiped and shared carefully."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kustom_app.metrics_directory import (
    MULTIPROC_ENV,
    PROCESS_DIR_ENV,
    node_directory,
    node_process_directories,
    share_metrics_directory,
)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_starting_process_wipes_its_own_and_dead_directories_and_no_live_ones(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = tmp_path / f"web-{sleeper.pid}"
        dead = tmp_path / f"worker-{dead_pid()}"
        own = tmp_path / f"beat-{os.getpid()}"  # a dead process's, with this pid
        unrelated = tmp_path / "notes"
        for directory in (live, dead, own, unrelated):
            directory.mkdir()
            (directory / "counter_1.db").write_bytes(b"samples")
        env = {MULTIPROC_ENV: str(tmp_path)}

        shown = share_metrics_directory("beat", env)

        assert shown == str(own) == env[MULTIPROC_ENV] == env[PROCESS_DIR_ENV]
        assert list(own.iterdir()) == []  # wiped
        assert not dead.exists()
        assert (live / "counter_1.db").exists()  # a live process's files stay
        assert (unrelated / "counter_1.db").exists()  # not the service's
        assert node_directory(env) == tmp_path
        assert node_process_directories(env) == [own, live]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_process_started_by_a_set_up_one_gets_its_own_directory_in_the_same_node(tmp_path):
    parent_env = {MULTIPROC_ENV: str(tmp_path)}
    share_metrics_directory("web", parent_env)
    child_env = dict(parent_env)  # exec'd with the parent's environment (not forked)

    shown = share_metrics_directory("worker", child_env)

    assert Path(shown).parent == tmp_path
    assert Path(shown).name == f"worker-{os.getpid()}"


def test_unset_means_the_default_node_directory(tmp_path):
    env = {"TMPDIR": str(tmp_path)}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; "
            "from kustom_app.metrics_directory import share_metrics_directory; "
            "print(share_metrics_directory('worker'))",
        ],
        env={
            **{k: v for k, v in os.environ.items() if k not in (MULTIPROC_ENV, PROCESS_DIR_ENV)},
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(shown).parent == tmp_path / f"kustom-app-metrics-{os.getuid()}"
