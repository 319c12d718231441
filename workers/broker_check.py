"""Can this process reach its Celery broker? (`kustom-app doctor`.)"""

from __future__ import annotations

from kustom_app.doctor import Check, shown_url

BROKER_TIMEOUT_SECONDS = 3.0


def check_broker(broker_url: str) -> Check:
    """Connect to the broker the way the Celery app does (its transport and options), once,
    without the app's retry loop."""
    from workers.celery_app import app

    url = shown_url(broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
            )
    except Exception as e:  # kombu wraps each transport's own errors differently
        return Check("broker", False, f"{url} unreachable: {type(e).__name__}", {"url": url})
    return Check("broker", True, f"{url} connected", {"url": url})
