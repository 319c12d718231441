"""Order Management in the Kustom double: captures, refunds, cancel, release, extend.

The bodies are checked against kustom-order-management-api.yml (amounts 1..200 000 000,
strings up to 255, at most 1000 order lines and 500 shipping_info entries), and the order's
state against the documented refusals: no capture beyond the remaining authorization or
while the fraud status is not ACCEPTED, no refund beyond what was captured, no cancel once
captured, no release without a capture. Idempotency-key replay is the HTTP layer's.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from playground.kustom.answers import KustomError, bad_value, now, timestamp
from playground.kustom.rules import MAX_ORDER_LINES, check_string, is_int
from playground.kustom.store import DoubleStore

MAX_OM_AMOUNT = 200_000_000
AUTHORIZATION_DAYS = 28


def _validate_om_amount(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    return [] if is_int(value) and 1 <= value <= MAX_OM_AMOUNT else [name]


def _validate_om_extras(body: Mapping[str, Any], *, shipping_info: bool) -> list[str]:
    bad: list[str] = []
    for name in ("reference", "description"):
        if name in body and not check_string(body[name], max_length=255):
            bad.append(name)
    lines = body.get("order_lines")
    if lines is not None and not (
        isinstance(lines, list)
        and len(lines) <= MAX_ORDER_LINES
        and all(isinstance(line, dict) for line in lines)
    ):
        bad.append("order_lines")
    if shipping_info:
        info = body.get("shipping_info")
        if info is not None and not (
            isinstance(info, list)
            and len(info) <= 500
            and all(isinstance(item, dict) for item in info)
        ):
            bad.append("shipping_info")
    return bad


def _checked_body(payload: Any, amount: str, *, shipping_info: bool) -> dict[str, Any]:
    """A capture's or refund's body, or ``400 BAD_VALUE`` naming each bad field."""
    if not isinstance(payload, dict):
        raise bad_value(["body"])
    bad = _validate_om_amount(payload, amount)
    bad += _validate_om_extras(payload, shipping_info=shipping_info)
    if bad:
        raise bad_value(bad)
    return payload


class OrderManagement(DoubleStore):
    """``/ordermanagement/v1/orders``: what the merchant does with a completed order."""

    def om_order(self, order_id: str) -> dict[str, Any]:
        """``GET /ordermanagement/v1/orders/{id}``."""
        with self.lock:
            return copy.deepcopy(self._om_record(order_id)["om"])

    def acknowledge(self, order_id: str) -> None:
        with self.lock:
            record = self._om_record(order_id)
            record["acknowledged"] = True
            record["acknowledge_count"] += 1

    def update_merchant_references(self, order_id: str, payload: Any) -> None:
        with self.lock:
            record = self._om_record(order_id)
            if not isinstance(payload, dict):
                raise bad_value(["body"])
            bad = [
                name
                for name in ("merchant_reference1", "merchant_reference2")
                if name in payload and not check_string(payload[name], max_length=255)
            ]
            if bad:
                raise bad_value(bad)
            om = record["om"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "NOT_ALLOWED", ["Can not update a cancelled order"])
            for name in ("merchant_reference1", "merchant_reference2"):
                if name in payload:
                    om[name] = payload[name]

    def capture(self, order_id: str, payload: Any) -> dict[str, Any]:
        """``POST .../captures``: the new capture (a copy)."""
        with self.lock:
            record = self._om_record(order_id)
            payload = _checked_body(payload, "captured_amount", shipping_info=True)
            om = record["om"]
            amount = payload["captured_amount"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "NOT_ALLOWED", ["Order is cancelled"])
            if om["fraud_status"] != "ACCEPTED":
                raise KustomError(
                    403,
                    "CAPTURE_NOT_ALLOWED",
                    [f"Capture not allowed: fraud_status is {om['fraud_status']}"],
                )
            if amount > om["remaining_authorized_amount"]:
                raise KustomError(
                    403,
                    "CAPTURE_NOT_ALLOWED",
                    [
                        "Captured amount is higher than the remaining authorized amount "
                        f"({om['remaining_authorized_amount']})"
                    ],
                )
            capture = {
                "capture_id": str(uuid.uuid4()),
                "klarna_reference": f"{om['klarna_reference']}-{len(om['captures']) + 1}",
                "captured_amount": amount,
                "captured_at": timestamp(),
                "description": payload.get("description", ""),
                "order_lines": copy.deepcopy(payload.get("order_lines", [])),
                "refunded_amount": 0,
                "billing_address": copy.deepcopy(om["billing_address"]),
                "shipping_address": copy.deepcopy(om["shipping_address"]),
                "shipping_info": copy.deepcopy(payload.get("shipping_info", [])),
            }
            if "reference" in payload:
                capture["reference"] = payload["reference"]
            om["captures"].append(capture)
            om["captured_amount"] += amount
            om["remaining_authorized_amount"] -= amount
            om["status"] = "CAPTURED" if om["remaining_authorized_amount"] == 0 else "PART_CAPTURED"
            record["acknowledged"] = True  # capturing also acknowledges
            return copy.deepcopy(capture)

    def get_capture(self, order_id: str, capture_id: str) -> dict[str, Any]:
        with self.lock:
            om = self._om_record(order_id)["om"]
            for capture in om["captures"]:
                if capture["capture_id"] == capture_id:
                    return copy.deepcopy(capture)
            raise KustomError(404, "NO_SUCH_CAPTURE", [f"No such capture: {capture_id}"])

    def refund(self, order_id: str, payload: Any) -> dict[str, Any]:
        """``POST .../refunds``: the new refund (a copy)."""
        with self.lock:
            record = self._om_record(order_id, not_found="NOT_FOUND")
            payload = _checked_body(payload, "refunded_amount", shipping_info=False)
            om = record["om"]
            amount = payload["refunded_amount"]
            refundable = om["captured_amount"] - om["refunded_amount"]
            if amount > refundable:
                raise KustomError(
                    403,
                    "REFUND_NOT_ALLOWED",
                    [f"Refunded amount is higher than the refundable amount ({refundable})"],
                )
            refund = {
                "refund_id": str(uuid.uuid4()),
                "refunded_amount": amount,
                "refunded_at": timestamp(),
                "description": payload.get("description", ""),
                "order_lines": copy.deepcopy(payload.get("order_lines", [])),
            }
            if "reference" in payload:
                refund["reference"] = payload["reference"]
            om["refunds"].append(refund)
            om["refunded_amount"] += amount
            left = amount
            for capture in om["captures"]:  # allocate to captures, oldest first
                take = min(left, capture["captured_amount"] - capture["refunded_amount"])
                capture["refunded_amount"] += take
                left -= take
            return copy.deepcopy(refund)

    def get_refund(self, order_id: str, refund_id: str) -> dict[str, Any]:
        with self.lock:
            om = self._om_record(order_id, not_found="NOT_FOUND")["om"]
            for refund in om["refunds"]:
                if refund["refund_id"] == refund_id:
                    return copy.deepcopy(refund)
            raise KustomError(404, "NOT_FOUND", [f"No such refund: {refund_id}"])

    def cancel(self, order_id: str) -> None:
        with self.lock:
            om = self._om_record(order_id)["om"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "CANCEL_NOT_ALLOWED", ["Order is already cancelled"])
            if om["captured_amount"] > 0:
                raise KustomError(403, "CANCEL_NOT_ALLOWED", ["Order has captures"])
            om["status"] = "CANCELLED"
            om["remaining_authorized_amount"] = 0

    def release_remaining_authorization(self, order_id: str) -> None:
        """Spec: refused (403 NOT_ALLOWED) when the order is cancelled or has no captures."""
        with self.lock:
            om = self._om_record(order_id)["om"]
            if om["status"] == "CANCELLED":
                raise KustomError(403, "NOT_ALLOWED", ["Order is cancelled"])
            if not om["captures"]:
                raise KustomError(403, "NOT_ALLOWED", ["Order has no captures"])
            om["remaining_authorized_amount"] = 0
            om["status"] = "CAPTURED"

    def extend_authorization_time(self, order_id: str) -> None:
        with self.lock:
            record = self._om_record(order_id)
            om = record["om"]
            if om["status"] in ("CANCELLED", "EXPIRED", "CLOSED"):
                raise KustomError(403, "NOT_ALLOWED", [f"Order is {om['status'].lower()}"])
            om["expires_at"] = timestamp(now() + timedelta(days=AUTHORIZATION_DAYS))
            record["authorization_extensions"] += 1
