"""A cart's timeline: what happened to it, in order, for operators (`kustom-app cart show`).

``{prefix}:timeline:{cartId}`` (list) holds one compact JSON entry per event, oldest first:
``{"at": <epoch ms>, "event": "<name>", ...}`` with ids, hashes, amounts and statuses only,
never an address, a name or a credential. It is cut to the newest `TIMELINE_LIMIT` entries
and expires with the cart (the cart's TTL, refreshed on every entry; a payment's entries
use the completed order's longer TTL, as captures come weeks later).

Entries are written where the thing happens, in the domain, each with one pipelined
RPUSH + LTRIM + EXPIRE, or inside a write that happens anyway: the render's Lua script
(record_render.lua) adds its own entry, so the render hot path pays no extra round trip.
A timeline is a diagnostic: failing to write one never fails what it describes.

Events: ``render`` (version, hash, queued), ``order.created``, ``order.unusable``,
``sync.pushed`` (hash, next), ``sync.verified``, ``sync.no_answer``, ``sync.order_gone``,
``sync.read_only``, ``sync.rejected``, ``validation.approved|rejected``,
``callback.<operation>`` and ``callback.<operation>.refused`` (address_update,
country_change, shipping_option_update), ``callback.push``, ``callback.fraud_decision``,
``fraud_decision.forwarded``, ``completion.claimed``, ``completion.completed``,
``completion.released``,
``completion.mismatch``, ``acknowledged``, ``payment.<kind>.accepted``,
``payment.<kind>.<status>``, ``sweeper.<fix>``, ``deadletter``, ``operator.<action>``.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from kustom_app.logs import event_log
from kustom_app.redis_scripts import as_text

log = event_log(__name__)

TIMELINE_LIMIT = 200


def timeline_key(prefix: str, cart_id: str) -> str:
    """The timeline list of ``cart_id`` under the service's key prefix."""
    return f"{prefix}:timeline:{cart_id}"


def timeline_entry(event: str, at: int, fields: dict[str, Any]) -> str:
    """One entry as stored: the fields that have a value, after ``at`` and ``event``."""
    kept = {name: value for name, value in fields.items() if value is not None and value != ""}
    return json.dumps({"at": at, "event": event, **kept}, separators=(",", ":"))


class CartTimeline:
    """The timelines of one service (one key prefix)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl_seconds: int,
        limit: int = TIMELINE_LIMIT,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.limit = limit

    def key(self, cart_id: str) -> str:
        return timeline_key(self.prefix, cart_id)

    def add(
        self,
        pipe: Any,
        cart_id: str,
        event: str,
        *,
        at: int,
        ttl_seconds: int | None = None,
        **fields: Any,
    ) -> None:
        """Queue the entry's commands on ``pipe``, a pipeline that is executed anyway."""
        key = self.key(cart_id)
        pipe.rpush(key, timeline_entry(event, at, fields))
        pipe.ltrim(key, -self.limit, -1)
        pipe.expire(key, ttl_seconds or self.ttl)

    def record(
        self,
        cart_id: str,
        event: str,
        *,
        at: int,
        ttl_seconds: int | None = None,
        **fields: Any,
    ) -> None:
        """Add one entry in one round trip; a Redis error is logged, never raised, so a
        diagnostic cannot fail the step it describes."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            self.add(pipe, cart_id, event, at=at, ttl_seconds=ttl_seconds, **fields)
            pipe.execute()
        except redis.RedisError as e:
            log.warning(
                "kustom.timeline.not_recorded", cart=cart_id, event=event, error=type(e).__name__
            )

    def entries(self, cart_id: str) -> list[dict[str, Any]]:
        """The cart's timeline, oldest first (an unreadable entry shows as ``unreadable``)."""
        found = []
        for raw in self.redis.lrange(self.key(cart_id), 0, -1):
            try:
                entry = json.loads(as_text(raw) or "")
            except ValueError:
                entry = None
            found.append(entry if isinstance(entry, dict) else {"event": "unreadable"})
        return found
