"""Captures, refunds and cancels on completed Kustom orders — each one exactly once.

The package's face: the names the web layer, the workers and the sweeper use.
"""

from kustom_app.ordermanagement.operations import (
    CANCEL,
    CAPTURE,
    KINDS,
    REFUND,
    Accepted,
    CancelDeferred,
    OperationBusy,
    PaymentEventError,
    PaymentOperations,
    PaymentRequest,
    PaymentStore,
    build_payment_operations,
    kustom_order_lines,
    kustom_shipping_info,
    prepare_cancel,
    prepare_capture,
    prepare_refund,
    split_member,
)

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
    "build_payment_operations",
    "kustom_order_lines",
    "kustom_shipping_info",
    "prepare_cancel",
    "prepare_capture",
    "prepare_refund",
    "split_member",
]
