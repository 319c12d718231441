"""Hash-based cart sync: cart renders in, Kustom order updates out.

A render is turned into the Kustom payload and hashed. The hash of the payload Kustom
should have is ``pending``; the hash of the payload Kustom has is ``sync``. The storefront
suspends the iframe exactly while they differ.

Only one job pushes for a cart at a time (a lease in Redis). A job always pushes the
newest pending payload, and when the cart changed while it pushed, it pushes again before
letting go of the lease, so a burst of renders costs at most a couple of Kustom calls and
an older payload can never land after a newer one.

An update whose answer never came (a read timeout, a dropped connection, a gateway's 504)
is an unknown outcome, not a failure: Kustom may apply it later, up to its own request
lifetime after it got it, over anything pushed in between. So it is recorded on the cart
with that time (`CartStore.record_unknown_outcome`), the cart stays "syncing", and until
then no job pushes or marks anything synced (`SyncUncertain`). The first job after reads
the order back: when it holds the newest pending payload that is recorded as synced, else
the payload is pushed; an answered push settles it (nothing older can land after it), a
push without an answer opens a new window. Kustom's own error answers (4xx, 429, a 5xx with
its error body) settle a request too: Kustom has finished with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kustom_app.jobs import Jobs
from kustom_app.kustom import KustomClient, KustomOutcomeUnknown, KustomRejected
from kustom_app.logs import event_log
from kustom_app.metrics import CART_EVENTS, SYNC_LAG, SYNC_PUSHES, SYNC_UNKNOWN_OUTCOMES
from kustom_app.order_match import order_has_payload
from kustom_app.payload import (
    CartNotPayable,
    build_order_payload,
    canonical_json,
    hash_canonical,
)
from kustom_app.render import render_json
from kustom_app.state import CartStore, RenderOutcome, SyncStep, now_ms

log = event_log(__name__)

MAX_PUSHES_PER_JOB = 10
# Two cart events closer than BURST_GAP_MS mean a burst is arriving: the job waits until
# none came for that long (at most BURST_MAX_WAIT_MS) and pushes the newest payload once.
# An isolated render is pushed at once.
BURST_GAP_MS = 25
BURST_MAX_WAIT_MS = 1500
# The pendingHash of a cart that cannot be paid for as it stands; no job ever pushes it.
UNPAYABLE_PREFIX = "unpayable-"


class SyncBusy(Exception):
    """Another job holds the cart's push lease; it will also push what is pending now."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"sync lease held for another {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class SyncUncertain(SyncBusy):
    """An update whose answer never came may still land at Kustom for ``retry_after_ms``:
    nothing is pushed or marked synced before. Come back then (like a busy lease)."""

    def __init__(self, retry_after_ms: int) -> None:
        Exception.__init__(
            self, f"an update without an answer may land at Kustom for {retry_after_ms} ms"
        )
        self.retry_after_ms = retry_after_ms


class SyncOutcomeUnknown(Exception):
    """This job's update got no answer (``error``); it is recorded on the cart and may land
    at Kustom for ``retry_after_ms``. An outage like any other for retries, but the retry
    that reads the order back must not come before."""

    def __init__(self, error: KustomOutcomeUnknown, pushed_hash: str, retry_after_ms: int) -> None:
        super().__init__(f"no answer to the update with {pushed_hash}: {error}")
        self.error = error
        self.pushed_hash = pushed_hash
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class PreparedRender:
    render_json: str  # the render as stored (money as strings)
    payload: dict[str, Any] | None  # None when the cart cannot be paid for as it stands
    hash: str
    not_payable: CartNotPayable | None
    payload_json: str | None = None  # the payload's canonical JSON (what was hashed)

    @property
    def render(self) -> dict[str, Any]:
        """The render as stored, parsed (JSON-ready: money as strings)."""
        stored: dict[str, Any] = json.loads(self.render_json)
        return stored


def prepare_render(render: dict[str, Any], *, kustom_adds_shipping: bool = False) -> PreparedRender:
    """Build the Kustom payload for a loaded render and hash it (``kustom_adds_shipping``:
    see `build_order_payload`).

    A cart that cannot be paid for (empty, amounts that do not add up) still gets a hash,
    derived from the render itself, so the storefront sees it as "not in sync" and the
    iframe stays suspended until the cart is payable again.
    """
    stored = render_json(render)
    try:
        payload = build_order_payload(render, kustom_adds_shipping=kustom_adds_shipping)
    except CartNotPayable as e:
        canonical = render_json(render, sort_keys=True)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return PreparedRender(stored, None, UNPAYABLE_PREFIX + digest[:21], e)
    payload_json = canonical_json(payload)
    return PreparedRender(stored, payload, hash_canonical(payload_json), None, payload_json)


def ingest_render(
    store: CartStore,
    render: dict[str, Any],
    jobs: Jobs | None = None,
    *,
    kustom_adds_shipping: bool = False,
) -> tuple[RenderOutcome, PreparedRender]:
    """Store a render (older versions are ignored) and say whether a sync job is needed.

    With ``jobs``, the job is queued by the same Lua call (``outcome.enqueued``); otherwise,
    or when ``jobs`` cannot, ``outcome.enqueue`` asks the caller to queue it.
    """
    prepared = prepare_render(render, kustom_adds_shipping=kustom_adds_shipping)
    cart_id = render["cartId"]
    job = None
    if jobs is not None and prepared.payload_json is not None:
        job = jobs.sync_job(cart_id, prepared.hash)
    outcome = store.record_render(
        cart_id,
        int(render["version"]),
        prepared.render_json,
        prepared.hash,
        prepared.payload_json,
        job=job,
    )
    event = render_event_outcome(outcome, prepared)
    CART_EVENTS.labels(event).inc()
    # Coalesced and unchanged renders need no action and can come by the hundred: their
    # counts are in kustom_cart_events_total; the log keeps the ones that change something.
    log.log(
        logging.DEBUG if event in ("coalesced", "unchanged") else logging.INFO,
        f"kustom.render.{event}",
        cart=render["cartId"],
        version=render["version"],
        hash=prepared.hash,
    )
    return outcome, prepared


def render_event_outcome(outcome: RenderOutcome, prepared: PreparedRender) -> str:
    """What happened to a cart event, for the ``kustom_cart_events_total`` counter."""
    if not outcome.accepted:
        return "stale"
    if prepared.payload is None:
        return "unpayable"
    if outcome.enqueue or outcome.enqueued:
        return "enqueued"
    return "coalesced" if outcome.syncing else "unchanged"


@dataclass(frozen=True)
class SyncResult:
    # synced | verified (read back equal after an unknown outcome, no push) | in_sync |
    # no_order | closed | gone | unusable | read_only | requeue | lost | unpayable
    outcome: str
    pushes: int
    hash: str | None = None


def _newest_after_burst(store: CartStore, cart_id: str, step: SyncStep, gap_ms: int) -> SyncStep:
    """``step`` unchanged when no burst is arriving; else the newest payload once it ended."""
    give_up = now_ms() + BURST_MAX_WAIT_MS
    waited = False
    while True:
        if step.events_at is not None and not waited:
            snapshot, (last, previous) = step, step.events_at  # read by begin_sync already
        else:
            snapshot, last, previous = store.pending_snapshot(cart_id)
        now = now_ms()
        in_burst = now - last < gap_ms and last - previous < gap_ms
        if not in_burst or now >= give_up:
            break
        waited = True
        time.sleep(max(1, min(gap_ms - (now - last), give_up - now)) / 1000)
    if not waited:
        return step
    return dataclasses.replace(snapshot, order_id=step.order_id)


def sync_cart(
    store: CartStore,
    kustom: KustomClient,
    cart_id: str,
    *,
    token: str | None = None,
    max_pushes: int = MAX_PUSHES_PER_JOB,
    burst_gap_ms: int = BURST_GAP_MS,
    request_lifetime_ms: int,
) -> SyncResult:
    """Bring the cart's Kustom order up to the newest pending payload.

    Raises `SyncBusy` when another job holds the lease, `SyncUncertain` (a `SyncBusy`)
    while an update without an answer may still land, `SyncOutcomeUnknown` when this job's
    update got no answer (it may land for ``request_lifetime_ms`` from now: how long
    Kustom may still act on a request, `Settings.kustom_request_lifetime_seconds`), and the
    Kustom client's errors (`KustomUnavailable` is worth a retry), each after giving the
    lease back.
    """
    token = token or uuid.uuid4().hex
    step = store.begin_sync(cart_id, token)
    if step.action == "busy":
        raise SyncBusy(step.retry_after_ms)
    if step.action == "uncertain":
        log.info(
            "kustom.sync.awaiting_outcome",
            cart=cart_id,
            hash=step.hash,
            wait_ms=step.retry_after_ms,
        )
        raise SyncUncertain(step.retry_after_ms)
    if step.action not in ("push", "verify"):
        return SyncResult(step.action, 0, step.hash)
    order_id = step.order_id or ""
    pushes = 0
    pushed_hash = ""
    verified = False
    try:
        if step.action == "verify":
            step = _verify(store, kustom, cart_id, token, step)
            verified = step.action != "push"
        while step.action in ("push", "again") and pushes < max_pushes:
            if burst_gap_ms > 0:
                step = _newest_after_burst(store, cart_id, step, burst_gap_ms)
                if step.action == "unpayable":
                    store.release_sync(cart_id, token)
                    break
            pushed_hash = step.hash or ""
            sent_at = now_ms()
            try:
                kustom.update_order(order_id, step.payload or {}, cart=cart_id, hash=pushed_hash)
            except KustomOutcomeUnknown as e:
                raise _unknown_outcome(
                    store, cart_id, token, order_id, pushed_hash, e, request_lifetime_ms
                ) from e
            pushes += 1
            SYNC_PUSHES.inc()
            step = store.finish_sync(
                cart_id, token, pushed_hash, order_id, step.payload, sent_at=sent_at
            )
            store.timeline.record(
                cart_id,
                "sync.pushed",
                at=now_ms(),
                order=order_id,
                hash=pushed_hash,
                next=step.action,
            )
            log.info(
                "kustom.sync.pushed",
                cart=cart_id,
                order=order_id,
                hash=pushed_hash,
                next=step.action,
            )
    except SyncOutcomeUnknown:
        raise  # the lease went back with the record of it
    except KustomRejected as e:
        if e.status == 404:
            store.release_sync(cart_id, token, order_id, "unusable")
            store.timeline.record(cart_id, "sync.order_gone", at=now_ms(), order=order_id)
            log.warning("kustom.sync.order_gone", cart=cart_id, order=order_id)
            return SyncResult("unusable", pushes)
        if e.status == 403 and e.error_code == "READ_ONLY_ORDER":
            store.release_sync(cart_id, token, order_id, "read_only")
            store.timeline.record(cart_id, "sync.read_only", at=now_ms(), order=order_id)
            log.info("kustom.sync.read_only", cart=cart_id, order=order_id)
            return SyncResult("read_only", pushes)
        store.release_sync(cart_id, token)
        store.timeline.record(
            cart_id,
            "sync.rejected",
            at=now_ms(),
            order=order_id,
            status=e.status,
            code=e.error_code,
        )
        raise
    except BaseException:
        store.release_sync(cart_id, token)
        raise
    if step.action == "uncertain":  # the script gave the lease back
        raise SyncUncertain(step.retry_after_ms)
    if step.action == "lost" and pushes:
        raise _pushed_without_lease(store, cart_id, token, order_id, pushed_hash)
    if step.action == "again":
        store.release_sync(cart_id, token)
        return SyncResult("requeue", pushes, step.hash)
    if step.action == "lost":  # a read back's finish: nothing was pushed
        log.warning("kustom.sync.lease_lost", cart=cart_id, order=order_id)
    if step.action == "done" and step.pending_at:
        SYNC_LAG.observe(max(0, now_ms() - step.pending_at) / 1000)
    if step.action == "done":
        return SyncResult("verified" if verified and not pushes else "synced", pushes, step.hash)
    return SyncResult(step.action, pushes, step.hash)


def _pushed_without_lease(
    store: CartStore, cart_id: str, token: str, order_id: str, pushed_hash: str
) -> SyncUncertain:
    """This job's push landed after its lease ran out: the job stalled between reading the
    payload and sending it (Redis away, the machine frozen), another job took the lease and
    may have pushed a newer payload, which this push has just overwritten at Kustom.

    What Kustom holds is not known, as after an update without an answer: the cart stays
    syncing (sync_hash unverified) until a job reads the order back and pushes the newest
    payload if it differs. The window is already over (the push has landed), so that job
    may come at once; a holder whose push went out before now re-reads too.
    """
    landed = now_ms()
    store.record_unknown_outcome(cart_id, token, order_id, pushed_hash, landed, now=landed)
    store.timeline.record(cart_id, "sync.lease_lost", at=landed, order=order_id, hash=pushed_hash)
    log.warning("kustom.sync.lease_lost", cart=cart_id, order=order_id, hash=pushed_hash)
    return SyncUncertain(0)


def _verify(
    store: CartStore, kustom: KustomClient, cart_id: str, token: str, step: SyncStep
) -> SyncStep:
    """After an unknown outcome's window: when Kustom's order holds the newest pending
    payload already, that is what Kustom has (recorded as synced, no push); else `push`."""
    order_id = step.order_id or ""
    read_at = now_ms()  # after the window (begin_sync saw it over): nothing lands after this
    order = kustom.get_order(order_id, cart=cart_id)
    if isinstance(order, dict) and step.payload and order_has_payload(order, step.payload):
        after = store.finish_sync(
            cart_id, token, step.hash or "", order_id, step.payload, sent_at=read_at
        )
        SYNC_UNKNOWN_OUTCOMES.labels("verified").inc()
        store.timeline.record(
            cart_id,
            "sync.verified",
            at=now_ms(),
            order=order_id,
            hash=step.hash,
            next=after.action,
        )
        log.info(
            "kustom.sync.verified", cart=cart_id, order=order_id, hash=step.hash, next=after.action
        )
        return after
    SYNC_UNKNOWN_OUTCOMES.labels("differed").inc()
    log.info("kustom.sync.verify_differs", cart=cart_id, order=order_id, hash=step.hash)
    return dataclasses.replace(step, action="push")


def _unknown_outcome(
    store: CartStore,
    cart_id: str,
    token: str,
    order_id: str,
    pushed_hash: str,
    error: KustomOutcomeUnknown,
    lifetime_ms: int,
) -> SyncOutcomeUnknown:
    """Record an update that got no answer; the error for the job to retry on."""
    # Counted from when the client gave up, not from when it sent: Kustom got the request
    # at some moment before now (after connecting, sending) and acts on it at most its
    # lifetime from then, so this bound holds however slow the way there was.
    gave_up = now_ms()
    until = store.record_unknown_outcome(
        cart_id, token, order_id, pushed_hash, gave_up + lifetime_ms, now=gave_up
    )
    SYNC_UNKNOWN_OUTCOMES.labels("no_answer").inc()
    store.timeline.record(
        cart_id,
        "sync.no_answer",
        at=gave_up,
        order=order_id,
        hash=pushed_hash,
        status=error.status,
        until=until,
    )
    log.warning(
        "kustom.sync.outcome_unknown",
        cart=cart_id,
        order=order_id,
        hash=pushed_hash,
        status=error.status,
        until=until,
    )
    return SyncOutcomeUnknown(error, pushed_hash, max(0, (until or gave_up) - gave_up))
