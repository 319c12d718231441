"""gunicorn settings read from the working directory (the Procfile's web line).

gunicorn runs this in its master before it starts any worker: the metrics directory is set
up here first (prometheus_client reads it when first imported), so the workers inherit it
and the master's `child_exit` finds the same directory.
"""

from __future__ import annotations

from typing import Any

from kustom_app.metrics_directory import share_metrics_directory

# The master makes (and wipes) the web's directory before it forks: its workers inherit it.
share_metrics_directory("web")

# gunicorn's own lines and its access log in the service's format (LOG_FORMAT), the
# callback token masked, the cart named: webhooks/access_log.py.
logger_class = "webhooks.access_log.ServiceLogger"


def child_exit(server: Any, worker: Any) -> None:
    # Live gauges of a dead worker must not linger in the multiprocess metrics directory.
    from kustom_app.metrics import mark_process_dead

    mark_process_dead(worker.pid)
