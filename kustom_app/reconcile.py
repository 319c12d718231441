"""The sweeper: finish what crashes, lost messages and outages interrupted.

Tasks retry transient errors themselves; this is the net under them, for work whose task
is gone (a worker lost with its message, retries exhausted, a web request that died, a
push that never arrived). One run looks at each index below, at most ``batch`` entries
per index, and re-queues the idempotent task that finishes the job:

1. carts whose pending payload has not reached Kustom for ``stale_sync_ms``
   (``{prefix}:syncing``) → ``syncKustomOrder``;
2. completion claims whose lease ran out without a result (``{prefix}:claims``) →
   ``completeKustomOrder`` (path ``sweeper``), which takes the claim over;
3. completed carts whose Kustom order is not acknowledged (``{prefix}:unacked``) →
   ``acknowledgeKustomOrder``;
4. carts with a Kustom order but no completion, no push and no confirmation for a while
   (``{prefix}:open_orders``) → read the order from order management; if Kustom has it
   (the shopper paid, the push was lost, e.g. to a firewall) → ``completeKustomOrder``;
   a cart whose completion was refused for a mismatch waits for an operator instead;
5. payment operations still queued (``{prefix}:payments:pending``) → their task again;
   results the commerce backend never got (``{prefix}:payments:undelivered``) → resend.

Everything it queues is safe to run twice, so a run is idempotent; to keep it from piling
up duplicates of a task that is merely slow, an entry it re-queued is not re-queued again
for ``requeue_spacing_ms`` (``{prefix}:reconcile:requeued``). Each run logs one line with
what it found and fixed, including the dead-lettered tasks (``{prefix}:deadletter``), and
keeps its counts in ``{prefix}:reconcile:last`` for operators.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from kustom_app.jobs import Jobs
from kustom_app.kustom import KustomClient, KustomRejected, KustomUnavailable
from kustom_app.logs import event_log
from kustom_app.metrics import RECONCILE_FIXES
from kustom_app.ordermanagement import KINDS, PaymentStore, split_member
from kustom_app.settings import Settings
from kustom_app.state import CartState, CartStore, now_ms

log = event_log(__name__)

MINUTE_MS = 60_000
DEADLETTER_SAMPLE = 100
# The run log shows the newest dead letters' errors: this many, each cut to this length.
DEADLETTER_SHOWN = 3
DEADLETTER_ERROR_CHARS = 200
REQUEUED_KEEP_MS = 24 * 60 * MINUTE_MS
LAST_RUN_KEEP_SECONDS = 7 * 24 * 3600
# How far past entries re-queued lately one run reads an index, in batches.
SCAN_FACTOR = 5
# Longer than a run can take (a few hundred Redis reads and at most `batch` Kustom reads).
RUN_LOCK_SECONDS = 300
# Kustom reads per run stop after this long (or half the task's soft time limit, if less).
OPEN_ORDER_BUDGET_SECONDS = 60.0


def retry_window_ms(settings: Settings) -> int:
    """How long a task chain can keep retrying before it gives up (with its backoff)."""
    total = sum(
        min(settings.retry_max_seconds, settings.retry_base_seconds * 2**attempt)
        for attempt in range(settings.max_retries)
    )
    return int(total * 1000)


@dataclass(frozen=True)
class ReconcilePolicy:
    """Thresholds of one run; `from_settings` derives them from the service settings
    (the sweeper's steps 1, 3 and 4 from SYNC_STALE_SECONDS and RECONCILE_*_SECONDS)."""

    batch: int
    stale_sync_ms: int
    unacked_after_ms: int
    open_order_check_ms: int
    open_order_max_interval_ms: int
    order_max_age_ms: int
    payment_stale_ms: int
    result_stale_ms: int
    requeue_spacing_ms: int
    open_order_budget_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ReconcilePolicy:
        # Re-queue only what its own task chain can no longer be finishing: a capture
        # retrying through an outage must not get a twin every minute.
        window = max(retry_window_ms(settings), MINUTE_MS)
        return cls(
            batch=settings.reconcile_batch,
            stale_sync_ms=settings.sync_stale_seconds * 1000,
            unacked_after_ms=int(settings.reconcile_unacknowledged_after_seconds * 1000),
            open_order_check_ms=int(settings.reconcile_open_order_after_seconds * 1000),
            open_order_max_interval_ms=int(
                settings.reconcile_open_order_max_interval_seconds * 1000
            ),
            order_max_age_ms=settings.order_max_age_seconds * 1000,
            payment_stale_ms=window,
            result_stale_ms=window,
            requeue_spacing_ms=window,
            open_order_budget_seconds=min(
                OPEN_ORDER_BUDGET_SECONDS, settings.task_soft_time_limit_seconds / 2
            ),
        )


@dataclass
class ReconcileReport:
    """What one run found (stale_syncs, expired_claims, unacked, open_orders_checked,
    pending_payments, undelivered_results, deadletters) and what it re-queued to fix it
    (resynced, completions_resumed, acks_requeued, missed_pushes, payments_requeued,
    results_resent: their sum is `fixed`). ``deadletter_latest`` are the newest dead
    letters (task, when, ids, error), at most `DEADLETTER_SHOWN`."""

    stale_syncs: int = 0
    resynced: int = 0
    expired_claims: int = 0
    completions_resumed: int = 0
    unacked: int = 0
    acks_requeued: int = 0
    open_orders_checked: int = 0
    missed_pushes: int = 0
    mismatch_open: int = 0
    pending_payments: int = 0
    payments_requeued: int = 0
    undelivered_results: int = 0
    results_resent: int = 0
    forgotten: int = 0
    kustom_errors: int = 0
    deadletters: int = 0
    deadletter_tasks: dict[str, int] = field(default_factory=dict)
    deadletter_latest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fixed(self) -> int:
        return sum(getattr(self, kind) for kind in RECONCILE_FIX_KINDS)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}

    def log_fields(self) -> dict[str, Any]:
        """The run's line: the counts, then the recent dead letters (newest last: their
        errors are text with spaces)."""
        fields: dict[str, Any] = dict(self.counts())
        if self.deadletter_tasks:
            tasks = ",".join(f"{k}:{v}" for k, v in sorted(self.deadletter_tasks.items()))
            fields["deadletter_recent"] = tasks
        if self.deadletter_latest:
            fields["deadletter_latest"] = self.deadletter_latest
        return fields


# What a run re-queued, each a kind of the kustom_reconcile_fixes_total counter.
RECONCILE_FIX_KINDS = (
    "resynced",
    "completions_resumed",
    "acks_requeued",
    "missed_pushes",
    "payments_requeued",
    "results_resent",
)


class Reconciler:
    def __init__(
        self,
        store: CartStore,
        payments: PaymentStore,
        kustom: KustomClient,
        enqueue: Jobs,
        policy: ReconcilePolicy,
    ) -> None:
        self.store = store
        self.payments = payments
        self.kustom = kustom
        self.enqueue = enqueue
        self.policy = policy

    # Spacing -------------------------------------------------------------------------------

    def _spaced(self, member: str, now: int) -> bool:
        """True (and remembered) unless ``member`` was re-queued within the spacing."""
        return self.store.mark_requeued(member, now, spacing_ms=self.policy.requeue_spacing_ms)

    def _note(self, cart_id: str, event: str, at: int, **fields: Any) -> None:
        """Put what the sweeper queued for the cart on its timeline."""
        self.store.timeline.record(cart_id, event, at=at, **fields)

    # The steps -----------------------------------------------------------------------------

    def _overdue(self, page: Callable[..., list[str]], max_score: int) -> Iterator[str]:
        """Carts of an index (read by ``page``) due at ``max_score``, oldest first, in pages.

        These indexes keep their own scores (since-when, lease end, completed-at), so an
        entry re-queued lately stays at the front; reading past such entries, up to
        ``SCAN_FACTOR`` batches, keeps them from starving the rest. Entries removed while
        iterating shift the pages: whatever is skipped comes up next run.
        """
        start, limit = 0, self.policy.batch * SCAN_FACTOR
        while start < limit:
            carts = page(max_score, start=start, count=self.policy.batch)
            if not carts:
                return
            yield from carts
            start += len(carts)

    def _stale_syncs(self, report: ReconcileReport, now: int) -> None:
        stale_since = now - self.policy.stale_sync_ms
        for cart_id in self._overdue(self.store.carts_syncing_since, stale_since):
            if report.resynced >= self.policy.batch:
                return
            report.stale_syncs += 1
            state = self.store.load(cart_id)
            if state is None or not state.syncing or state.cart_state != "open":
                self.store.forget_syncing(cart_id)
                report.forgotten += 1
                continue
            if state.sync_lease_until > now or not self._spaced(f"sync:{cart_id}", now):
                continue  # a job is pushing right now, or we queued one recently
            self.enqueue.sync(cart_id, state.pending_hash, None)
            self._note(cart_id, "sweeper.resynced", now, hash=state.pending_hash)
            report.resynced += 1

    def _completion(
        self,
        forget: Callable[[str], None],
        cart_id: str,
        cart_state: str,
        report: ReconcileReport,
    ) -> tuple[CartState, str] | None:
        """The cart and its completion's Kustom order id while the cart is ``cart_state``;
        else None, and the cart leaves its index (``forget``): it expired (72 h, long after
        Kustom stopped pushing) or moved on."""
        state = self.store.load(cart_id)
        order_id = state.completion_order_id if state else None
        if state is None or state.cart_state != cart_state or not order_id:
            forget(cart_id)
            report.forgotten += 1
            return None
        return state, order_id

    def _expired_claims(self, report: ReconcileReport, now: int) -> None:
        for cart_id in self._overdue(self.store.claims_expired_by, now):
            if report.completions_resumed >= self.policy.batch:
                return
            report.expired_claims += 1
            found = self._completion(self.store.forget_claim, cart_id, "completing", report)
            if found is None:
                continue
            _state, order_id = found
            if not self._spaced(f"complete:{cart_id}", now):
                continue
            self.enqueue.complete(cart_id, order_id, "sweeper")
            self._note(cart_id, "sweeper.completion_resumed", now, order=order_id)
            report.completions_resumed += 1

    def _unacknowledged(self, report: ReconcileReport, now: int) -> None:
        unacked_since = now - self.policy.unacked_after_ms
        for cart_id in self._overdue(self.store.unacknowledged_since, unacked_since):
            if report.acks_requeued >= self.policy.batch:
                return
            forget = self.store.forget_unacknowledged
            found = self._completion(forget, cart_id, "completed", report)
            if found is None:
                continue
            state, order_id = found
            if state.acknowledged:
                forget(cart_id)
                continue
            report.unacked += 1
            if not self._spaced(f"ack:{cart_id}", now):
                continue
            self.enqueue.acknowledge(cart_id, order_id)
            self._note(cart_id, "sweeper.ack_requeued", now, order=order_id)
            report.acks_requeued += 1

    def _next_open_check(self, order_age_ms: int) -> int:
        """Back off like Kustom's push schedule: check again after about the order's age."""
        return min(
            max(order_age_ms, self.policy.open_order_check_ms),
            self.policy.open_order_max_interval_ms,
        )

    def _open_orders(self, report: ReconcileReport, now: int) -> None:
        store = self.store
        carts = store.open_orders_due(now, count=self.policy.batch)
        deadline = time.monotonic() + self.policy.open_order_budget_seconds
        for cart_id in carts:
            if time.monotonic() > deadline:
                return  # Kustom is slow today: the rest waits for the next run
            state = store.load(cart_id)
            if (
                state is None
                or state.cart_state == "completed"
                or not state.order_id
                or not state.order_usable
            ):
                # Completed, expired, or its order was replaced (the new one is indexed).
                store.forget_open_order(cart_id)
                continue
            if state.cart_state == "completing":
                # A completer holds the claim; step 2 resumes it if its lease runs out.
                store.check_open_order_at(cart_id, now + self.policy.open_order_check_ms)
                continue
            if state.mismatch_open:
                # Refused for a mismatch: waits for an operator (`flask kustom resolve`),
                # completing it again would only raise the same alert.
                report.mismatch_open += 1
                store.check_open_order_at(cart_id, now + self.policy.open_order_check_ms)
                continue
            last_push = state.last_push_at
            if now - last_push < self.policy.open_order_check_ms:
                # A push came lately: its completion task is on it (with retries).
                store.check_open_order_at(cart_id, last_push + self.policy.open_order_check_ms)
                continue
            age = now - (state.order_created_at or now)
            report.open_orders_checked += 1
            try:
                self.kustom.get_om_order(state.order_id, cart=cart_id, by="sweeper")
            except KustomRejected as e:
                if e.status != 404:
                    report.kustom_errors += 1
                if age > self.policy.order_max_age_ms + self.policy.open_order_max_interval_ms:
                    store.forget_open_order(cart_id)  # Kustom no longer completes it
                else:
                    store.check_open_order_at(cart_id, now + self._next_open_check(age))
                continue
            except KustomUnavailable:
                report.kustom_errors += 1
                return  # Kustom is down: try the rest next run
            log.warning(
                "kustom.reconcile.missed_push",
                cart=cart_id,
                order=state.order_id,
                age_s=age // 1000,
            )
            self.enqueue.complete(cart_id, state.order_id, "sweeper")
            self._note(cart_id, "sweeper.missed_push", now, order=state.order_id)
            report.missed_pushes += 1
            store.check_open_order_at(cart_id, now + self.policy.open_order_check_ms)

    def _payments(self, report: ReconcileReport, now: int) -> None:
        pending = self.payments.due_pending(
            self.policy.payment_stale_ms, self.policy.batch, now=now
        )
        report.pending_payments = len(pending)
        for member in pending:
            kind, op_id = split_member(member)
            if kind not in KINDS or self.payments.load(kind, op_id) is None:
                self.payments.forget(self.payments.pending_key, member)
                report.forgotten += 1
                continue
            self.enqueue.payment(kind, op_id)
            self.payments.reschedule(self.payments.pending_key, member, now)
            report.payments_requeued += 1
        undelivered = self.payments.due_undelivered(
            self.policy.result_stale_ms, self.policy.batch, now=now
        )
        report.undelivered_results = len(undelivered)
        for member in undelivered:
            kind, op_id = split_member(member)
            record = self.payments.load(kind, op_id) if kind in KINDS else None
            if record is None or record.result_delivered:
                self.payments.forget(self.payments.undelivered_key, member)
                report.forgotten += 1
                continue
            self.enqueue.deliver(kind, op_id)
            self.payments.reschedule(self.payments.undelivered_key, member, now)
            report.results_resent += 1

    def _deadletters(self, report: ReconcileReport) -> None:
        dead_letters = self.store.dead_letters
        report.deadletters = dead_letters.count()
        tasks: Counter[str] = Counter()
        for index, raw in enumerate(dead_letters.newest(DEADLETTER_SAMPLE)):
            try:
                entry = json.loads(raw)
                tasks[str(entry.get("task"))] += 1
            except (ValueError, AttributeError):
                tasks["unreadable"] += 1
                continue
            if index < DEADLETTER_SHOWN:  # newest first
                report.deadletter_latest.append(_deadletter_summary(entry))
        report.deadletter_tasks = dict(tasks)

    def run(self, *, now: int | None = None) -> ReconcileReport | None:
        """One bounded pass over every index; returns what it found and re-queued.

        Returns None when another run still holds the sweeper's lock (a slow run must not
        overlap the next beat).
        """
        lock = self.store.reconcile_lock(timeout=RUN_LOCK_SECONDS)
        if not lock.acquire(blocking=False):
            log.info("kustom.reconcile.skipped", reason="another_run_in_progress")
            return None
        try:
            return self._run(now_ms() if now is None else now)
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: the next run simply takes it
                log.warning("kustom.reconcile.lock_expired")

    def _run(self, at: int) -> ReconcileReport:
        report = ReconcileReport()
        self._stale_syncs(report, at)
        self._expired_claims(report, at)
        self._unacknowledged(report, at)
        self._open_orders(report, at)
        self._payments(report, at)
        self._deadletters(report)
        self.store.forget_requeued_before(
            at - REQUEUED_KEEP_MS, ttl_seconds=REQUEUED_KEEP_MS // 1000
        )
        self.store.record_reconcile_run(
            {
                "at": at,
                "fixed": report.fixed,
                **report.counts(),
                "deadletterTasks": report.deadletter_tasks,
                "deadletterLatest": report.deadletter_latest,
            },
            ttl_seconds=LAST_RUN_KEEP_SECONDS,
        )
        for kind in RECONCILE_FIX_KINDS:
            if getattr(report, kind):
                RECONCILE_FIXES.labels(kind).inc(getattr(report, kind))
        log.info("kustom.reconcile.run", fixed=report.fixed, **report.log_fields())
        return report


def _deadletter_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """A dead letter as the run log shows it: every field, text cut to a bounded length."""
    return {
        name: value[:DEADLETTER_ERROR_CHARS] if isinstance(value, str) else value
        for name, value in entry.items()
        if isinstance(value, str | int | float | bool) or value is None
    }
