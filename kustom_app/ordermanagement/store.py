"""The Redis store of payment operations: one record per event id, and three indexes.

Every change of a record is one Lua script (``kustom_app/lua/*_payment*.lua``): recording
an operation, taking its lease, recording its outcome, settling its result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from kustom_app.ordermanagement.events import PaymentRequest
from kustom_app.ordermanagement.kinds import EVENT_ID_FIELD, KUSTOM_ID_FIELD, QUEUED
from kustom_app.redis_scripts import as_text, load_script
from kustom_app.state import now_ms


@dataclass(frozen=True)
class PaymentRecord:
    kind: str
    op_id: str
    cart_id: str
    order_id: str
    status: str
    amount: int | None
    currency: str | None
    kustom_body: dict[str, Any]
    kustom_id: str | None
    error: dict[str, Any] | None
    result_delivered: bool
    attempt: int
    fingerprint: str
    fields: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status != QUEUED

    def result_body(self) -> dict[str, Any]:
        """What the commerce backend receives (CONTRACT section 5)."""
        return {
            EVENT_ID_FIELD[self.kind]: self.op_id,
            "status": self.status,
            KUSTOM_ID_FIELD[self.kind]: self.kustom_id,
            "error": self.error,
        }

    def answer(self) -> dict[str, Any]:
        """The 202 body of the event endpoint."""
        return {EVENT_ID_FIELD[self.kind]: self.op_id, "status": self.status}


def split_member(member: str) -> tuple[str, str]:
    """``"capture:cap-1"`` → ``("capture", "cap-1")`` (ids may contain colons)."""
    kind, _, op_id = member.partition(":")
    return kind, op_id


class PaymentStore:
    """Operations in Redis; every key under the prefix, every key with a TTL.

    ``{prefix}:{kind}:{id}`` (hash)            one operation: status, amounts, Kustom's id,
                                               error, result_delivered, lease
    ``{prefix}:payments:pending`` (zset)       queued operations, scored by (re)queue time
    ``{prefix}:payments:undelivered`` (zset)   results not yet delivered, by (re)send time
    ``{prefix}:payments:cart:{cartId}`` (set)  the cart's operations (a cancel waits for
                                               queued captures)
    """

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._claim = load_script(client, "claim_payment")
        self._begin = load_script(client, "begin_payment")
        self._finish = load_script(client, "finish_payment")
        self._settle = load_script(client, "settle_payment_result")

    def record_key(self, kind: str, op_id: str) -> str:
        return f"{self.prefix}:{kind}:{op_id}"

    @property
    def pending_key(self) -> str:
        return f"{self.prefix}:payments:pending"

    @property
    def undelivered_key(self) -> str:
        return f"{self.prefix}:payments:undelivered"

    def cart_key(self, cart_id: str) -> str:
        return f"{self.prefix}:payments:cart:{cart_id}"

    def load(self, kind: str, op_id: str) -> PaymentRecord | None:
        raw = self.redis.hgetall(self.record_key(kind, op_id))
        if not raw:
            return None
        f = {as_text(k) or "": as_text(v) or "" for k, v in raw.items()}
        return PaymentRecord(
            kind=kind,
            op_id=op_id,
            cart_id=f.get("cartId", ""),
            order_id=f.get("orderId", ""),
            status=f.get("status", QUEUED),
            amount=int(f["amount"]) if f.get("amount") else None,
            currency=f.get("currency") or None,
            kustom_body=json.loads(f["kustomBody"]) if f.get("kustomBody") else {},
            kustom_id=f.get(KUSTOM_ID_FIELD.get(kind, "")) or None,
            error=json.loads(f["error"]) if f.get("error") else None,
            result_delivered=f.get("result_delivered") == "1",
            attempt=int(f.get("attempt") or 1),
            fingerprint=f.get("fingerprint", ""),
            fields=f,
        )

    def claim(
        self,
        request: PaymentRequest,
        order_id: str,
        *,
        requeue_failed: bool,
        now: int | None = None,
    ) -> tuple[str, str, str]:
        """Record the operation unless its id is known: (action, status, fingerprint)."""
        member = f"{request.kind}:{request.op_id}"
        fields = [
            "kind", request.kind,
            "cartId", request.cart_id,
            "orderId", order_id,
            "amount", "" if request.amount is None else str(request.amount),
            "currency", request.currency or "",
            "kustomBody", json.dumps(request.kustom_body, separators=(",", ":")),
        ]  # fmt: skip
        result = [
            as_text(x) or ""
            for x in self._claim(
                keys=[
                    self.record_key(request.kind, request.op_id),
                    self.pending_key,
                    self.cart_key(request.cart_id),
                ],
                args=[
                    request.fingerprint,
                    now_ms() if now is None else now,
                    self.ttl,
                    member,
                    "1" if requeue_failed else "0",
                    *fields,
                ],
            )
        ]
        return result[0], result[1], result[2]

    def begin(
        self, kind: str, op_id: str, token: str, *, lease_ms: int, now: int | None = None
    ) -> tuple[str, str]:
        """Take the lease: ("run", attempt) | ("done", status) | ("busy", ms) | ("gone", "")."""
        result = [
            as_text(x) or ""
            for x in self._begin(
                keys=[self.record_key(kind, op_id)],
                args=[token, now_ms() if now is None else now, lease_ms],
            )
        ]
        return result[0], result[1] if len(result) > 1 else ""

    def finish(
        self,
        kind: str,
        op_id: str,
        status: str,
        *,
        kustom_id: str | None = None,
        error: dict[str, Any] | None = None,
        now: int | None = None,
    ) -> tuple[str, str]:
        """Record the outcome once: ("finished", status) the first time, else ("already", s)."""
        result = [
            as_text(x) or ""
            for x in self._finish(
                keys=[self.record_key(kind, op_id), self.pending_key, self.undelivered_key],
                args=[
                    status,
                    KUSTOM_ID_FIELD.get(kind, "kustomId"),
                    kustom_id or "",
                    json.dumps(error) if error else "",
                    now_ms() if now is None else now,
                    f"{kind}:{op_id}",
                    "1" if kind in KUSTOM_ID_FIELD else "0",
                    self.ttl,
                ],
            )
        ]
        return result[0], result[1] if len(result) > 1 else ""

    def settle_result(
        self, kind: str, op_id: str, outcome: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Stop resending a result: it was ``delivered``, or ``refused`` for good."""
        self._settle(
            keys=[self.record_key(kind, op_id), self.undelivered_key],
            args=[f"{kind}:{op_id}", now_ms(), outcome, json.dumps(detail or {})],
        )

    def queued_for_cart(self, cart_id: str, kinds: Iterable[str]) -> list[str]:
        """The cart's operations of these kinds still queued (``kind:id`` members)."""
        wanted = set(kinds)
        members = sorted(as_text(m) or "" for m in self.redis.smembers(self.cart_key(cart_id)))
        queued = []
        for member in members:
            kind, op_id = split_member(member)
            if kind not in wanted:
                continue
            status = as_text(self.redis.hget(self.record_key(kind, op_id), "status"))
            if status == QUEUED:
                queued.append(member)
        return queued

    def _due(self, key: str, older_than_ms: int, limit: int, now: int | None) -> list[str]:
        cutoff = (now_ms() if now is None else now) - older_than_ms
        members = self.redis.zrangebyscore(key, "-inf", cutoff, start=0, num=limit)
        return [as_text(m) or "" for m in members]

    def due_pending(self, older_than_ms: int, limit: int, *, now: int | None = None) -> list[str]:
        """Operations queued (or last re-queued) longer ago than ``older_than_ms``."""
        return self._due(self.pending_key, older_than_ms, limit, now)

    def due_undelivered(
        self, older_than_ms: int, limit: int, *, now: int | None = None
    ) -> list[str]:
        """Results waiting for delivery (or last resent) longer ago than ``older_than_ms``."""
        return self._due(self.undelivered_key, older_than_ms, limit, now)

    def reschedule(self, key: str, member: str, at: int) -> None:
        """Move an index entry to ``at`` (only if it is still there)."""
        self.redis.zadd(key, {member: at}, xx=True)

    def forget(self, key: str, member: str) -> None:
        self.redis.zrem(key, member)
