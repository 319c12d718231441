"""``python -m bench [name] [options]``: run one benchmark, or every one without a name.

Without a name every benchmark runs in turn (each prints its own tables and appends its
run to bench/results/<name>.json), then one combined table of the headline figures is
printed with the machine and the date.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from typing import Any

BENCHES = {
    "ingest": "bench.ingest",
    "coalescing": "bench.coalescing",
    "sync_lag": "bench.sync_lag",
    "validation": "bench.validation",
    "race": "bench.race",
}


def _validation_figures(run: dict[str, Any]) -> list[Any]:
    """bench.validation reports latency rows against its ``bare`` row; one figure each."""
    from bench.figures import Figure

    rows = run.get("rows") or []
    bare = next((row for row in rows if row["name"] == "bare"), None)
    figures = []
    for row in rows:
        if bare is None or row is bare:
            continue
        for pct in ("p50", "p99"):
            figures.append(
                Figure(
                    f"validate {pct} ({row['name'].removeprefix('validate, ')})",
                    row[f"{pct}_ms"],
                    "ms",
                    baseline=bare[f"{pct}_ms"],
                    ratio=row[f"{pct}_ms"] / bare[f"{pct}_ms"],
                )
            )
    return figures


def combined_table(names: list[str], since: str) -> str:
    """The headline figures of the runs of ``names`` made since ``since`` (ISO time)."""
    from bench.figures import Figure, labelled_figures_table
    from bench.history import last_run
    from bench.machine import machine_line

    labelled: list[tuple[str | None, Figure]] = []
    host = None
    for name in names:
        run = last_run(name)
        if run is None or run.get("at", "") < since:
            continue
        host = host or run.get("host")
        if "figures" in run:
            figures = [Figure.from_json(f) for f in run["figures"]]
        elif name == "validation":
            figures = _validation_figures(run)
        else:
            continue
        labelled += [(name, figure) for figure in figures]
    return f"{machine_line(host) if host else machine_line()}\n\n" + labelled_figures_table(
        labelled
    )


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks: " + ", ".join(BENCHES))
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHES))}")
            return 2
        names = [name]
    else:
        names, rest = list(BENCHES), argv
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    status = 0
    for name in names:
        module = importlib.import_module(BENCHES[name])
        status = module.main(rest) or status
        print()
    if len(names) > 1:
        print("## all benchmarks: headline figures, each against its same-run baseline\n")
        print(combined_table(names, since))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
