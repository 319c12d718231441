"""Every run of a bench, stamped (time, git revision, Python, machine) and appended to
``bench/results/<name>.json``, so that runs can be compared over time."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.figures import Figure
from bench.machine import machine_info

RESULTS_DIR = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def save_run(
    name: str,
    *,
    figures: Sequence[Figure],
    rows: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    machine: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one run (machine, figures, detail rows) to bench/results/<name>.json."""
    return append_run(
        name,
        {
            "host": dict(machine or machine_info()),
            **(meta or {}),
            "figures": [f.as_json() for f in figures],
            "rows": list(rows),
        },
    )


def append_run(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Stamp a run (bench, time, git revision, Python, machine) and append it to
    bench/results/<name>.json."""
    run = {
        "bench": name,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": _git_revision(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        **body,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(run)
    path.write_text(json.dumps(history, indent=2) + "\n")
    print(f"\nresults appended to {path.relative_to(ROOT)}")
    return run


def last_run(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    history = json.loads(path.read_text())
    return history[-1] if history else None


__all__ = [
    "RESULTS_DIR",
    "append_run",
    "last_run",
    "save_run",
]
