"""``python -m workers ARGS``: the ``celery`` command (ARGS as for it), with this process's
metrics directory set up first. The Procfile's worker, beat and flower lines use it.

The ``celery`` command loads its plugins before it imports the app, and Flower's plugin
imports prometheus_client, which reads ``PROMETHEUS_MULTIPROC_DIR`` on import: started
as plain ``celery``, a worker's counters would stay in its own memory, never reaching the
directory its ``/metrics`` (and the web's, on one host) reads. Here the directory is set
before anything is imported (`kustom_app.metrics_directory`). Flower counts nothing of the
service's: its own metrics stay in its process (no multiprocess directory).
"""

from __future__ import annotations

import os
import sys

from kustom_app.metrics_directory import MULTIPROC_ENV, share_metrics_directory
from workers.processes import process_kind


def main() -> None:
    argv = ["celery", *sys.argv[1:]]
    kind = process_kind(argv)
    if kind == "flower":
        os.environ.pop(MULTIPROC_ENV, None)
    else:
        share_metrics_directory(kind or "celery")
    sys.argv = argv
    from celery.__main__ import main as celery_main

    celery_main()


if __name__ == "__main__":
    main()
