"""Hash-based cart sync: cart renders in, Kustom order updates out.

A render is turned into the Kustom payload and hashed. The hash of the payload Kustom
should have is ``pending``; the hash of the payload Kustom has is ``sync``. The storefront
suspends the iframe exactly while they differ.

Only one job pushes for a cart at a time (a lease in Redis). A job always pushes the
newest pending payload, and when the cart changed while it pushed, it pushes again before
letting go of the lease, so a burst of renders costs at most a couple of Kustom calls and
an older payload can never land after a newer one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from kustom_app.kustom import KustomClient, KustomRejected
from kustom_app.metrics import CART_EVENTS, SYNC_LAG, SYNC_PUSHES
from kustom_app.payload import CartNotPayable, build_order_payload, canonical_json, hash_canonical
from kustom_app.render import render_json
from kustom_app.state import CartStore, RenderOutcome, SyncStep, now_ms

log = logging.getLogger(__name__)

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


class SyncJobs(Protocol):
    """Builds the broker message of a sync job, so the render's Lua script can queue it
    in the same atomic call that decides it is needed (one round trip per cart event)."""

    def sync_job(self, cart_id: str, payload_hash: str) -> tuple[str, str] | None:
        """``(queue key, message)``, or None when jobs cannot be queued from Redis
        directly (a separate broker): the caller then enqueues through Celery. The
        message has `kustom_app.state.JOB_PAYLOAD_MARKER` where the script puts the
        payload's JSON text, escaped as a JSON string."""
        ...


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
    jobs: SyncJobs | None = None,
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
        "kustom.render.%s cart=%s version=%s hash=%s",
        event,
        render["cartId"],
        render["version"],
        prepared.hash,
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
    outcome: str  # synced | in_sync | no_order | closed | gone | unusable | read_only | requeue
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
) -> SyncResult:
    """Bring the cart's Kustom order up to the newest pending payload.

    Raises `SyncBusy` when another job holds the lease, and the Kustom client's errors
    (`KustomUnavailable` is worth a retry) after giving the lease back.
    """
    token = token or uuid.uuid4().hex
    step = store.begin_sync(cart_id, token)
    if step.action == "busy":
        raise SyncBusy(step.retry_after_ms)
    if step.action != "push":
        return SyncResult(step.action, 0, step.hash)
    order_id = step.order_id or ""
    pushes = 0
    try:
        while step.action in ("push", "again") and pushes < max_pushes:
            if burst_gap_ms > 0:
                step = _newest_after_burst(store, cart_id, step, burst_gap_ms)
                if step.action == "unpayable":
                    store.release_sync(cart_id, token)
                    break
            pushed_hash = step.hash or ""
            kustom.update_order(order_id, step.payload or {}, cart=cart_id, hash=pushed_hash)
            pushes += 1
            SYNC_PUSHES.inc()
            step = store.finish_sync(cart_id, token, pushed_hash, order_id, step.payload)
            log.info(
                "kustom.sync.pushed cart=%s order=%s hash=%s next=%s",
                cart_id,
                order_id,
                pushed_hash,
                step.action,
            )
    except KustomRejected as e:
        if e.status == 404:
            store.release_sync(cart_id, token, order_id, "unusable")
            log.warning("kustom.sync.order_gone cart=%s order=%s", cart_id, order_id)
            return SyncResult("unusable", pushes)
        if e.status == 403 and e.error_code == "READ_ONLY_ORDER":
            store.release_sync(cart_id, token, order_id, "read_only")
            log.info("kustom.sync.read_only cart=%s order=%s", cart_id, order_id)
            return SyncResult("read_only", pushes)
        store.release_sync(cart_id, token)
        raise
    except BaseException:
        store.release_sync(cart_id, token)
        raise
    if step.action == "again":
        store.release_sync(cart_id, token)
        return SyncResult("requeue", pushes, step.hash)
    if step.action == "lost":
        log.warning("kustom.sync.lease_lost cart=%s order=%s", cart_id, order_id)
    if step.action == "done" and step.pending_at:
        SYNC_LAG.observe(max(0, now_ms() - step.pending_at) / 1000)
    return SyncResult("synced" if step.action == "done" else step.action, pushes, step.hash)
