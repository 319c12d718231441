"""The Kustom double's memory: orders, the call and callback logs, faults, idempotency.

Everything is in memory in one object behind one lock, a ``Condition`` over an ``RLock``, so
that tests can wait (``wait_for``) for what the double is told over HTTP or does in its
background threads. ``reset()`` forgets it all; a callback thread started before a reset
records nothing after it (``_generation``).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from playground.kustom.answers import ApiResponse, DoubleError, KustomError
from playground.kustom.rules import is_int
from playground.statefile import StateWriter, read_state

#: Operation names used in the call log, for faults and in ``/_double/...``.
OPERATIONS: tuple[str, ...] = (
    "create_order",
    "get_order",
    "update_order",
    "om_get",
    "acknowledge",
    "merchant_references",
    "capture",
    "refund",
    "cancel",
    "release",
    "get_capture",
    "get_refund",
    "extend_authorization",
)
DEFAULT_PUSH_DELAY_SECONDS = 2.0
# "Kustom Checkout orders are only valid for 48 hours after merchant update or client
# interaction and expire after that" (https://docs.kustom.co/v3/checkout/additional-resources/errors).
ORDER_LIFETIME_SECONDS = 48 * 3600.0
STATE_KIND = "kustom"


class DoubleStore:
    """The double's memory, behind one lock (``self.lock``): orders, logs, faults, answers.

    Holds the orders (each a record of the checkout order, the merchant's order as sent,
    the order-management order and counters), the log of API calls and of the callbacks
    sent to the merchant, the faults waiting for their calls and the answers kept for
    ``Klarna-Idempotency-Key`` replay. What Kustom does with an order is in the parts
    :class:`~playground.kustom.state.KustomDoubleState` is made of.
    """

    def __init__(
        self,
        *,
        username: str = "playground",
        password: str = "playground",  # noqa: S107 - the playground's public dummy login
        latency_seconds: float = 0.0,
        base_url: str | None = None,
        push_delay_seconds: float = DEFAULT_PUSH_DELAY_SECONDS,
        update_delay_seconds: float = 0.0,
        order_lifetime_seconds: float = ORDER_LIFETIME_SECONDS,
        state_file: str | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.base_url = base_url.rstrip("/") if base_url else None
        self.push_timeout_seconds = 10.0
        # The shopper UI's Pay sends the push this long after completing (Kustom: seconds).
        self.push_delay_seconds = float(push_delay_seconds)
        # Each HTTP order update (the merchant's sync) answers this much later, not under the
        # lock: long enough and a person sees the iframe suspended, as with a slow Kustom.
        self.update_delay_seconds = float(update_delay_seconds)
        self.merchant_callback_timeout_seconds = 10.0  # Kustom waits up to 10 s
        self._initial_latency = float(latency_seconds)
        # A Condition over an RLock: `with state.lock:` guards state, waiters get notified.
        self.lock = threading.Condition(threading.RLock())
        self._generation = 0
        # An unpaid checkout order untouched this long answers 404, as at Kustom.
        self.order_lifetime_seconds = float(order_lifetime_seconds)
        self._reset_locked()
        self._writer: StateWriter | None = None
        if state_file:
            saved = read_state(state_file, STATE_KIND)
            if saved is not None:
                self._restore(saved)
            self._writer = StateWriter(state_file, STATE_KIND, self._snapshot)

    # ---------------------------------------------------------------- bookkeeping

    def _reset_locked(self) -> None:
        self.latency_seconds = self._initial_latency
        self._orders: dict[str, dict[str, Any]] = {}
        self._calls: list[dict[str, Any]] = []
        self._faults: dict[str, deque[dict[str, Any]]] = {}
        self._idempotency: dict[str, ApiResponse] = {}
        self._callbacks: list[dict[str, Any]] = []
        # API-wide trouble (``trigger fail`` / ``trigger slow``): every API call, whatever
        # its operation, fails or is slowed while the window lasts or the count is left.
        self._outage: dict[str, Any] | None = None
        self._slowdown: dict[str, Any] | None = None

    # ---------------------------------------------------------------- the state file

    def _snapshot(self) -> dict[str, Any]:
        """What survives a restart: the orders and the idempotent answers."""
        with self.lock:
            return copy.deepcopy(
                {
                    "orders": self._orders,
                    "idempotency": {
                        key: dataclasses.asdict(answer) for key, answer in self._idempotency.items()
                    },
                }
            )

    def _restore(self, saved: dict[str, Any]) -> None:
        orders = saved.get("orders") or {}
        answers = saved.get("idempotency") or {}
        with self.lock:
            self._orders = {str(k): v for k, v in orders.items() if isinstance(v, dict)}
            self._idempotency = {
                str(k): ApiResponse(int(v["status"]), v.get("body"), dict(v.get("headers") or {}))
                for k, v in answers.items()
                if isinstance(v, dict) and "status" in v
            }

    def save_state(self) -> bool:
        """Write the state file if there is one and the orders changed; True if written."""
        return self._writer.save() if self._writer is not None else False

    # ---------------------------------------------------------------- API-wide trouble

    def start_outage(
        self,
        status: int,
        *,
        for_seconds: float | None = None,
        count: int | None = None,
        operation: str | None = None,
        order_id: str | None = None,
    ) -> dict[str, Any]:
        """Every API call (or only ``operation``'s, or only those about ``order_id``)
        answers ``status`` with Kustom's error body, for ``for_seconds`` or for the next
        ``count`` calls; faulted calls do not act."""
        if not is_int(status) or not 400 <= status <= 599:
            raise DoubleError(400, "status must be an int 400..599")
        if operation is not None and operation not in OPERATIONS:
            raise DoubleError(400, f"unknown operation {operation!r}; one of {OPERATIONS}")
        window = _window(for_seconds, count)
        with self.lock:
            self._outage = {
                "status": status, "operation": operation, "order_id": order_id, **window
            }  # fmt: skip
            return self.trouble()

    def start_slowdown(
        self, seconds: float, *, for_seconds: float | None = None, count: int | None = None
    ) -> dict[str, Any]:
        """Every API call answers ``seconds`` later (and then acts normally) for a while."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise DoubleError(400, "seconds must be a number >= 0")
        window = _window(for_seconds, count)
        with self.lock:
            self._slowdown = {"seconds": float(seconds), **window}
            return self.trouble()

    def end_trouble(self) -> None:
        with self.lock:
            self._outage = None
            self._slowdown = None

    def trouble(self) -> dict[str, Any]:
        """The outage and slowdown in force (None each when there is none)."""
        with self.lock:
            now = time.time()
            for name in ("_outage", "_slowdown"):
                window = getattr(self, name)
                if window is not None and not _window_open(window, now):
                    setattr(self, name, None)
            return copy.deepcopy({"outage": self._outage, "slowdown": self._slowdown})

    def take_trouble(self, operation: str, order_id: str | None = None) -> tuple[float, int | None]:
        """For one API call: the extra seconds to wait and the status to fail with (or None);
        uses up one of a counted window's calls."""
        with self.lock:
            now = time.time()
            delay, status = 0.0, None
            slow = self._slowdown
            if slow is not None and _window_open(slow, now):
                delay = slow["seconds"]
                _use(slow)
            outage = self._outage
            if (
                outage is not None
                and _window_open(outage, now)
                and outage["operation"] in (None, operation)
                and outage.get("order_id") in (None, order_id)
            ):
                status = int(outage["status"])
                _use(outage)
            return delay, status

    def reset(self) -> None:
        """Forget orders, calls, faults, idempotency keys and callbacks; restore latency."""
        with self.lock:
            self._generation += 1
            self._reset_locked()
            self.lock.notify_all()

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise DoubleError(400, "latency must be >= 0")
        with self.lock:
            self.latency_seconds = float(seconds)

    def record_call(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._calls.append(entry)
            self.lock.notify_all()

    def calls(
        self, operation: str | None = None, *, order_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The call log: ``{method, path, operation, status, idempotency_key, json, at, ...}``."""
        with self.lock:
            return [
                copy.deepcopy(call)
                for call in self._calls
                if (operation is None or call["operation"] == operation)
                and (order_id is None or call["order_id"] == order_id)
            ]

    def callbacks(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Push / notification requests the double sent to the merchant, with their outcome."""
        with self.lock:
            return [
                copy.deepcopy(item)
                for item in self._callbacks
                if kind is None or item["kind"] == kind
            ]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` (evaluated under the lock) is truthy; return its value."""
        with self.lock:
            result = self.lock.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"condition not met within {timeout}s")
        return result

    def wait_for_calls(
        self, operation: str, count: int = 1, *, timeout: float = 5.0, **filters: Any
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` calls of ``operation`` were answered; return them."""

        def enough() -> list[dict[str, Any]] | None:
            found = self.calls(operation, **filters)
            return found if len(found) >= count else None

        found: list[dict[str, Any]] = self.wait_for(enough, timeout)
        return found

    def wait_for_callbacks(
        self, kind: str = "push", count: int = 1, *, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            found = self.callbacks(kind)
            return found if len(found) >= count else None

        found: list[dict[str, Any]] = self.wait_for(enough, timeout)
        return found

    # ---------------------------------------------------------------- faults

    def add_faults(
        self,
        operation: str,
        statuses: Iterable[int | Mapping[str, Any]] | None = None,
        *,
        delay_seconds: float | None = None,
        count: int | None = None,
    ) -> None:
        """Make the next calls of ``operation`` fail and/or be slow.

        ``statuses``: one entry per call, an int status (Kustom-shaped body, e.g. 503
        ``SERVICE_UNAVAILABLE``) or ``{"status", "error_code"?, "error_messages"?}``; faulted
        calls do not act. ``delay_seconds`` without ``statuses`` slows the next ``count``
        (default 1) calls, which then act normally; with ``statuses`` each fault is delayed.
        """
        if operation not in OPERATIONS:
            raise DoubleError(400, f"unknown operation {operation!r}; one of {OPERATIONS}")
        if delay_seconds is not None and (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or delay_seconds < 0
        ):
            raise DoubleError(400, "delay_seconds must be a number >= 0")
        delay = float(delay_seconds or 0.0)
        entries: list[dict[str, Any]] = []
        if statuses is not None:
            for item in statuses:
                spec: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {"status": item}
                status = spec.get("status")
                if not is_int(status) or not 400 <= status <= 599:
                    raise DoubleError(400, f"fault status must be an int 400..599: {item!r}")
                spec["delay_seconds"] = delay
                entries.append(spec)
        else:
            if delay_seconds is None:
                raise DoubleError(400, "give statuses and/or delay_seconds")
            n = 1 if count is None else count
            if not is_int(n) or n < 1:
                raise DoubleError(400, "count must be an int >= 1")
            entries = [{"status": None, "delay_seconds": delay} for _ in range(n)]
        with self.lock:
            self._faults.setdefault(operation, deque()).extend(entries)

    def clear_faults(self, operation: str | None = None) -> None:
        with self.lock:
            if operation is None:
                self._faults.clear()
            else:
                self._faults.pop(operation, None)

    def pending_faults(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {op: [dict(f) for f in q] for op, q in self._faults.items() if q}

    def take_fault(self, operation: str) -> dict[str, Any] | None:
        with self.lock:
            queue = self._faults.get(operation)
            if not queue:
                return None
            fault = queue.popleft()
            if not queue:
                del self._faults[operation]
            return fault

    # ---------------------------------------------------------------- idempotency

    def idempotent_response(self, key: str) -> ApiResponse | None:
        with self.lock:
            return self._idempotency.get(key)

    def remember_response(self, key: str, response: ApiResponse) -> None:
        with self.lock:
            self._idempotency[key] = copy.deepcopy(response)

    # ---------------------------------------------------------------- lookups

    def _live_record(self, order_id: str) -> dict[str, Any] | None:
        record = self._orders.get(order_id)
        if record is None:
            return None
        if (
            not record["expired"]
            and record["order"]["status"] == "checkout_incomplete"
            and time.time() - record.get("touched_at", time.time()) > self.order_lifetime_seconds
        ):
            record["expired"] = True
        if record["expired"]:
            return None
        return record

    def _touch(self, record: dict[str, Any]) -> None:
        """A merchant update or a shopper interaction: the 48 h start again."""
        record["touched_at"] = time.time()

    def _checkout_record(self, order_id: str) -> dict[str, Any]:
        record = self._live_record(order_id)
        if record is None:
            raise KustomError(404, empty_body=True)
        return record

    def _om_record(self, order_id: str, *, not_found: str = "NO_SUCH_ORDER") -> dict[str, Any]:
        record = self._live_record(order_id)
        if record is None or record["om"] is None:
            raise KustomError(404, not_found, [f"No such order: {order_id}"])
        return record

    def _admin_record(self, order_id: str) -> dict[str, Any]:
        record = self._orders.get(order_id)
        if record is None:
            raise DoubleError(404, f"unknown order {order_id}")
        return record

    def order_ids(self) -> list[str]:
        with self.lock:
            return list(self._orders)

    def stored_order(self, order_id: str) -> dict[str, Any] | None:
        """Everything stored for an order, internal fields included (a copy), or None."""
        with self.lock:
            record = self._orders.get(order_id)
            if record is None:
                return None
            om = record["om"]
            return copy.deepcopy(
                {
                    "order_id": order_id,
                    "checkout": record["order"],
                    "order_management": om,
                    "status": record["order"]["status"],
                    "om_status": om["status"] if om else None,
                    "expired": record["expired"],
                    "update_count": record["update_count"],
                    "acknowledged": record["acknowledged"],
                    "acknowledge_count": record["acknowledge_count"],
                    "authorization_extensions": record["authorization_extensions"],
                    "captures": om["captures"] if om else [],
                    "refunds": om["refunds"] if om else [],
                    "base_url": record["base_url"],
                }
            )


def _window(for_seconds: float | None, count: int | None) -> dict[str, Any]:
    """A trouble window: until a time, for a number of calls, or both (whichever ends first)."""
    if for_seconds is None and count is None:
        raise DoubleError(400, "give for_seconds and/or count")
    if for_seconds is not None and (
        isinstance(for_seconds, bool)
        or not isinstance(for_seconds, int | float)
        or for_seconds <= 0
    ):
        raise DoubleError(400, "for_seconds must be a number > 0")
    if count is not None and (not is_int(count) or count < 1):
        raise DoubleError(400, "count must be an int >= 1")
    return {
        "until": time.time() + for_seconds if for_seconds is not None else None,
        "remaining": count,
    }


def _window_open(window: Mapping[str, Any], now: float) -> bool:
    until, remaining = window.get("until"), window.get("remaining")
    return (until is None or now < until) and (remaining is None or remaining > 0)


def _use(window: dict[str, Any]) -> None:
    if window.get("remaining") is not None:
        window["remaining"] -= 1
