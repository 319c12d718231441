"""The one refusal type of the domain: the web layer answers it in the contract's shape."""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A request the service refuses: HTTP status, snake_case code, a sentence, details.

    Subclasses fix ``status`` and ``code`` as class attributes; ad-hoc refusals pass them.
    """

    status = 400
    code = "refused"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
