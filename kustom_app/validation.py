"""OnKustomValidation: the last word before Kustom lets a shopper pay (CONTRACT section 6).

Kustom posts its order to the validation callback when the shopper presses "buy" and waits
at most 3 s for the verdict: 200 approves, 400 ``{"error_type", "error_text"}`` (or a 303)
rejects. The verdict comes from, in this order:

1. the **integrity rule** (always on, built in): Kustom's order must be exactly the payload
   built from the cart's current render, no sync may be in flight, the cart must be open and
   payable, and ``merchant_reference1``/currency must be this cart's. This closes the gap in
   which a shopper pays for a cart that changed a moment ago.
2. the **merchant rules**: plain callables ``rule(hook_input) -> effects`` registered
   through the entry-point group ``kustom_app.validation_rules`` (sorted by entry-point
   name) and ``KUSTOM_VALIDATION_RULES=module:function,...`` (in the order given).

The first ``validationError`` wins. Everything fails closed: a rule that raises, returns
something that is not effects, or overruns its budget rejects with ``approval_failed``
(logged with the rule's name), and so does an answer that would miss the overall deadline.

Hook input (the reference's shape, as Python values)::

    {"hook": "OnKustomValidation", "channelKey": str | None, "currencyCode": "SEK",
     "locale": "sv-SE", "taxIncluded": True,
     "orderTotal": Decimal("549.00"), "orderTaxTotal": Decimal("109.80"),
     "orderLines": [{"productNumber": "TSHIRT-RED-M", "description": "Red T-Shirt",
                     "quantity": 2, "reservedQuantity": 2, "unitPrice": Decimal("250.00"),
                     "salesTotal": Decimal("500.00"), "taxTotal": Decimal("100.00")}]}

Money is `decimal.Decimal` in major units (exactly the cart's figures; a float would not
be), counts are `int`. ``orderLines`` holds the item lines the shopper pays for: lines with
quantity 0 (removed) are left out, shipping is not an order line. Each rule gets its own
copy, so a rule cannot change what the next one sees.
"""

from __future__ import annotations

import contextvars
import copy
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from kustom_app.commerce import CommerceClient, CommerceRejected, CommerceUnavailable
from kustom_app.jobs import Jobs
from kustom_app.logs import event_log
from kustom_app.money import as_decimal
from kustom_app.order_match import same_order_lines
from kustom_app.payload import CartNotPayable, build_order_payload
from kustom_app.render import load_render
from kustom_app.rule_loading import ENTRY_POINT_GROUP, NamedRule, load_rules, process_rules
from kustom_app.state import CartState, CartStore, now_ms
from kustom_app.sync import ingest_render

log = event_log(__name__)

HOOK = "OnKustomValidation"
VALIDATION_ERROR = "validationError"
APPROVAL_FAILED = "approval_failed"
ALLOWED_CODES = frozenset({"address_error", "unsupported_shipping_address", APPROVAL_FAILED})
INTEGRITY_RULE = "integrity"

# Budgets in seconds. Kustom gives up after 3 s; the answer must leave with margin for the
# network and the WSGI server, so everything we do ends by ANSWER_DEADLINE.
ANSWER_DEADLINE = 2.5
COMMERCE_FETCH_BUDGET = 1.5  # a fresh render is nice to have; the stored one is the fallback
RULE_BUDGET = 0.5  # per merchant rule; rules run side by side, so also the whole rule phase
_RULE_RESERVE = 0.6  # kept free for the rules when deciding how long to wait for the backend

MAX_ERROR_TEXT = 1000
CHANGED_TEXT = "Your cart changed while you were paying. Please review your order and try again."
NOT_PAYABLE_TEXT = "This order can no longer be paid for. Please return to the cart."
TRY_AGAIN_TEXT = "We could not approve the order right now. Please try again."

__all__ = [
    "ALLOWED_CODES",
    "ENTRY_POINT_GROUP",
    "HOOK",
    "NamedRule",
    "OrderValidator",
    "Rejection",
    "ValidationOutcome",
    "build_hook_input",
    "check_integrity",
    "first_rejection",
    "load_rules",
    "process_rules",
    "run_rules",
]


@dataclass(frozen=True)
class Rejection:
    """What Kustom is told (``code`` → error_type, ``message`` → error_text) and why."""

    code: str
    message: str
    rule: str
    reason: str = ""  # for logs only; never sent to Kustom or the shopper


@dataclass(frozen=True)
class ValidationOutcome:
    rejection: Rejection | None
    render_source: str  # commerce | stored | none
    sync_hash: str | None = None  # a newer render was stored: the caller must queue its sync
    sync_payload: dict[str, Any] | None = None

    @property
    def approved(self) -> bool:
        return self.rejection is None


# -- hook input -----------------------------------------------------------------------------


def build_hook_input(render: Mapping[str, Any]) -> dict[str, Any]:
    """The OnKustomValidation hook input for a render, exactly in the reference's shape.

    Accepts a render as `load_render` returns it (or as stored: money as strings); money
    comes out as `Decimal` in major units and counts as `int`, see the module docstring.
    """
    lines = [
        {
            "productNumber": line["productNumber"],
            "description": line.get("description"),
            "quantity": int(line["quantity"]),
            "reservedQuantity": int(
                line["quantity"]
                if line.get("reservedQuantity") is None
                else line["reservedQuantity"]
            ),
            "unitPrice": as_decimal(line["unitPrice"]),
            "salesTotal": as_decimal(line["salesTotal"]),
            "taxTotal": as_decimal(line["taxTotal"]),
        }
        for line in render["lines"]
        if int(line["quantity"]) > 0
    ]
    return {
        "hook": HOOK,
        "channelKey": render.get("channelKey"),
        "currencyCode": render["currencyCode"],
        "locale": render.get("locale"),
        "taxIncluded": render["taxIncluded"],
        "orderTotal": as_decimal(render["cartTotal"]),
        "orderTaxTotal": as_decimal(render["cartTaxTotal"]),
        "orderLines": lines,
    }


# -- running rules --------------------------------------------------------------------------

T = TypeVar("T")


class ContextThreadPool(ThreadPoolExecutor):
    """Runs each job in its submitter's context (contextvars): the lines a job logs name
    the cart of the request that waits for it (`kustom_app.logs.bind_cart`)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


_pools_lock = threading.Lock()
_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}


def thread_pool(name: str, workers: int = 32) -> ThreadPoolExecutor:
    # One pool per process (rebuilt after a fork: threads do not survive it). Threads are
    # started on demand, so an idle process pays nothing. Answers and the work they wait on
    # use separate pools so that waiting answers can never starve their own work.
    with _pools_lock:
        entry = _pools.get(name)
        if entry is None or entry[0] != os.getpid():
            executor = ContextThreadPool(max_workers=workers, thread_name_prefix=f"kv-{name}")
            _pools[name] = (os.getpid(), executor)
            return executor
        return entry[1]


def _effects(result: Any) -> list[Mapping[str, Any]]:
    """A rule's result as a list of effects: None, one effect, or an iterable of them."""
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [result]
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise TypeError(f"a rule must return effects, not {type(result).__name__}")
    effects = list(result)  # a generator runs here, inside the rule's time budget
    for effect in effects:
        if not isinstance(effect, Mapping):
            raise TypeError(f"an effect must be a mapping, not {type(effect).__name__}")
    return effects


def first_rejection(rule_name: str, effects: Iterable[Mapping[str, Any]]) -> Rejection | None:
    """The first ``validationError`` among a rule's effects, as Kustom will be told it.

    Other effects are ignored (the hook only accepts or rejects). A code Kustom does not
    know would not render in the iframe: it is logged as a rule bug and sent as
    ``approval_failed``. The message falls back to the code, as in the reference.
    """
    for effect in effects:
        if effect.get("effect") != VALIDATION_ERROR:
            continue
        code = effect.get("code")
        if not isinstance(code, str) or code not in ALLOWED_CODES:
            log.error(
                "kustom.validation.rule_bug", rule=rule_name, reason="unknown_code", code=code
            )
            code = APPROVAL_FAILED
        message = effect.get("message")
        if message is not None and not isinstance(message, str):
            log.error("kustom.validation.rule_bug", rule=rule_name, reason="message_not_text")
            message = None
        text = (message or "").strip() or code
        return Rejection(code, text[:MAX_ERROR_TEXT], rule_name, "validation_error")
    return None


def _call_rule(rule: NamedRule, hook_input: dict[str, Any]) -> list[Mapping[str, Any]]:
    return _effects(rule.func(copy.deepcopy(hook_input)))


def run_rules(
    rules: Iterable[NamedRule],
    hook_input: dict[str, Any],
    *,
    budget: float = RULE_BUDGET,
    deadline: float | None = None,
) -> Rejection | None:
    """Run the rules side by side and return the first rejection in rule order, if any.

    Each rule has ``budget`` seconds (and none past ``deadline``, a `time.monotonic()`
    value). A rule that raises, returns something that is not effects, or overruns,
    rejects with ``approval_failed`` and is logged with its name; its thread is left to
    finish on its own (Python cannot stop a thread), so a rule that hangs for good keeps
    one pool thread busy.
    """
    rules = list(rules)
    if not rules:
        return None
    started = time.monotonic()
    until = started + budget if deadline is None else min(started + budget, deadline)
    pool = thread_pool("rules")
    futures: list[tuple[NamedRule, Future[list[Mapping[str, Any]]]]] = [
        (rule, pool.submit(_call_rule, rule, hook_input)) for rule in rules
    ]
    for rule, future in futures:
        try:
            effects = future.result(timeout=max(0.0, until - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            log.error(
                "kustom.validation.rule_timeout",
                rule=rule.name,
                budget_ms=int((until - started) * 1000),
            )
            return Rejection(APPROVAL_FAILED, TRY_AGAIN_TEXT, rule.name, "rule_timeout")
        except Exception as e:
            log.error(
                "kustom.validation.rule_failed", rule=rule.name, error=type(e).__name__, exc_info=e
            )
            return Rejection(APPROVAL_FAILED, TRY_AGAIN_TEXT, rule.name, "rule_failed")
        rejection = first_rejection(rule.name, effects)
        if rejection is not None:
            return rejection
    return None


# -- the integrity rule ---------------------------------------------------------------------


def _integrity_rejection(reason: str, text: str = CHANGED_TEXT) -> Rejection:
    return Rejection(APPROVAL_FAILED, text, INTEGRITY_RULE, reason)


def check_integrity(
    cart_id: str,
    order: Mapping[str, Any],
    state: CartState | None,
    render: Mapping[str, Any] | None,
) -> Rejection | None:
    """The built-in first rule: is Kustom about to charge exactly the cart as it is now?

    ``order`` is Kustom's order from the callback body (``order_amount``,
    ``order_tax_amount``, ``order_lines``, ``purchase_currency``, ``merchant_reference1``);
    ``render`` the cart's current render (loaded). Rejects ``approval_failed`` when the
    cart is unknown or not open, a sync is in flight (pending != sync hash), the cart
    cannot be paid for, the order is for another cart or currency, or the amounts or the
    lines (type, reference, quantity, unit price, tax rate, totals; in any order) differ
    from the payload built from the render.
    """
    if state is None or render is None:
        return _integrity_rejection("unknown_cart", NOT_PAYABLE_TEXT)
    if state.cart_state != "open":
        return _integrity_rejection(f"cart_{state.cart_state}", NOT_PAYABLE_TEXT)
    if order.get("merchant_reference1") != cart_id:
        return _integrity_rejection("merchant_reference_mismatch", NOT_PAYABLE_TEXT)
    if state.syncing:
        return _integrity_rejection("sync_in_flight")
    try:
        payload = build_order_payload(dict(render))
    except CartNotPayable:
        return _integrity_rejection("cart_not_payable", NOT_PAYABLE_TEXT)
    if str(order.get("purchase_currency") or "").upper() != payload["purchase_currency"]:
        return _integrity_rejection("currency_mismatch")
    if (order.get("order_amount"), order.get("order_tax_amount")) != (
        payload["order_amount"],
        payload["order_tax_amount"],
    ):
        return _integrity_rejection("amount_mismatch")
    if not same_order_lines(order.get("order_lines") or (), payload["order_lines"]):
        return _integrity_rejection("lines_mismatch")
    return None


# -- the whole answer -----------------------------------------------------------------------


def _note_verdict(
    store: CartStore, cart_id: str, order: Mapping[str, Any], outcome: ValidationOutcome
) -> None:
    """Put the verdict on the cart's timeline off the answer's path: Kustom waits for the
    answer, and a slow Redis must not delay it past the deadline."""
    rejection = outcome.rejection
    at = now_ms()

    def note() -> None:
        store.timeline.record(
            cart_id,
            "validation.approved" if rejection is None else "validation.rejected",
            at=at,
            order=order.get("order_id"),
            rule=rejection.rule if rejection else None,
            code=rejection.code if rejection else None,
            source=outcome.render_source,
        )

    thread_pool("work").submit(note)


class OrderValidator:
    """Answers Kustom's validation callback for one process (built once, at start)."""

    def __init__(
        self,
        rules: Iterable[NamedRule] = (),
        *,
        deadline: float = ANSWER_DEADLINE,
        fetch_budget: float = COMMERCE_FETCH_BUDGET,
        rule_budget: float = RULE_BUDGET,
    ) -> None:
        self.rules = tuple(rules)
        self.deadline = deadline
        self.fetch_budget = fetch_budget
        self.rule_budget = rule_budget

    def validate(
        self,
        cart_id: str,
        order: Mapping[str, Any],
        store: CartStore,
        commerce: CommerceClient | None,
        *,
        started: float | None = None,
        jobs: Jobs | None = None,
    ) -> ValidationOutcome:
        """Approve or reject Kustom's ``order`` for ``cart_id``, by the deadline, always.

        ``started`` is the `time.monotonic()` at which the request arrived. Whatever
        happens inside (Redis or the backend hanging, a rule looping) the verdict is back
        ``deadline`` seconds after it; when the work is not done by then the answer is
        ``approval_failed``: a shopper asked to try again is better than a wrong payment.

        A newer render found at the backend is stored and its sync job queued by the same
        Redis call when ``jobs`` can (`Jobs`); otherwise ``outcome.sync_hash`` asks the
        caller to queue it, after answering Kustom.
        """
        started = time.monotonic() if started is None else started
        until = started + self.deadline
        future = thread_pool("answers").submit(
            self._decide, cart_id, order, store, commerce, until, jobs
        )
        try:
            outcome = future.result(timeout=max(0.0, until - time.monotonic()))
        except FutureTimeout:
            outcome = ValidationOutcome(_integrity_rejection("deadline", TRY_AGAIN_TEXT), "none")
        except Exception as e:
            log.error("kustom.validation.failed", cart=cart_id, error=type(e).__name__, exc_info=e)
            outcome = ValidationOutcome(_integrity_rejection("error", TRY_AGAIN_TEXT), "none")
        ms = (time.monotonic() - started) * 1000
        if outcome.rejection is None:
            log.info(
                "kustom.validation.approved",
                cart=cart_id,
                source=outcome.render_source,
                ms=round(ms, 1),
            )
        else:
            log.info(
                "kustom.validation.rejected",
                cart=cart_id,
                rule=outcome.rejection.rule,
                code=outcome.rejection.code,
                reason=outcome.rejection.reason,
                source=outcome.render_source,
                ms=round(ms, 1),
            )
        _note_verdict(store, cart_id, order, outcome)
        return outcome

    def _decide(
        self,
        cart_id: str,
        order: Mapping[str, Any],
        store: CartStore,
        commerce: CommerceClient | None,
        until: float,
        jobs: Jobs | None = None,
    ) -> ValidationOutcome:
        state = store.load(cart_id)
        if state is None or state.render is None:
            # No order of ours can exist for a cart we know nothing about.
            return ValidationOutcome(check_integrity(cart_id, order, None, None), "none")
        stored = load_render(state.render)
        render, source = stored, "stored"
        sync_hash = sync_payload = None
        if commerce is not None:
            found, fresh = self._fetch(cart_id, commerce, until)
            if found == "gone":
                return ValidationOutcome(
                    _integrity_rejection("cart_unknown_to_backend", NOT_PAYABLE_TEXT), "commerce"
                )
            if fresh is not None:
                source = "commerce"
                if fresh["version"] > stored["version"]:
                    # The backend moved on and we missed the event: store the newer render
                    # so a sync brings Kustom's order up to date; until then this is a sync
                    # in flight and the integrity rule rejects.
                    outcome, prepared = ingest_render(store, fresh, jobs)
                    if outcome.accepted:
                        render = fresh
                        state = store.load(cart_id) or state
                        if outcome.enqueue:
                            sync_hash, sync_payload = prepared.hash, prepared.payload
        rejection = check_integrity(cart_id, order, state, render)
        if rejection is None and self.rules:
            rejection = run_rules(
                self.rules, build_hook_input(render), budget=self.rule_budget, deadline=until
            )
        return ValidationOutcome(rejection, source, sync_hash, sync_payload)

    def _fetch(
        self, cart_id: str, commerce: CommerceClient, until: float
    ) -> tuple[str, dict[str, Any] | None]:
        """("fresh", render), ("gone", None) on a 404, or ("fallback", None): use the stored."""
        wait = min(self.fetch_budget, until - time.monotonic() - _RULE_RESERVE)
        if wait <= 0:
            return "fallback", None
        future = thread_pool("work").submit(commerce.get_cart, cart_id, timeout=self.fetch_budget)
        try:
            raw = future.result(timeout=wait)
        except FutureTimeout:
            log.warning("kustom.validation.commerce_slow", cart=cart_id, waited_ms=wait * 1000)
            return "fallback", None
        except CommerceRejected as e:
            if e.status == 404:
                return "gone", None
            log.warning("kustom.validation.commerce_refused", cart=cart_id, status=e.status)
            return "fallback", None
        except CommerceUnavailable as e:
            log.warning("kustom.validation.commerce_unavailable", cart=cart_id, status=e.status)
            return "fallback", None
        try:
            fresh = load_render(raw if isinstance(raw, dict) else {})
        except Exception:
            log.warning("kustom.validation.commerce_invalid_render", cart=cart_id)
            return "fallback", None
        if fresh["cartId"] != cart_id:
            log.warning("kustom.validation.commerce_other_cart", cart=cart_id)
            return "fallback", None
        return "fresh", fresh
