"""Where each process writes its metric samples: one directory per process, under the node's.

prometheus_client chooses multiprocess mode, and the directory, from
``PROMETHEUS_MULTIPROC_DIR`` when it is first imported. The service reads that variable as
the node's directory (`Settings.metrics_dir`, default one per user in the temp directory)
and gives every top process its own directory in it, ``<node>/<kind>-<pid>``: the gunicorn
master (``web``), a Celery worker's parent (``worker``), beat (``beat``). The processes it
forks (gunicorn workers, prefork pool children) inherit the variable and write beside it,
so a worker's ``/metrics`` is the sum of its pool children, and the web's ``/metrics`` the
sum of every directory of the node (web, worker and beat where they share a host).

Wiped at start, carefully: a starting process empties only its own directory (left by a
dead process of the same pid: a restarted container) and removes the directories of
processes that no longer live. A live process's files are never touched, whatever its
kind, so the web's master, workers and beat of one host start in any order.

This module must not import prometheus_client (it runs before it is imported).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from kustom_app.logs import event_log
from kustom_app.settings import Settings

log = event_log(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# This process's directory as this module set it, in the environment too: a process it
# starts (not forks) finds the node's directory from it.
PROCESS_DIR_ENV = "KUSTOM_METRICS_PROCESS_DIR"
# This process's directory, once set up; a forked child (gunicorn worker, pool child)
# inherits it with its memory and keeps writing beside its parent.
_own_directory: str | None = None
KINDS = ("web", "worker", "beat", "celery")
_PROCESS_DIR = re.compile(r"^(?:" + "|".join(KINDS) + r")-(\d+)$")


def share_metrics_directory(kind: str, env: MutableMapping[str, str] = os.environ) -> str:
    """Point prometheus_client at this process's directory (``kind`` as in `KINDS`), made
    and wiped as the module docstring says; a forked child keeps its parent's. Returns the
    directory."""
    global _own_directory
    if _own_directory is not None and env is os.environ:
        env[MULTIPROC_ENV] = env[PROCESS_DIR_ENV] = _own_directory
        return _own_directory
    node = node_directory(env)
    directory = node / f"{kind}-{os.getpid()}"
    _remove_dead_processes(node)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    env[MULTIPROC_ENV] = env[PROCESS_DIR_ENV] = str(directory)
    if env is os.environ:
        _own_directory = str(directory)
        _late_import_follows(env)
    return str(directory)


def node_directory(env: MutableMapping[str, str] = os.environ) -> Path:
    """The node's directory: the parent of this process's (or of the process that started
    this one) when set up, else the setting (PROMETHEUS_MULTIPROC_DIR, or the default)."""
    own = env.get(PROCESS_DIR_ENV)
    if own and env.get(MULTIPROC_ENV) == own:
        return Path(own).parent
    return Path(Settings.read("metrics_dir", env))


def process_directory(env: MutableMapping[str, str] = os.environ) -> Path:
    """This process's directory (where its children write too)."""
    return Path(env.get(MULTIPROC_ENV) or node_directory(env))


def node_process_directories(env: MutableMapping[str, str] = os.environ) -> list[Path]:
    """Every process directory of the node, live or from a process that has exited (its
    counters still count until a process of the node starts and removes it)."""
    node = node_directory(env)
    if not node.is_dir():
        return []
    return sorted(p for p in node.iterdir() if p.is_dir() and _PROCESS_DIR.match(p.name))


def _remove_dead_processes(node: Path) -> None:
    if not node.is_dir():
        return
    for path in node.iterdir():
        match = _PROCESS_DIR.match(path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _late_import_follows(env: MutableMapping[str, str]) -> None:
    """When something imported prometheus_client before this ran (the ``celery`` command
    imports Flower's plugin, which imports it; `python -m workers` avoids that), point its
    value class at the directory now: the service's metrics are made later, on import of
    kustom_app.metrics, and then land in the directory too."""
    values: Any = sys.modules.get("prometheus_client.values")
    if values is None or getattr(values.ValueClass, "_multiprocess", False):
        return
    if "kustom_app.metrics" in sys.modules:
        log.warning("metrics.directory.too_late", dir=env[MULTIPROC_ENV])
        return
    values.ValueClass = values.get_value_class()
