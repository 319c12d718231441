"""The sweeper's task: beat queues it every RECONCILE_INTERVAL_SECONDS (kustom_app.reconcile)."""

from __future__ import annotations

from celery import Task

from kustom_app.services import process_services
from workers.celery_app import app
from workers.enqueue import CeleryJobs


@app.task(name="reconcileKustomOrders", bind=True, acks_late=True)
def reconcile_kustom_orders(self: Task) -> dict[str, int]:
    """Periodic sweeper: finish what crashes and outages interrupted (kustom_app.reconcile)."""
    report = process_services().reconciler(CeleryJobs()).run()
    return report.counts() if report is not None else {"skipped": 1}
