"""HTTP client for the commerce backend (CONTRACT section 5).

Every request is signed with ``X-Kustom-App-Signature`` over the exact bytes sent, so the
backend can verify it the same way we verify its events. Money in responses is parsed as
`Decimal`, never float.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import requests

from kustom_app.http import http_session
from kustom_app.json_text import decode_json
from kustom_app.logs import event_log
from kustom_app.signing import sign_payload

log = event_log(__name__)

OUTBOUND_SIGNATURE_HEADER = "X-Kustom-App-Signature"


class CommerceError(Exception):
    def __init__(self, message: str, *, operation: str, status: int | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status


class CommerceUnavailable(CommerceError):
    """Not configured, unreachable, timed out, 5xx or 429: try again later."""


class CommerceRejected(CommerceError):
    """The backend answered a 4xx; ``body`` holds its parsed answer."""

    def __init__(self, message: str, *, operation: str, status: int, body: Any) -> None:
        super().__init__(message, operation=operation, status=status)
        self.body = body

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return code if isinstance(code, str) else None
        return None


class CommerceClient:
    def __init__(
        self,
        base_url: str,
        secret: str | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        ca_bundle: str | None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or http_session(self.base_url, ca_bundle)

    def __repr__(self) -> str:
        return f"CommerceClient({self.base_url!r})"

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] | float | None = None,
    ) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body, default=str).encode()
        sent_headers = {"Content-Type": "application/json", **(headers or {})}
        if self.secret:
            sent_headers[OUTBOUND_SIGNATURE_HEADER] = sign_payload(self.secret, raw)
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                data=raw if body is not None else None,
                headers=sent_headers,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as e:
            log.warning("commerce.call.unreachable", op=operation, error=type(e).__name__)
            raise CommerceUnavailable(
                f"commerce backend unreachable during {operation}", operation=operation
            ) from e
        log.info(
            "commerce.call",
            op=operation,
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        parsed: Any = None
        if response.content:
            try:
                parsed = decode_json(response.content)
            except ValueError:
                parsed = None
        if response.status_code >= 500 or response.status_code == 429:
            raise CommerceUnavailable(
                f"commerce backend answered {response.status_code} to {operation}",
                operation=operation,
                status=response.status_code,
            )
        if response.status_code >= 400:
            raise CommerceRejected(
                f"commerce backend rejected {operation} with {response.status_code}",
                operation=operation,
                status=response.status_code,
                body=parsed,
            )
        return response.status_code, parsed

    def get_cart(self, cart_id: str, *, timeout: float | None = None) -> Any:
        """The cart's current render (raises `CommerceRejected` with status 404 if unknown)."""
        _, body = self._request(
            "get_cart",
            "GET",
            f"/carts/{quote(cart_id, safe='')}",
            timeout=timeout,
        )
        return body

    def post(
        self,
        operation: str,
        path: str,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] | float | None = None,
    ) -> tuple[int, Any]:
        """Signed POST to one of the section-5 endpoints; returns (status, parsed body)."""
        return self._request(operation, "POST", path, body=body, headers=headers, timeout=timeout)
