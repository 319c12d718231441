"""The ingest bench's CPU placement: the web tier on cores of its own (bench.machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import machine
from bench.machine import Placement, _pin


def test_placement_gives_the_web_the_first_half_of_the_cores(monkeypatch):
    for cpus, web, rest in (
        ({0, 1}, {0}, {1}),
        ({0, 1, 2, 3}, {0, 1}, {2, 3}),
        ({2, 5, 7}, {2}, {5, 7}),
    ):
        monkeypatch.setattr(machine.os, "sched_getaffinity", lambda _pid, c=cpus: c)
        placement = Placement(node=None)  # type: ignore[arg-type]
        assert (placement.web_cpus, placement.rest_cpus) == (web, rest)
        assert placement.can_split
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda _pid: {0})
    assert not Placement(node=None).can_split  # type: ignore[arg-type]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_pinning_moves_every_thread_of_a_process_and_back():
    # A process with a second thread: both must move, not only the main one.
    code = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); "
    code += "print('up', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        everything = os.sched_getaffinity(0)
        one = {min(everything)}
        tids = [int(t) for t in os.listdir(f"/proc/{child.pid}/task")]
        assert len(tids) == 2
        _pin([child.pid], one)
        assert all(os.sched_getaffinity(tid) == one for tid in tids)
        _pin([child.pid], everything)
        assert all(os.sched_getaffinity(tid) == everything for tid in tids)
    finally:
        child.kill()
        child.wait()
