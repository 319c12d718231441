"""Captures, refunds and cancels on completed Kustom orders — each one exactly once.

The commerce backend sends an event (CONTRACT section 4); the web layer checks it and
records it here as an *operation* keyed by the backend's own id (``captureId``,
``refundId``, or the cart id for a cancel). Recording is one Lua compare-and-set, so a
repeated event finds the existing operation and reaches Kustom never again. A task then
runs the operation against Kustom's order-management API:

1. take the operation's lease (a redelivered task keeps its id, so it re-takes its own);
2. read the order from Kustom: an earlier attempt may already have landed (a capture or
   refund whose ``reference`` is our id), and what is asked must fit what is left
   (``remaining_authorized_amount`` for a capture, captured minus refunded for a refund),
   in the order's currency — otherwise the operation fails up front, Kustom is not asked;
3. POST with ``Klarna-Idempotency-Key`` derived from the id (UUIDv5), identical on every
   retry and every redelivery, so one event makes at most one capture even when a worker
   dies between Kustom's answer and our bookkeeping;
4. record the outcome once, and queue its result for the commerce backend
   (``POST /captures/<id>/result``, ``/refunds/<id>/result``), resent until delivered.

Event lines (``lines``) come in either of two shapes, told apart per line:

* Kustom's own ``order_line`` (snake_case, integer minor units: ``name``, ``quantity``,
  ``unit_price``, ``total_amount``, optional ``type``, ``reference``, ``tax_rate``,
  ``total_discount_amount``, ``total_tax_amount``, ...): recognised by ``total_amount``,
  checked and passed on as is;
* the cart render's line (``lineId``, ``productNumber``, ``description``, ``quantity``,
  ``unitPrice``, ``discountTotal``, ``salesTotal``, ``taxRate``, ``taxTotal`` in major
  units, optional ``type``): converted exactly, like the checkout payload (tax included).

Either way every line must satisfy ``total_amount = quantity x unit_price -
total_discount_amount`` and the lines must add up to the event's ``amount``; an event that
does not is refused (400) rather than sent. ``shippingInfo`` items are Kustom's
``shipping_info`` objects, keys in snake_case or camelCase (``shippingCompany`` ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import quote

import redis
from marshmallow import ValidationError

from kustom_app.commerce import CommerceClient, CommerceRejected, CommerceUnavailable
from kustom_app.errors import Refusal
from kustom_app.kustom import KustomClient, KustomRejected, idempotency_key
from kustom_app.metrics import PAYMENT_OPERATIONS
from kustom_app.money import NotRepresentable, to_major, to_minor, to_tax_rate
from kustom_app.payload import cut_to_limit, link_problem
from kustom_app.render import CartLineSchema
from kustom_app.state import CartStore, as_text, load_script

if TYPE_CHECKING:
    from kustom_app.services import Services

# The package's name, as before the split: log lines keep the logger they had.
log = logging.getLogger("kustom_app.ordermanagement")

CAPTURE, REFUND, CANCEL = "capture", "refund", "cancel"
KINDS = (CAPTURE, REFUND, CANCEL)
QUEUED, FAILED = "queued", "failed"
CAPTURED, REFUNDED, CANCELLED, RELEASED = "captured", "refunded", "cancelled", "released"

# Kustom's order-management limits (kustom-order-management-api.yml).
MAX_OM_AMOUNT = 200_000_000
MAX_LINES = 1000
MAX_SHIPPING_INFO = 500
MAX_TEXT = 255
MAX_URL = 1024
# Defaults; the service's come from PAYMENT_LEASE_SECONDS and PAYMENT_REQUEUE_AFTER_SECONDS.
# Longer than one GET plus one POST to Kustom can take (2 x (3.05 s connect + 10 s read)).
PAYMENT_LEASE_MS = 60_000
# A repeated event re-queues an operation whose task has not started for this long.
STUCK_QUEUED_MS = 60_000
# Order states in which Kustom takes no more captures.
CLOSED_ORDER_STATES = frozenset({"CANCELLED", "EXPIRED", "CLOSED"})

LINE_TYPES = frozenset(
    {
        "physical",
        "discount",
        "shipping_fee",
        "sales_tax",
        "store_credit",
        "gift_card",
        "digital",
        "surcharge",
        "return_fee",
    }
)
_LINE_INTS = ("quantity", "unit_price", "total_amount", "total_discount_amount")
_LINE_OPTIONAL_INTS = ("tax_rate", "total_tax_amount")
_LINE_TEXTS = {
    "reference": MAX_TEXT,
    "quantity_unit": 8,
    "merchant_data": MAX_URL,
    "product_url": MAX_URL,
    "image_url": MAX_URL,
}
_KUSTOM_LINE_FIELDS = frozenset({"type", "name", *_LINE_INTS, *_LINE_OPTIONAL_INTS, *_LINE_TEXTS})
_SHIPPING_INFO_FIELDS = {
    "shipping_company": 100,
    "shipping_method": 100,
    "tracking_number": 100,
    "tracking_uri": MAX_URL,
    "return_shipping_company": 100,
    "return_tracking_number": 100,
    "return_tracking_uri": MAX_URL,
}
_CAMEL = {
    "".join(part.title() if i else part for i, part in enumerate(name.split("_"))): name
    for name in _SHIPPING_INFO_FIELDS
}
# Where the id Kustom gives an operation is kept, and what the result calls it.
KUSTOM_ID_FIELD = {CAPTURE: "kustomCaptureId", REFUND: "kustomRefundId"}
EVENT_ID_FIELD = {CAPTURE: "captureId", REFUND: "refundId", CANCEL: "cartId"}
SUCCESS_STATUS = {CAPTURE: CAPTURED, REFUND: REFUNDED}


def now_ms() -> int:
    return int(time.time() * 1000)


# Errors ----------------------------------------------------------------------------------


class PaymentEventError(Refusal):
    """A payment event refused before anything is stored (answered with status/code)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details, status=status, code=code)


class OperationBusy(Exception):
    """Another task holds the operation's lease; try again once it may have ended."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"operation busy for {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class CancelDeferred(Exception):
    """Captures of the cart are still queued: cancelling now would make them fail."""

    def __init__(self, waiting_for: list[str]) -> None:
        super().__init__(f"waiting for {', '.join(waiting_for)}")
        self.waiting_for = waiting_for


# Events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRequest:
    """A checked payment event, amounts in minor units, ready to be recorded."""

    kind: str
    op_id: str
    cart_id: str
    amount: int | None = None
    currency: str | None = None
    kustom_body: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """What must be equal for a repeated id to be the same event (money, not wording)."""
        basis = json.dumps([self.kind, self.cart_id, self.amount, self.currency])
        return hashlib.sha256(basis.encode()).hexdigest()[:32]


def _refuse(code: str, message: str, **details: Any) -> PaymentEventError:
    return PaymentEventError(400, code, message, details)


def _minor_amount(amount: Decimal, currency: str, what: str) -> int:
    try:
        minor = to_minor(amount, currency, what=what)
    except NotRepresentable as e:
        raise _refuse("amount_not_representable", e.message, field=what) from e
    if not 1 <= minor <= MAX_OM_AMOUNT:
        raise _refuse(
            "invalid_amount",
            f"{what} must be above zero and at most {to_major(MAX_OM_AMOUNT, currency)} "
            f"{currency}.",
            field=what,
        )
    return minor


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kustom_line(line: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(line) - _KUSTOM_LINE_FIELDS)
    if unknown:
        raise _refuse("invalid_lines", f"{where} has unknown fields {unknown}.", line=where)
    name = line.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TEXT:
        raise _refuse("invalid_lines", f"{where} needs a name of 1 to 255 characters.", line=where)
    out: dict[str, Any] = {"type": line.get("type", "physical"), "name": name}
    if out["type"] not in LINE_TYPES:
        raise _refuse("invalid_lines", f"{where} has an unknown type.", line=where)
    for key in _LINE_INTS + _LINE_OPTIONAL_INTS:
        value = line.get(key, 0 if key not in ("quantity", "unit_price", "total_amount") else None)
        if not _is_int(value) or abs(value) > MAX_OM_AMOUNT:
            raise _refuse(
                "invalid_lines", f"{where} {key} must be an integer in minor units.", line=where
            )
        out[key] = value
    if (
        out["quantity"] < 0
        or out["total_discount_amount"] < 0
        or not 0 <= out["tax_rate"] <= 10_000
    ):
        raise _refuse(
            "invalid_lines", f"{where} has a negative count or a bad tax rate.", line=where
        )
    for key, limit in _LINE_TEXTS.items():
        if key in line:
            if not isinstance(line[key], str) or len(line[key]) > limit:
                raise _refuse("invalid_lines", f"{where} {key} is too long.", line=where)
            out[key] = line[key]
    return out


def _commerce_line(line: dict[str, Any], currency: str, where: str) -> dict[str, Any]:
    try:
        # The type is checked below against the order-management API's own list, which
        # is longer than a cart render's (sales_tax, return_fee).
        loaded = CartLineSchema().load({k: v for k, v in line.items() if k != "type"})
    except ValidationError as e:
        raise _refuse("invalid_lines", f"{where} is not a valid line.", fields=e.messages) from e
    line_type = line.get("type", "physical")
    if line_type not in LINE_TYPES:
        raise _refuse("invalid_lines", f"{where} has an unknown type.", line=where)
    try:
        converted = {
            "type": line_type,
            "reference": cut_to_limit(loaded["productNumber"]),
            "name": cut_to_limit(loaded["description"] or loaded["productNumber"]),
            "quantity": loaded["quantity"],
            "quantity_unit": "pcs",
            "unit_price": to_minor(loaded["unitPrice"], currency, what=f"{where} unitPrice"),
            "tax_rate": to_tax_rate(loaded["taxRate"], what=f"{where} taxRate"),
            "total_amount": to_minor(loaded["salesTotal"], currency, what=f"{where} salesTotal"),
            "total_discount_amount": to_minor(
                loaded["discountTotal"], currency, what=f"{where} discountTotal"
            ),
            "total_tax_amount": to_minor(loaded["taxTotal"], currency, what=f"{where} taxTotal"),
        }
    except NotRepresentable as e:
        raise _refuse("amount_not_representable", e.message, line=where) from e
    except ValueError as e:
        raise _refuse("invalid_lines", str(e), line=where) from e
    for key, target in (("productUrl", "product_url"), ("imageUrl", "image_url")):
        if loaded[key] and link_problem(loaded[key]) is None:
            converted[target] = loaded[key]
    return converted


def kustom_order_lines(lines: list[Any], currency: str, amount: int) -> list[dict[str, Any]]:
    """Event lines as Kustom ``order_lines`` (see the module docstring for both shapes).

    Raises `PaymentEventError` (400) when a line is malformed, its arithmetic is off, or
    the lines do not add up to ``amount`` (minor units).
    """
    if len(lines) > MAX_LINES:
        raise _refuse("invalid_lines", f"At most {MAX_LINES} lines are accepted.")
    result = []
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(line, dict):
            raise _refuse("invalid_lines", f"{where} must be an object.", line=where)
        converted = (
            _kustom_line(line, where)
            if "total_amount" in line
            else _commerce_line(line, currency, where)
        )
        expected = (
            converted["quantity"] * converted["unit_price"] - converted["total_discount_amount"]
        )
        if converted["total_amount"] != expected:
            raise _refuse(
                "invalid_lines",
                f"{where} total {converted['total_amount']} does not equal quantity x unit "
                f"price - discount = {expected} (minor units).",
                line=where,
            )
        result.append(converted)
    total = sum(line["total_amount"] for line in result)
    if result and total != amount:
        raise _refuse(
            "lines_do_not_match_amount",
            f"The lines add up to {to_major(total, currency)} {currency}, the amount is "
            f"{to_major(amount, currency)} {currency}.",
        )
    return result


def kustom_shipping_info(items: list[Any]) -> list[dict[str, str]]:
    """``shippingInfo`` as Kustom's ``shipping_info`` list (camelCase keys accepted)."""
    if len(items) > MAX_SHIPPING_INFO:
        raise _refuse("invalid_shipping_info", f"At most {MAX_SHIPPING_INFO} items are accepted.")
    result = []
    for index, item in enumerate(items):
        where = f"shippingInfo[{index}]"
        if not isinstance(item, dict):
            raise _refuse("invalid_shipping_info", f"{where} must be an object.")
        converted: dict[str, str] = {}
        for key, value in item.items():
            name = _CAMEL[key] if key in _CAMEL else str(key)
            limit = _SHIPPING_INFO_FIELDS.get(name)
            if limit is None:
                raise _refuse("invalid_shipping_info", f"{where} has an unknown field {key!r}.")
            if not isinstance(value, str) or len(value) > limit:
                raise _refuse(
                    "invalid_shipping_info",
                    f"{where} {key} must be text of at most {limit} characters.",
                )
            converted[name] = value
        result.append(converted)
    return result


def _extras(event: dict[str, Any], amount: int, *, shipping: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if event.get("description"):
        body["description"] = event["description"]
    if event.get("lines"):
        body["order_lines"] = kustom_order_lines(event["lines"], event["currencyCode"], amount)
    if shipping and event.get("shippingInfo"):
        body["shipping_info"] = kustom_shipping_info(event["shippingInfo"])
    return body


def prepare_capture(event: dict[str, Any]) -> PaymentRequest:
    """A capture event (as the web schema loads it: Decimal amount) → a `PaymentRequest`."""
    currency = event["currencyCode"]
    amount = _minor_amount(event["amount"], currency, "amount")
    return PaymentRequest(
        CAPTURE,
        event["captureId"],
        event["cartId"],
        amount,
        currency,
        _extras(event, amount, shipping=True),
    )


def prepare_refund(event: dict[str, Any]) -> PaymentRequest:
    """A refund event → a `PaymentRequest` (no shipping info: Kustom takes none)."""
    currency = event["currencyCode"]
    amount = _minor_amount(event["amount"], currency, "amount")
    return PaymentRequest(
        REFUND,
        event["refundId"],
        event["cartId"],
        amount,
        currency,
        _extras(event, amount, shipping=False),
    )


def prepare_cancel(cart_id: str) -> PaymentRequest:
    """A cancel is keyed by the cart: one Kustom order, one cancel (or release)."""
    return PaymentRequest(CANCEL, cart_id, cart_id)


# State -----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Accepted:
    kind: str
    op_id: str
    status: str
    enqueue: bool

    def answer(self) -> dict[str, Any]:
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


# The operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationOutcome:
    status: str
    newly_finished: bool
    deliver: bool  # a result for the commerce backend was just recorded


def _kustom_error(e: KustomRejected) -> dict[str, Any]:
    return {
        "code": e.error_code or f"kustom_http_{e.status}",
        "message": "; ".join(e.error_messages) or str(e),
        "kustomStatus": e.status,
        "correlationId": e.correlation_id,
    }


def _by_reference(items: Any, id_field: str, reference: str) -> str | None:
    for item in items or []:
        if isinstance(item, dict) and item.get("reference") == reference and item.get(id_field):
            return str(item[id_field])
    return None


class PaymentOperations:
    """Accepts payment events and runs them against Kustom, once each."""

    def __init__(
        self,
        store: CartStore,
        payments: PaymentStore,
        kustom: KustomClient,
        commerce: CommerceClient | None,
        *,
        lease_ms: int = PAYMENT_LEASE_MS,
        stuck_queued_ms: int = STUCK_QUEUED_MS,
    ) -> None:
        self.store = store
        self.payments = payments
        self.kustom = kustom
        self.commerce = commerce
        self.lease_ms = lease_ms
        self.stuck_queued_ms = stuck_queued_ms

    # Web side ----------------------------------------------------------------------------

    def accept(self, request: PaymentRequest) -> Accepted:
        """Record the event's operation once; a repeat answers the existing status.

        Raises `PaymentEventError`: 404 ``cart_not_found``, 409 ``cart_not_completed`` (no
        completed Kustom order for the cart yet), 409 ``idempotency_conflict`` (the id was
        used for another cart, amount or currency).
        """
        existing = self.payments.load(request.kind, request.op_id)
        if existing is not None:
            self._same_event(existing.fingerprint, request)
            if not (request.kind == CANCEL and existing.status == FAILED):
                return Accepted(
                    request.kind, request.op_id, existing.status, enqueue=self._stuck(existing)
                )
        order = self.store.completed_order(request.cart_id)
        if order is None:
            if self.store.load(request.cart_id) is None:
                raise PaymentEventError(
                    404, "cart_not_found", f"Nothing is known about cart {request.cart_id}."
                )
            raise PaymentEventError(
                409,
                "cart_not_completed",
                f"Cart {request.cart_id} has no completed Kustom order yet.",
            )
        action, status, fingerprint = self.payments.claim(
            request, str(order["kustomOrderId"]), requeue_failed=request.kind == CANCEL
        )
        if action == "exists":
            self._same_event(fingerprint, request)
        log.info(
            "kustom.%s.accepted id=%s cart=%s order=%s amount=%s currency=%s action=%s",
            request.kind,
            request.op_id,
            request.cart_id,
            order["kustomOrderId"],
            request.amount,
            request.currency,
            action,
        )
        return Accepted(request.kind, request.op_id, status, enqueue=action != "exists")

    def _stuck(self, record: PaymentRecord) -> bool:
        """Queued long ago and never started: its task was likely lost (say, the broker
        refused the first enqueue). The repeated event queues it again: twins are safe."""
        if record.status != QUEUED or record.fields.get("started_at"):
            return False
        return now_ms() - int(record.fields.get("queued_at") or 0) > self.stuck_queued_ms

    @staticmethod
    def _same_event(fingerprint: str, request: PaymentRequest) -> None:
        if fingerprint and fingerprint != request.fingerprint:
            raise PaymentEventError(
                409,
                "idempotency_conflict",
                f"{EVENT_ID_FIELD[request.kind]} {request.op_id} was already used for another "
                "cart, amount or currency.",
            )

    # Worker side -------------------------------------------------------------------------

    def execute(self, kind: str, op_id: str, token: str) -> OperationOutcome:
        """Run a queued operation against Kustom (no-op once it has an outcome).

        Raises `OperationBusy`, `CancelDeferred`, and `KustomUnavailable` (retry later with
        the same idempotency key). Kustom's refusals become a ``failed`` outcome.
        """
        action, detail = self.payments.begin(kind, op_id, token, lease_ms=self.lease_ms)
        if action == "gone":
            log.warning("kustom.%s.gone id=%s", kind, op_id)
            return OperationOutcome("gone", False, False)
        if action == "done":
            return OperationOutcome(detail, False, False)
        if action == "busy":
            raise OperationBusy(int(detail or 0))
        record = self.payments.load(kind, op_id)
        if record is None:  # pragma: no cover - expired between two reads
            return OperationOutcome("gone", False, False)
        if kind == CAPTURE:
            return self._capture(record)
        if kind == REFUND:
            return self._refund(record)
        return self._cancel(record)

    def _finish(
        self,
        record: PaymentRecord,
        status: str,
        *,
        kustom_id: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> OperationOutcome:
        action, final = self.payments.finish(
            record.kind, record.op_id, status, kustom_id=kustom_id, error=error
        )
        newly = action == "finished"
        if newly:
            PAYMENT_OPERATIONS.labels(record.kind, status).inc()
        log_fn = log.info if status != FAILED else log.warning
        log_fn(
            "kustom.%s.%s id=%s cart=%s order=%s amount=%s kustom_id=%s error=%s recorded=%s",
            record.kind,
            status,
            record.op_id,
            record.cart_id,
            record.order_id,
            record.amount,
            kustom_id,
            (error or {}).get("code"),
            action,
        )
        return OperationOutcome(final or status, newly, newly and record.kind in KUSTOM_ID_FIELD)

    def _fail(self, record: PaymentRecord, code: str, message: str) -> OperationOutcome:
        return self._finish(record, FAILED, error={"code": code, "message": message})

    def _money(self, record: PaymentRecord, minor: int) -> str:
        currency = record.currency or ""
        return f"{to_major(minor, currency)} {currency}"

    def _om_order(self, record: PaymentRecord) -> dict[str, Any] | OperationOutcome:
        try:
            return self.kustom.get_om_order(
                record.order_id, cart=record.cart_id, **{record.kind: record.op_id}
            )
        except KustomRejected as e:
            if e.status == 404:
                return self._fail(
                    record,
                    "order_not_found",
                    f"Kustom does not know order {record.order_id} (or it has expired).",
                )
            return self._finish(record, FAILED, error=_kustom_error(e))

    def _check_currency(self, record: PaymentRecord, order: dict[str, Any]) -> str | None:
        currency = str(order.get("purchase_currency") or "").upper()
        if currency != record.currency:
            return f"The order is in {currency or 'no currency'}, the event in {record.currency}."
        return None

    def _capture(self, record: PaymentRecord) -> OperationOutcome:
        order = self._om_order(record)
        if isinstance(order, OperationOutcome):
            return order
        landed = _by_reference(order.get("captures"), "capture_id", record.op_id)
        if landed:  # an earlier attempt reached Kustom; its answer never reached us
            return self._finish(record, CAPTURED, kustom_id=landed)
        mismatch = self._check_currency(record, order)
        if mismatch:
            return self._fail(record, "currency_mismatch", mismatch)
        amount = record.amount or 0
        state = str(order.get("status") or "").upper()
        if state in CLOSED_ORDER_STATES:
            return self._fail(
                record,
                "order_not_capturable",
                f"The Kustom order is {state}; nothing can be captured.",
            )
        remaining = int(order.get("remaining_authorized_amount") or 0)
        if amount > remaining:
            return self._fail(
                record,
                "capture_exceeds_authorization",
                f"The capture of {self._money(record, amount)} exceeds the remaining "
                f"authorized amount of {self._money(record, remaining)}.",
            )
        body = {"captured_amount": amount, "reference": record.op_id, **record.kustom_body}
        try:
            kustom_id = self.kustom.create_capture(
                record.order_id,
                body,
                idempotency_key(CAPTURE, record.op_id),
                cart=record.cart_id,
                capture=record.op_id,
            )
        except KustomRejected as e:
            return self._finish(record, FAILED, error=_kustom_error(e))
        return self._finish(record, CAPTURED, kustom_id=kustom_id)

    def _refund(self, record: PaymentRecord) -> OperationOutcome:
        order = self._om_order(record)
        if isinstance(order, OperationOutcome):
            return order
        landed = _by_reference(order.get("refunds"), "refund_id", record.op_id)
        if landed:
            return self._finish(record, REFUNDED, kustom_id=landed)
        mismatch = self._check_currency(record, order)
        if mismatch:
            return self._fail(record, "currency_mismatch", mismatch)
        amount = record.amount or 0
        refundable = int(order.get("captured_amount") or 0) - int(order.get("refunded_amount") or 0)
        if amount > refundable:
            return self._fail(
                record,
                "refund_exceeds_captured",
                f"The refund of {self._money(record, amount)} exceeds what is captured and not "
                f"yet refunded, {self._money(record, max(refundable, 0))}.",
            )
        body = {"refunded_amount": amount, "reference": record.op_id, **record.kustom_body}
        try:
            kustom_id = self.kustom.create_refund(
                record.order_id,
                body,
                idempotency_key(REFUND, record.op_id),
                cart=record.cart_id,
                refund=record.op_id,
            )
        except KustomRejected as e:
            return self._finish(record, FAILED, error=_kustom_error(e))
        return self._finish(record, REFUNDED, kustom_id=kustom_id)

    def _cancel(self, record: PaymentRecord) -> OperationOutcome:
        waiting = self.payments.queued_for_cart(record.cart_id, [CAPTURE])
        if waiting:
            raise CancelDeferred(waiting)
        order = self._om_order(record)
        if isinstance(order, OperationOutcome):
            return order
        state = str(order.get("status") or "").upper()
        if state == "CANCELLED":
            return self._finish(record, CANCELLED)
        # A new attempt after a failed one needs a new key: Kustom would replay the refusal.
        attempt = f"{record.order_id}:{record.attempt}"
        try:
            if int(order.get("captured_amount") or 0) == 0:
                self.kustom.cancel_order(
                    record.order_id, idempotency_key(CANCEL, attempt), cart=record.cart_id
                )
                return self._finish(record, CANCELLED)
            if int(order.get("remaining_authorized_amount") or 0) > 0:
                self.kustom.release_remaining_authorization(
                    record.order_id, idempotency_key("release", attempt), cart=record.cart_id
                )
        except KustomRejected as e:
            return self._finish(record, FAILED, error=_kustom_error(e))
        return self._finish(record, RELEASED)

    def deliver_result(self, kind: str, op_id: str) -> str:
        """POST the operation's result to the commerce backend unless it already has it.

        Raises `CommerceUnavailable` (retry) and `CommerceRejected` (recorded as refused:
        not resent, kept for an operator).
        """
        record = self.payments.load(kind, op_id)
        if record is None:
            return "gone"
        if not record.finished:
            return "not_finished"
        if record.result_delivered or kind not in KUSTOM_ID_FIELD:
            return "already_delivered"
        if self.commerce is None:
            raise CommerceUnavailable("COMMERCE_API_URL is not set", operation=f"{kind}_result")
        path = f"/{kind}s/{quote(op_id, safe='')}/result"
        try:
            self.commerce.post(
                f"{kind}_result",
                path,
                record.result_body(),
                headers={"Idempotency-Key": f"kustom-{kind}-result-{op_id}"},
            )
        except CommerceRejected as e:
            self.payments.settle_result(
                kind, op_id, "refused", {"status": e.status, "code": e.error_code}
            )
            log.error(
                "kustom.%s.result_refused id=%s status=%s code=%s",
                kind,
                op_id,
                e.status,
                e.error_code,
            )
            raise
        self.payments.settle_result(kind, op_id, "delivered")
        log.info("kustom.%s.result_delivered id=%s status=%s", kind, op_id, record.status)
        return "delivered"


def build_payment_operations(services: Services) -> PaymentOperations:
    """The operations of one process, on its Redis, Kustom and commerce clients."""
    settings = services.settings
    payments = PaymentStore(
        services.redis,
        prefix=settings.key_prefix,
        ttl_seconds=settings.order_record_ttl_seconds,
    )
    return PaymentOperations(
        services.store,
        payments,
        services.kustom,
        services.commerce,
        lease_ms=int(settings.payment_lease_seconds * 1000),
        stuck_queued_ms=int(settings.payment_requeue_after_seconds * 1000),
    )
