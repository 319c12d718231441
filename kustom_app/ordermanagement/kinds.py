"""The kinds of payment operation, the states one goes through, and what each is called.

An operation is ``queued`` from the event until its outcome: ``captured``, ``refunded``,
``cancelled`` (nothing was captured) or ``released`` (something was: what was left of the
authorization, if anything, was given back) — or ``failed``. Captures and refunds have a
result for the commerce backend (CONTRACT section 5); a cancel has none.
"""

from __future__ import annotations

CAPTURE, REFUND, CANCEL = "capture", "refund", "cancel"
KINDS = (CAPTURE, REFUND, CANCEL)
QUEUED, FAILED = "queued", "failed"
CAPTURED, REFUNDED, CANCELLED, RELEASED = "captured", "refunded", "cancelled", "released"

# Where the id Kustom gives an operation is kept, and what the result calls it.
KUSTOM_ID_FIELD = {CAPTURE: "kustomCaptureId", REFUND: "kustomRefundId"}
EVENT_ID_FIELD = {CAPTURE: "captureId", REFUND: "refundId", CANCEL: "cartId"}
