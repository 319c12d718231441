"""Per-cart state in Redis: the render, the Kustom order, and the sync hashes.

Layout (all keys under one prefix, all with a TTL refreshed on every write):

``{prefix}:cart:{cartId}`` (hash)
    version, render, rendered_at           the newest cart render received
    pending_hash, pending_payload, pending_at
                                           the payload Kustom's order should have
    sync_hash, sync_payload, synced_at     the payload Kustom's order has
    order_id, order_created_at, order_updated_at, order_unusable, kustom_read_only
    sync_queued_at                         a syncKustomOrder job is queued
    sync_lock, sync_lock_until             the lease of the job pushing right now
    sync_uncertain_until                   an update got no answer and may land at Kustom
                                           until then; set until a job has re-read the
                                           order (sync_hash is `UNVERIFIED_PREFIX` + the
                                           pushed hash meanwhile)
    state                                  open | completing | completed
    completion_token, completion_lease_until, completion_order_id, completion_path
                                           the claim of whoever completes the cart
    order_number, completed_at, completed_by, fraud_status, acknowledged_at
    mismatch, completion_error, last_push_at
    mismatch_dismissed                     an operator handled that order outside
    fraud_decision, fraud_decision_order_id, fraud_decision_at, fraud_decision_forwarded
``{prefix}:syncing`` (zset)                carts whose pending != sync, scored by since-when
``{prefix}:claims`` (zset)                 carts being completed, scored by lease end
``{prefix}:unacked`` (zset)                completed carts whose Kustom order awaits its ack
``{prefix}:open_orders`` (zset)            carts with a Kustom order, by next sweeper check
``{prefix}:mismatches`` (zset)             carts with a mismatch open for an operator
``{prefix}:order:{cartId}`` (string)       the completed order, kept for captures/refunds
``{prefix}:events:{cartId}`` (channel)     published on every hash or state change
``{prefix}:lock:create:{cartId}`` (lock)   one Kustom order creation per cart at a time
``{prefix}:reconcile:requeued`` (zset)     what the sweeper re-queued, by when (its spacing)
``{prefix}:reconcile:last`` (string)       the sweeper's last run, for operators
``{prefix}:lock:reconcile`` (lock)         one sweeper run at a time
``{prefix}:deadletter`` (list)             tasks that gave up (`kustom_app.dead_letters`)
``{prefix}:timeline:{cartId}`` (list)      what happened to the cart (`kustom_app.timeline`)

Every multi-step change is one Lua script, so web and worker processes never interleave
inside a transition. Times are epoch milliseconds passed in by the caller.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.lock import Lock

from kustom_app.dead_letters import DeadLetters
from kustom_app.fastpath_scripts import script_pinning
from kustom_app.redis_scripts import as_text, load_script
from kustom_app.timeline import CartTimeline

QUEUED_STALE_MS = 30_000
# sync_hash while an update's outcome is unknown: 'unverified-' + the hash pushed without an
# answer. No pending hash has this form, so the cart stays "syncing" until a job has re-read
# Kustom's order (record_unknown_outcome.lua).
UNVERIFIED_PREFIX = "unverified-"
# Where record_render.lua puts the pending payload's JSON text (escaped as a JSON string)
# into a sync job's message: `CartStore.record_render`'s ``job``.
JOB_PAYLOAD_MARKER = "@@payload@@"


# The timeline's name of a callback noted by `CartStore.record_callback_seen`.
_SEEN_EVENTS = {
    "last_push_at": "callback.push",
    "fraud_decision_forwarded": "fraud_decision.forwarded",
}


def open_orders_key(prefix: str) -> str:
    """Carts with a Kustom order, scored by when the sweeper should next look at them."""
    return f"{prefix}:open_orders"


def now_ms() -> int:
    return int(time.time() * 1000)


def _json_text(value: dict[str, Any] | str) -> str:
    """A JSON-ready value as compact JSON; text is taken to be JSON already."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class RenderOutcome:
    accepted: bool
    pending_hash: str
    sync_hash: str
    cart_state: str
    enqueue: bool  # a sync job is needed and the caller must queue it
    enqueued: bool = False  # a sync job was needed and the script queued it

    @property
    def syncing(self) -> bool:
        return self.pending_hash != self.sync_hash


@dataclass(frozen=True)
class SyncStep:
    """What a sync job should do next."""

    # push | verify | again | done | in_sync | busy | uncertain | no_order | closed | gone | lost
    # (verify: push after reading Kustom's order, an earlier update's outcome being unknown;
    # uncertain: that update may still land, come back after retry_after_ms)
    action: str
    hash: str | None = None
    payload: dict[str, Any] | None = None
    order_id: str | None = None
    retry_after_ms: int = 0
    pending_at: int | None = None  # when the pushed payload became pending (on `done`)
    events_at: tuple[int, int] | None = None  # the last two cart events (ms; on `push`)


@dataclass(frozen=True)
class Claim:
    action: str  # claimed | completed | busy | unknown
    order_number: str | None = None
    order_id: str | None = None
    retry_after_ms: int = 0


@dataclass(frozen=True)
class CartState:
    cart_id: str
    version: int | None
    render: dict[str, Any] | None
    pending_hash: str | None
    sync_hash: str | None
    order_id: str | None
    order_created_at: int | None
    order_updated_at: int | None
    order_usable: bool
    kustom_read_only: bool
    cart_state: str
    sync_lease_until: int  # when (ms) the lease of the job pushing the cart ends; 0: none
    last_push_at: int  # when (ms) Kustom's last push for the cart's order came; 0: none
    mismatch_open: bool  # a completion refused for a mismatch waits for an operator
    fields: dict[str, str]

    @property
    def syncing(self) -> bool:
        return (self.pending_hash or None) != (self.sync_hash or None)

    @property
    def sync_payload(self) -> dict[str, Any] | None:
        raw = self.fields.get("sync_payload")
        return json.loads(raw) if raw else None

    @property
    def order_number(self) -> str | None:
        return self.fields.get("order_number") or None

    @property
    def completion_order_id(self) -> str | None:
        return self.fields.get("completion_order_id") or None

    @property
    def acknowledged(self) -> bool:
        return bool(self.fields.get("acknowledged_at"))

    def status(self) -> dict[str, Any]:
        """The storefront's view (CONTRACT section 3, status endpoint)."""
        return {
            "cartId": self.cart_id,
            "kustomOrderId": self.order_id,
            "pendingHash": self.pending_hash,
            "syncHash": self.sync_hash,
            "syncing": self.syncing,
            "cartState": self.cart_state,
        }


class CartStore:
    """The carts' state in Redis. Its tunables come from the service's settings
    (`kustom_app.services.Services.store`): the keys' prefix and TTL (a cart's, a completed
    order's record), the sync and completion leases, and when a new Kustom order is first
    due for the sweeper's look."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl_seconds: int,
        order_record_ttl_seconds: int,
        sync_lease_ms: int,
        completion_lease_ms: int,
        open_order_check_ms: int,
        fast_paths: bool,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.order_record_ttl = order_record_ttl_seconds
        self.sync_lease_ms = sync_lease_ms
        self.completion_lease_ms = completion_lease_ms
        # A new Kustom order is first due for the sweeper's look this long after checkout.
        self.open_order_check_ms = open_order_check_ms
        # The per-event and per-push scripts: on the calling thread's own connection, unless
        # the fast paths are off (KUSTOM_FAST_PATHS).
        pinned = script_pinning(client, enabled=fast_paths)
        self._record_render = pinned(load_script(client, "record_render"))
        self._begin_sync = pinned(load_script(client, "begin_sync"))
        self._finish_sync = pinned(load_script(client, "finish_sync"))
        self._release_sync = load_script(client, "release_sync")
        self._record_unknown_outcome = load_script(client, "record_unknown_outcome")
        self._record_order = load_script(client, "record_order")
        self._record_applied = load_script(client, "record_applied")
        self._claim_completion = load_script(client, "claim_completion")
        self._finish_completion = load_script(client, "finish_completion")
        self._release_completion = load_script(client, "release_completion")
        # What happened to each cart, for operators; expires with the cart.
        self.timeline = CartTimeline(client, prefix=prefix, ttl_seconds=ttl_seconds)
        # Kept as long as a cart: what the tasks of these carts gave up on.
        self.dead_letters = DeadLetters(
            client, prefix=prefix, ttl_seconds=ttl_seconds, timeline=self.timeline
        )
        # The sweeper's own records: what it re-queued when, and its last run.
        self._requeued_key = f"{prefix}:reconcile:requeued"
        self._reconcile_run_key = f"{prefix}:reconcile:last"

    # Keys ------------------------------------------------------------------------------

    def cart_key(self, cart_id: str) -> str:
        return f"{self.prefix}:cart:{cart_id}"

    @property
    def syncing_key(self) -> str:
        return f"{self.prefix}:syncing"

    @property
    def claims_key(self) -> str:
        return f"{self.prefix}:claims"

    @property
    def unacked_key(self) -> str:
        return f"{self.prefix}:unacked"

    @property
    def open_orders_key(self) -> str:
        return open_orders_key(self.prefix)

    @property
    def mismatches_key(self) -> str:
        return f"{self.prefix}:mismatches"

    def order_record_key(self, cart_id: str) -> str:
        return f"{self.prefix}:order:{cart_id}"

    def events_channel(self, cart_id: str) -> str:
        return f"{self.prefix}:events:{cart_id}"

    def _keys(self, cart_id: str) -> list[str]:
        return [self.cart_key(cart_id), self.syncing_key, self.events_channel(cart_id)]

    # Reads -----------------------------------------------------------------------------

    def load(self, cart_id: str) -> CartState | None:
        """The cart's state, or None when nothing was ever stored (or it expired)."""
        raw = self.redis.hgetall(self.cart_key(cart_id))
        if not raw:
            return None
        fields = {as_text(k) or "": as_text(v) or "" for k, v in raw.items()}

        def num(name: str) -> int | None:
            value = fields.get(name)
            return int(value) if value else None

        render = json.loads(fields["render"]) if fields.get("render") else None
        return CartState(
            cart_id=cart_id,
            version=num("version"),
            render=render,
            pending_hash=fields.get("pending_hash") or None,
            sync_hash=fields.get("sync_hash") or None,
            order_id=fields.get("order_id") or None,
            order_created_at=num("order_created_at"),
            order_updated_at=num("order_updated_at"),
            order_usable=bool(fields.get("order_id")) and fields.get("order_unusable") != "1",
            kustom_read_only=bool(fields.get("kustom_read_only")),
            cart_state=fields.get("state") or "open",
            sync_lease_until=num("sync_lock_until") or 0,
            last_push_at=num("last_push_at") or 0,
            mismatch_open=bool(fields.get("mismatch")),
            fields=fields,
        )

    # Renders ---------------------------------------------------------------------------

    def record_render(
        self,
        cart_id: str,
        version: int,
        render: dict[str, Any] | str,
        payload_hash: str,
        payload: dict[str, Any] | str | None,
        *,
        now: int | None = None,
        job: tuple[str, str] | None = None,
    ) -> RenderOutcome:
        """Store a render unless an older version; report whether a sync job is needed.

        ``render`` and ``payload`` may be their JSON text already (the hot path serialises
        each once); ``payload`` is None for a cart that cannot be paid for. ``job`` is
        ``(queue key, broker message)``: when a job is needed the script puts the pending
        payload into the message at `JOB_PAYLOAD_MARKER` and pushes it onto that
        list itself, atomically with marking the cart queued (``enqueued``); without it the
        caller queues the job (``enqueue``).
        """
        queue_key, message = job if job is not None else (self._keys(cart_id)[0], "")
        result = self._record_render(
            keys=[*self._keys(cart_id), queue_key, self.timeline.key(cart_id)],
            args=[
                version,
                _json_text(render),
                payload_hash,
                "" if payload is None else _json_text(payload),
                now_ms() if now is None else now,
                self.ttl,
                QUEUED_STALE_MS,
                cart_id,
                message,
                self.timeline.limit,
            ],
        )
        status, pending, sync, state, enqueue = (as_text(x) for x in result)
        return RenderOutcome(
            accepted=status == "accepted",
            pending_hash=pending or "",
            sync_hash=sync or "",
            cart_state=state or "open",
            enqueue=enqueue == "1",
            enqueued=enqueue == "2",
        )

    def record_order(
        self,
        cart_id: str,
        order_id: str,
        payload_hash: str,
        payload: dict[str, Any],
        *,
        now: int | None = None,
    ) -> bool:
        """Remember the Kustom order created from ``payload``; True if a sync must follow."""
        _pending, enqueue = self._record_order(
            keys=[*self._keys(cart_id), self.open_orders_key],
            args=[
                order_id,
                payload_hash,
                json.dumps(payload, separators=(",", ":")),
                now_ms() if now is None else now,
                self.ttl,
                cart_id,
                self.open_order_check_ms,
            ],
        )
        return as_text(enqueue) == "1"

    def record_applied_render(
        self,
        cart_id: str,
        version: int,
        render: dict[str, Any] | str,
        payload_hash: str,
        payload: dict[str, Any] | str,
        *,
        now: int | None = None,
    ) -> bool:
        """Kustom applied this render's payload itself (a callback answer): pending = sync.

        While an update whose answer never came may still land at Kustom (and overwrite
        this answer there), the payload is stored as pending only: the sync job re-reads
        the order once nothing can land any more. Returns False (nothing stored) when a
        newer render version is already stored.
        """
        result = self._record_applied(
            keys=self._keys(cart_id),
            args=[
                version,
                _json_text(render),
                payload_hash,
                _json_text(payload),
                now_ms() if now is None else now,
                self.ttl,
                cart_id,
            ],
        )
        return as_text(result) in ("applied", "applied_unverified")

    # Sync leases -----------------------------------------------------------------------

    def begin_sync(
        self, cart_id: str, token: str, *, lease_ms: int | None = None, now: int | None = None
    ) -> SyncStep:
        """Take the cart's push lease if there is something to push and nobody pushes."""
        lease = self.sync_lease_ms if lease_ms is None else lease_ms
        result = [
            as_text(x)
            for x in self._begin_sync(
                keys=[self.cart_key(cart_id), self.syncing_key],
                args=[token, now_ms() if now is None else now, lease, cart_id],
            )
        ]
        action = result[0] or "gone"
        if action in ("push", "verify"):
            return SyncStep(
                action,
                hash=result[1],
                payload=json.loads(result[2] or "null"),
                order_id=result[3],
                events_at=(int(result[5] or 0), int(result[6] or 0)),
            )
        if action in ("busy", "uncertain"):
            return SyncStep(action, hash=result[1], retry_after_ms=int(result[4] or 0))
        return SyncStep(action, hash=result[1] if len(result) > 1 else None)

    def finish_sync(
        self,
        cart_id: str,
        token: str,
        pushed_hash: str,
        order_id: str,
        pushed_payload: dict[str, Any] | None = None,
        *,
        sent_at: int | None = None,
        lease_ms: int | None = None,
        now: int | None = None,
    ) -> SyncStep:
        """Record a landed push; returns `again` with the newer payload if the cart moved.

        Also records a read that found the payload at Kustom (a verified unknown outcome).
        ``sent_at`` is when the push or read was sent (default now): it says what Kustom
        ends with only when sent after any unknown outcome's window; before, the result is
        `uncertain` and nothing is recorded.
        """
        at = now_ms() if now is None else now
        result = [
            as_text(x)
            for x in self._finish_sync(
                keys=self._keys(cart_id),
                args=[
                    token,
                    pushed_hash,
                    at,
                    self.sync_lease_ms if lease_ms is None else lease_ms,
                    self.ttl,
                    cart_id,
                    order_id,
                    json.dumps(pushed_payload, separators=(",", ":")) if pushed_payload else "",
                    at if sent_at is None else sent_at,
                ],
            )
        ]
        action = result[0] or "lost"
        if action == "again":
            return SyncStep(
                action, hash=result[1], payload=json.loads(result[2] or "null"), order_id=order_id
            )
        if action == "done":
            return SyncStep(action, hash=result[1], pending_at=int(result[2] or 0) or None)
        if action == "uncertain":
            return SyncStep(action, hash=result[1], retry_after_ms=int(result[2] or 0))
        return SyncStep(action, hash=result[1] if len(result) > 1 else None)

    def record_unknown_outcome(
        self,
        cart_id: str,
        token: str,
        order_id: str,
        pushed_hash: str,
        uncertain_until: int,
        *,
        now: int | None = None,
    ) -> int | None:
        """An update got no answer and may land at Kustom until ``uncertain_until`` (ms).

        Gives the lease back and keeps the cart "syncing" (sync_hash becomes
        `UNVERIFIED_PREFIX` + ``pushed_hash``) until a job has re-read the order after that
        time. Returns the end of the window (the later one when one was open already), or
        None when the cart has moved to another order meanwhile.
        """
        status, until = self._record_unknown_outcome(
            keys=self._keys(cart_id),
            args=[
                token,
                order_id,
                pushed_hash,
                uncertain_until,
                now_ms() if now is None else now,
                self.ttl,
                cart_id,
            ],
        )
        return int(until) if as_text(status) == "uncertain" else None

    def release_sync(
        self,
        cart_id: str,
        token: str,
        order_id: str = "",
        mark: str = "",
        *,
        now: int | None = None,
    ) -> None:
        """Give the lease back; ``mark`` records a 404 (unusable) or 403 (read_only) order."""
        self._release_sync(
            keys=self._keys(cart_id),
            args=[token, order_id, mark, cart_id, now_ms() if now is None else now],
        )

    def pending_snapshot(self, cart_id: str) -> tuple[SyncStep, int, int]:
        """The newest pending payload, and when the last two cart events arrived (ms)."""
        pending, payload, last_event, prev_event = (
            as_text(x)
            for x in self.redis.hmget(
                self.cart_key(cart_id),
                "pending_hash",
                "pending_payload",
                "last_event_at",
                "prev_event_at",
            )
        )
        step = SyncStep(
            "again" if payload else "unpayable",
            hash=pending,
            payload=json.loads(payload) if payload else None,
        )
        return step, int(last_event or 0), int(prev_event or 0)

    def mark_order_unusable(self, cart_id: str, order_id: str) -> None:
        """Kustom no longer knows this order (expired or gone): the next checkout re-creates."""
        self.release_sync(cart_id, "", order_id, "unusable")
        self.timeline.record(cart_id, "order.unusable", at=now_ms(), order=order_id)

    # Checkout creation -----------------------------------------------------------------

    def creation_lock(self, cart_id: str, *, timeout: float = 40.0, blocking_timeout: float = 30.0):
        """Serialises order creation per cart; outlives one Kustom create call."""
        return self.redis.lock(
            f"{self.prefix}:lock:create:{cart_id}",
            timeout=timeout,
            blocking_timeout=blocking_timeout,
        )

    # Completion ------------------------------------------------------------------------

    def claim_completion(
        self,
        cart_id: str,
        token: str,
        order_id: str,
        path: str,
        *,
        lease_ms: int | None = None,
        now: int | None = None,
    ) -> Claim:
        """Atomically move the cart from open to completing (or report who got there first),
        for the store's completion lease unless ``lease_ms`` is given."""
        result = [
            as_text(x)
            for x in self._claim_completion(
                keys=[self.cart_key(cart_id), self.claims_key, self.events_channel(cart_id)],
                args=[
                    token,
                    order_id,
                    now_ms() if now is None else now,
                    self.completion_lease_ms if lease_ms is None else lease_ms,
                    path,
                    cart_id,
                    self.ttl,
                ],
            )
        ]
        action = result[0] or "unknown"
        if action == "claimed":
            self.timeline.record(
                cart_id, "completion.claimed", at=now_ms(), order=order_id, path=path
            )
        if action == "completed":
            return Claim(action, order_number=result[1] or None, order_id=result[2] or None)
        if action == "busy":
            return Claim(action, order_id=result[2] or None, retry_after_ms=int(result[1] or 0))
        return Claim(action)

    def finish_completion(
        self,
        cart_id: str,
        order_id: str,
        order_number: str,
        path: str,
        *,
        fraud_status: str = "",
        now: int | None = None,
    ) -> Claim:
        """Record the cart completed; `completed` the first time, `already` after that."""
        at = now_ms() if now is None else now
        record = json.dumps(
            {
                "cartId": cart_id,
                "kustomOrderId": order_id,
                "orderNumber": order_number,
                "completedAt": at,
            }
        )
        result = [
            as_text(x)
            for x in self._finish_completion(
                keys=[
                    self.cart_key(cart_id),
                    self.claims_key,
                    self.unacked_key,
                    self.events_channel(cart_id),
                    self.order_record_key(cart_id),
                    self.mismatches_key,
                ],
                args=[
                    order_id,
                    order_number,
                    at,
                    path,
                    cart_id,
                    self.ttl,
                    record,
                    self.order_record_ttl,
                    fraud_status,
                ],
            )
        ]
        if result[0] == "completed":
            self.timeline.record(
                cart_id,
                "completion.completed",
                at=at,
                order=order_id,
                orderNumber=order_number,
                path=path,
                fraudStatus=fraud_status,
            )
        return Claim(
            result[0] or "already", order_number=result[1] or None, order_id=result[2] or None
        )

    def release_completion(
        self, cart_id: str, token: str, error: dict[str, Any] | None = None
    ) -> bool:
        """Hand a claim back so another path can complete; keeps ``error`` for operators."""
        result = self._release_completion(
            keys=[self.cart_key(cart_id), self.claims_key, self.events_channel(cart_id)],
            args=[token, json.dumps(error) if error else "", cart_id],
        )
        released = as_text(result) == "released"
        if released:
            code = (error or {}).get("error")
            self.timeline.record(cart_id, "completion.released", at=now_ms(), error=code)
        return released

    def record_mismatch(self, cart_id: str, order_id: str, reasons: list[str]) -> None:
        """Kustom's order does not match the cart: kept for an operator, never auto-fixed."""
        at = now_ms()
        entry = json.dumps({"kustomOrderId": order_id, "reasons": reasons, "at": at})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.cart_key(cart_id), "mismatch", entry)
        pipe.zadd(self.mismatches_key, {cart_id: at})
        pipe.expire(self.mismatches_key, self.ttl)
        self.timeline.add(pipe, cart_id, "completion.mismatch", at=at, order=order_id)
        pipe.execute()

    def open_mismatches(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every cart in the mismatches index, oldest first, with its recorded mismatch
        (None when the cart expired or its field is gone)."""
        carts = [as_text(m) or "" for m in self.redis.zrange(self.mismatches_key, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for cart_id in carts:
            pipe.hget(self.cart_key(cart_id), "mismatch")
        entries = pipe.execute() if carts else []
        return [
            (cart_id, json.loads(raw) if raw else None)
            for cart_id, raw in zip(carts, entries, strict=True)
        ]

    def clear_mismatch(
        self, cart_id: str, *, dismissed: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Take the cart's open mismatch off the cart and the index; returns what it was.

        With ``dismissed`` (an operator handled the order outside), that is kept on the cart
        and the sweeper stops asking Kustom about the cart's order.
        """
        key = self.cart_key(cart_id)

        def clear(pipe: Any) -> dict[str, Any] | None:
            exists, raw = pipe.exists(key), pipe.hget(key, "mismatch")
            pipe.multi()
            pipe.hdel(key, "mismatch")
            pipe.zrem(self.mismatches_key, cart_id)
            if dismissed is not None and exists:
                pipe.hset(key, "mismatch_dismissed", json.dumps(dismissed))
                pipe.zrem(self.open_orders_key, cart_id)
            return json.loads(raw) if raw else None

        result: dict[str, Any] | None = self.redis.transaction(clear, key, value_from_callable=True)
        return result

    def record_acknowledged(self, cart_id: str, order_id: str) -> None:
        at = now_ms()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            self.cart_key(cart_id),
            mapping={"acknowledged_at": at, "acknowledged_order_id": order_id},
        )
        pipe.zrem(self.unacked_key, cart_id)
        self.timeline.add(pipe, cart_id, "acknowledged", at=at, order=order_id)
        pipe.execute()

    def record_callback_seen(
        self, cart_id: str, field: str, value: str = "", *, order_id: str | None = None
    ) -> None:
        """Note a push or fraud notification (the sweeper looks at when the last came)."""
        key = self.cart_key(cart_id)
        if self.redis.exists(key):
            at = now_ms()
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(key, field, value or str(at))
            event = _SEEN_EVENTS.get(field, f"callback.{field}")
            self.timeline.add(pipe, cart_id, event, at=at, order=order_id, value=value or None)
            pipe.execute()

    def record_fraud_decision(self, cart_id: str, order_id: str, decision: str) -> bool:
        """Kustom's fraud decision on the cart's order, kept as it arrives (forwarding to
        the commerce backend comes after, with retries). False: not the cart's order."""
        key = self.cart_key(cart_id)
        orders = self.redis.hmget(key, "order_id", "completion_order_id")
        if order_id not in {as_text(o) for o in orders if o}:
            return False
        at = now_ms()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            key,
            mapping={
                "fraud_decision": decision,
                "fraud_decision_order_id": order_id,
                "fraud_decision_at": at,
            },
        )
        self.timeline.add(
            pipe, cart_id, "callback.fraud_decision", at=at, order=order_id, decision=decision
        )
        pipe.execute()
        return True

    def completed_order(self, cart_id: str) -> dict[str, Any] | None:
        """The long-lived record of the cart's completed Kustom order, if any."""
        raw = self.redis.get(self.order_record_key(cart_id))
        return json.loads(raw) if raw else None

    # Sweeper support -------------------------------------------------------------------
    # The indexes above as the sweeper (kustom_app/reconcile.py) reads and tends them, and
    # its own records. An index is read oldest first, a page at a time: from the
    # ``start``-th entry due, at most ``count``.

    def stale_syncing(self, older_than_ms: int, limit: int, *, now: int | None = None) -> list[str]:
        """Carts that have been waiting for a sync longer than ``older_than_ms``."""
        cutoff = (now_ms() if now is None else now) - older_than_ms
        return self.carts_syncing_since(cutoff, count=limit)

    def carts_syncing_since(self, since: int, *, start: int = 0, count: int) -> list[str]:
        """Carts whose Kustom order has been behind the cart since ``since`` (ms) or before."""
        return self._due(self.syncing_key, since, start, count)

    def claims_expired_by(self, at: int, *, start: int = 0, count: int) -> list[str]:
        """Carts whose completion claim's lease ended at ``at`` (ms) or before."""
        return self._due(self.claims_key, at, start, count)

    def unacknowledged_since(self, since: int, *, start: int = 0, count: int) -> list[str]:
        """Completed carts whose Kustom order has awaited its ack since ``since`` or before."""
        return self._due(self.unacked_key, since, start, count)

    def open_orders_due(self, at: int, *, count: int) -> list[str]:
        """Carts whose Kustom order is due for the sweeper's look at ``at`` (ms)."""
        return self._due(self.open_orders_key, at, 0, count)

    def _due(self, index: str, max_score: int, start: int, count: int) -> list[str]:
        members = self.redis.zrangebyscore(index, "-inf", max_score, start=start, num=count)
        return [as_text(m) or "" for m in members]

    def forget_syncing(self, cart_id: str) -> None:
        self.redis.zrem(self.syncing_key, cart_id)

    def forget_claim(self, cart_id: str) -> None:
        """Take the cart off the claims index: it expired or its completion moved on."""
        self.redis.zrem(self.claims_key, cart_id)

    def forget_unacknowledged(self, cart_id: str) -> None:
        """Take the cart off the unacknowledged index: acknowledged, expired or moved on."""
        self.redis.zrem(self.unacked_key, cart_id)

    def forget_open_order(self, cart_id: str) -> None:
        """Stop the sweeper asking Kustom about the cart's order."""
        self.redis.zrem(self.open_orders_key, cart_id)

    def check_open_order_at(self, cart_id: str, at: int) -> None:
        """When (ms) the sweeper should next ask Kustom about the cart's order."""
        self.redis.zadd(self.open_orders_key, {cart_id: at})

    def reconcile_lock(self, *, timeout: float) -> Lock:
        """One sweeper run at a time: taken without waiting, outlives the longest run."""
        return self.redis.lock(f"{self.prefix}:lock:reconcile", timeout=timeout, blocking_timeout=0)

    def mark_requeued(self, member: str, now: int, *, spacing_ms: int) -> bool:
        """Record that the sweeper re-queues ``member`` (``kind:id``) at ``now``; False, and
        nothing recorded, when it did so within ``spacing_ms``: that job may only be slow."""
        last = self.redis.zscore(self._requeued_key, member)
        if last is not None and now - int(last) < spacing_ms:
            return False
        self.redis.zadd(self._requeued_key, {member: now})
        return True

    def forget_requeued_before(self, before: int, *, ttl_seconds: int) -> None:
        """Drop re-queue records older than ``before``; all of them expire when no run has
        come for ``ttl_seconds``."""
        self.redis.zremrangebyscore(self._requeued_key, "-inf", before)
        self.redis.expire(self._requeued_key, ttl_seconds)

    def record_reconcile_run(self, summary: dict[str, Any], *, ttl_seconds: int) -> None:
        """Keep what the last sweeper run found and fixed, for operators."""
        self.redis.set(self._reconcile_run_key, json.dumps(summary), ex=ttl_seconds)
