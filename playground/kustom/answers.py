"""What the double answers: Kustom-shaped errors, test-control errors, stored answers.

Kustom's error bodies are ``{"error_code", "error_messages", "correlation_id"}``; an unknown
or expired checkout order is a 404 with no body at all; times are ``yyyy-mm-ddThh:mm:ssZ``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime | None = None) -> str:
    """Kustom's format: ``yyyy-mm-ddThh:mm:ssZ``."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


class KustomError(Exception):
    """An API error answer, shaped like Kustom's.

    ``empty_body`` reproduces Kustom's bodiless answers (a 404 for an unknown or expired
    checkout order).
    """

    def __init__(
        self,
        status: int,
        error_code: str | None = None,
        error_messages: Iterable[str] = (),
        *,
        empty_body: bool = False,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_messages = list(error_messages)
        self.empty_body = empty_body
        super().__init__(f"{status} {error_code or ''} {self.error_messages}".strip())

    def body(self, correlation_id: str) -> dict[str, Any] | None:
        if self.empty_body:
            return None
        return {
            "error_code": self.error_code,
            "error_messages": self.error_messages,
            "correlation_id": correlation_id,
        }


class DoubleError(Exception):
    """Misuse of the test-control API (unknown order, wrong state, bad input)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


def bad_value(fields: Iterable[str]) -> KustomError:
    return KustomError(400, "BAD_VALUE", [f"Bad value: {name}" for name in fields])
