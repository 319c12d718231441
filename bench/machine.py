"""The machine a bench runs on: what it is (printed with every table), where its cores' time
went during a run, and which of the node's processes run on which cores."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.node import Stack


def machine_info() -> dict[str, Any]:
    """Cores, CPU model (from /proc/cpuinfo), Python and the date: printed with every table."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(info: Mapping[str, Any] | None = None) -> str:
    info = info or machine_info()
    return f"Machine: {info['cores']} cores, {info['cpu']}; Python {info['python']}; {info['date']}"


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (Linux /proc)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes (0 for gone ones)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


class CpuMeter:
    """CPU seconds per named group of processes between ``start()`` and ``stop()``."""

    def __init__(self, groups: Mapping[str, Callable[[], Sequence[int]]]) -> None:
        self.groups = dict(groups)
        self._pids: dict[str, list[int]] = {}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._pids = {name: list(pids()) for name, pids in self.groups.items()}
        self._start = {name: cpu_seconds(pids) for name, pids in self._pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {
            name: cpu_seconds(pids) - self._start[name] for name, pids in self._pids.items()
        }
        return self.used


def node_cpu_groups(node: Stack) -> dict[str, Callable[[], Sequence[int]]]:
    """The node's processes by role: web (gunicorn), redis, worker (Celery), this process
    (the Kustom and commerce doubles and the bench driver)."""

    def web() -> list[int]:
        return process_tree(node.web.process.pid) if node.web.process else []

    def redis() -> list[int]:
        return [node.redis.pid] if node.redis.pid else []

    def workers() -> list[int]:
        return [
            pid
            for worker in node.workers
            if worker.process is not None
            for pid in process_tree(worker.process.pid)
        ]

    return {"web": web, "redis": redis, "worker": workers, "doubles": lambda: [os.getpid()]}


def _pin(pids: Sequence[int], cpus: set[int]) -> None:
    """Every thread of these processes onto ``cpus`` (threads and children started later
    inherit it from the thread that starts them)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), cpus)


class Placement:
    """Where the node's processes run during a load run.

    ``shared``: everything on every core (one machine running the whole node).
    ``split``: gunicorn on the first half of the cores; Redis, the Celery worker, the
    doubles and the load generator (started from this process, so it inherits) on the
    other half. The web tier then gets the same cores in the baseline and the measured
    row, and nothing else competes for them: its own capacity, as when web and worker
    run on separate machines (docs/operations.md, "Scaling out").
    """

    def __init__(self, node: Stack) -> None:
        self.node = node
        self.all_cpus = set(os.sched_getaffinity(0))
        ordered = sorted(self.all_cpus)
        half = len(ordered) // 2
        self.web_cpus, self.rest_cpus = set(ordered[:half]), set(ordered[half:])

    @property
    def can_split(self) -> bool:
        return bool(self.web_cpus) and bool(self.rest_cpus)

    def apply(self, name: str) -> None:
        groups = node_cpu_groups(self.node)
        rest = [*groups["redis"](), *groups["worker"](), os.getpid()]
        if name == "split":
            _pin(groups["web"](), self.web_cpus)
            _pin(rest, self.rest_cpus)
        else:
            _pin([*groups["web"](), *rest], self.all_cpus)

    def describe(self, name: str) -> str:
        if name == "split":
            return f"web on CPU {sorted(self.web_cpus)}, the rest on CPU {sorted(self.rest_cpus)}"
        return f"everything on CPU {sorted(self.all_cpus)}"


__all__ = [
    "CpuMeter",
    "Placement",
    "cpu_seconds",
    "machine_info",
    "machine_line",
    "node_cpu_groups",
    "process_tree",
]
