"""What the client raises: the service's error body, kept whole."""

from __future__ import annotations

from typing import Any


class KustomAppError(Exception):
    """A call to kustom-app did not succeed.

    ``code``, ``message`` and ``details`` are the service's
    ``{"error": {"code", "message", "details"}}``; ``status`` is the HTTP status (None when
    no answer came at all).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.attempts = attempts
        self.retry_after = retry_after  # seconds, from the service's Retry-After header


class KustomAppRejected(KustomAppError):
    """The service refused the request (a 4xx): fix it, do not retry it as it is.

    e.g. 401 ``invalid_signature`` (wrong secret), 400 ``invalid_json`` or
    ``validation_error`` (``details["fields"]``), 404 ``cart_not_found``,
    409 ``cart_not_completed`` or ``idempotency_conflict``.
    """


class KustomAppUnavailable(KustomAppError):
    """No success after every retry: connection errors, timeouts, 5xx or 429.

    The event is safe to send again later, unchanged (same id, same version).
    """
