"""Captures, refunds and cancels on completed Kustom orders, each exactly once: kinds,
errors, lines (Kustom's order lines), events (an event made a request), store, operations."""

from kustom_app.ordermanagement.errors import CancelDeferred, OperationBusy, PaymentEventError
from kustom_app.ordermanagement.events import (
    PaymentRequest,
    prepare_cancel,
    prepare_capture,
    prepare_refund,
)
from kustom_app.ordermanagement.kinds import CANCEL, CAPTURE, KINDS, REFUND
from kustom_app.ordermanagement.lines import kustom_order_lines, kustom_shipping_info
from kustom_app.ordermanagement.operations import Accepted, PaymentOperations
from kustom_app.ordermanagement.store import PaymentStore, split_member

__all__ = [
    "CANCEL",
    "CAPTURE",
    "KINDS",
    "REFUND",
    "Accepted",
    "CancelDeferred",
    "OperationBusy",
    "PaymentEventError",
    "PaymentOperations",
    "PaymentRequest",
    "PaymentStore",
    "kustom_order_lines",
    "kustom_shipping_info",
    "prepare_cancel",
    "prepare_capture",
    "prepare_refund",
    "split_member",
]
