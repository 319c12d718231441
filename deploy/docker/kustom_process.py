#!/usr/bin/env python3
"""Run one process of the Procfile in place of this one: `kustom-process web|worker|beat|flower`.

The image's command for every process (Dockerfile, docker-compose.yml, deploy/kubernetes/).
The Procfile stays the one place the command lines are written, and the line replaces this
program (exec) instead of running under a supervisor: SIGTERM from `docker stop` or
Kubernetes reaches gunicorn or Celery itself, which shut down gracefully within the grace
period. (honcho, `make run`'s supervisor, sends SIGKILL 5 s after SIGTERM: a worker's
running tasks would be cut short on every rollout.)

Standard library only, and nothing of the service is imported: it runs before any setting
is read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

USAGE = "usage: kustom-process NAME [PROCFILE]  (NAME: a line of the Procfile, e.g. web)"


def procfile_lines(text: str) -> dict[str, str]:
    """The Procfile's processes, name → command line (blank lines and comments skipped)."""
    lines: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if sep and name.strip() and command.strip():
            lines[name.strip()] = command.strip()
    return lines


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    procfile = Path(argv[2]) if len(argv) == 3 else Path("Procfile")
    try:
        lines = procfile_lines(procfile.read_text())
    except OSError as e:
        print(f"kustom-process: cannot read {procfile}: {e.strerror}", file=sys.stderr)
        return 2
    command = lines.get(argv[1])
    if command is None:
        known = ", ".join(sorted(lines)) or "none"
        print(
            f"kustom-process: no process {argv[1]!r} in {procfile} (it has: {known})",
            file=sys.stderr,
        )
        return 2
    # The shell expands the line's ${VAR:-default}s as honcho's would, then becomes the
    # process itself (exec): no shell stays between the process and its signals.
    os.execvp("sh", ["sh", "-c", f"exec {command}"])  # noqa: S606, S607
    return 127  # not reached: execvp returns only by raising


if __name__ == "__main__":
    sys.exit(main(sys.argv))
