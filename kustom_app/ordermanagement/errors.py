"""How a payment event or operation says no, or not yet."""

from __future__ import annotations

from typing import Any

from kustom_app.errors import Refusal


class PaymentEventError(Refusal):
    """A payment event refused before anything is stored (answered with status/code)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details, status=status, code=code)


def refuse(code: str, message: str, **details: Any) -> PaymentEventError:
    """A 400 refusal of a malformed event (the caller raises it)."""
    return PaymentEventError(400, code, message, details)


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
