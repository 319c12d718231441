"""gunicorn settings read from the working directory (the Procfile's web line)."""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    # Live gauges of a dead worker must not linger in the multiprocess metrics directory.
    from kustom_app.metrics import mark_process_dead

    mark_process_dead(worker.pid)
