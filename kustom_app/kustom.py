"""HTTP client for Kustom's Checkout v3 and Order Management APIs.

Errors split in two, because callers act differently on them: `KustomUnavailable`
(connection trouble, timeouts, 5xx, 429) is worth retrying with the same idempotency key;
`KustomRejected` (any other 4xx) will fail again and must not be retried.

A `KustomUnavailable` is also a `KustomOutcomeUnknown` when the request may have reached
Kustom without Kustom's own answer coming back (a read timeout, a connection dropped after
sending, a gateway's 502/504, a 5xx without Kustom's error body): such a request may still
take effect at Kustom later, up to Kustom's own request lifetime (30 s: "The timeout for
requests towards the Kustom Checkout API is 30 seconds, after which a HTTP status code 504
will be returned", https://docs.kustom.co/v3/checkout/additional-resources/errors). Kustom's
own error answers carry ``{"error_code", "error_messages", "correlation_id"}`` (same page):
with that body, Kustom has finished with the request, applied or not.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from kustom_app.fastpath_http import send_through_adapter
from kustom_app.http import http_session
from kustom_app.logs import event_log
from kustom_app.metrics import KUSTOM_CALLS, KUSTOM_LATENCY

log = event_log(__name__)

CORRELATION_HEADER = "Klarna-Correlation-Id"
IDEMPOTENCY_HEADER = "Klarna-Idempotency-Key"
# A fixed namespace makes idempotency keys reproducible from business ids (UUIDv5).
IDEMPOTENCY_NAMESPACE = uuid.UUID("4f7e0b5e-8d53-4c36-9d0c-3c5b7d1e2a90")


def idempotency_key(operation: str, business_id: str) -> str:
    """A UUID that is the same for every attempt of one operation on one business id."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{operation}:{business_id}"))


class KustomError(Exception):
    """Any failure talking to Kustom."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.correlation_id = correlation_id


class KustomUnavailable(KustomError):
    """Connection error, timeout, 5xx or 429: retry later with the same idempotency key."""


class KustomOutcomeUnknown(KustomUnavailable):
    """The request may have reached Kustom, and no answer of Kustom's came back: it may
    still take effect there later. Worth a retry like any outage; a caller whose request
    changes state must not assume it failed (nor that it landed)."""


class KustomRejected(KustomError):
    """Kustom refused the request (4xx other than 429); retrying will not help."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int,
        error_code: str | None = None,
        error_messages: list[str] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status, correlation_id=correlation_id)
        self.error_code = error_code
        self.error_messages = error_messages or []

    @property
    def not_found(self) -> bool:
        return self.status == 404


def may_have_reached_kustom(error: requests.RequestException) -> bool:
    """Whether a request that got no answer may have been sent to Kustom: everything but a
    connection that was never made (connect timeout, refused, name not resolved) or a
    request that could not even be built. A dropped connection, a read timeout, a broken
    answer or TLS/proxy trouble leave it open whether Kustom got the request."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    if isinstance(error, requests.ConnectionError):
        reason = error.args[0] if error.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        # (urllib3's NewConnectionError and NameResolutionError are ConnectTimeoutErrors.)
        return not isinstance(reason, ConnectTimeoutError)
    return isinstance(
        error,
        requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    )


def leaves_outcome_open(status: int, body: Any) -> bool:
    """Whether a 429/5xx answer leaves open if the request takes effect: 502 and 504
    always (a gateway gave up waiting, or Kustom's own 504 for a request past its 30 s;
    either way the work may still finish), any other 5xx without Kustom's error body (not
    Kustom's answer, so something in between). A 429, and a 5xx in Kustom's error shape,
    are Kustom having finished with the request."""
    if status == 429:
        return False
    if status in (502, 504):
        return True
    return not (isinstance(body, dict) and body.get("error_code"))


class KustomResponse:
    __slots__ = ("body", "correlation_id", "headers", "status")

    def __init__(self, status: int, body: Any, headers: Any, correlation_id: str | None) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.correlation_id = correlation_id


class KustomClient:
    """One `requests.Session` per client; every call has a (connect, read) timeout."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        ca_bundle: str | None,
        session: requests.Session | None = None,
        user_agent: str = "kustom-app/0.1",
        fast_paths: bool,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._fast_paths = fast_paths  # KUSTOM_FAST_PATHS
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or http_session(self.base_url, ca_bundle)
        self.session.auth = (username, password)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})

    def __repr__(self) -> str:  # never show credentials
        return f"KustomClient({self.base_url!r})"

    def _send(
        self,
        method: str,
        url: str,
        body: Any,
        headers: dict[str, str] | None,
        timeout: tuple[float, float] | None,
    ) -> requests.Response:
        """Through the session's adapter (kustom_app/fastpath_http.py), or with the fast
        paths off, ``session.request``; neither follows redirects."""
        timeout = timeout or self.timeout
        if self._fast_paths:
            return send_through_adapter(
                self.session, method, url, json=body, headers=headers, timeout=timeout
            )
        return self.session.request(
            method, url, json=body, headers=headers, timeout=timeout, allow_redirects=False
        )

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        idempotency_key: str | None = None,
        timeout: tuple[float, float] | None = None,
        log_context: dict[str, Any] | None = None,
    ) -> KustomResponse:
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        started = time.monotonic()
        context = log_context or {}
        try:
            response = self._send(method, self.base_url + path, json, headers, timeout)
        except requests.RequestException as e:
            KUSTOM_CALLS.labels(operation, "unreachable").inc()
            unknown = may_have_reached_kustom(e)
            log.warning(
                "kustom.call.unreachable",
                op=operation,
                **context,
                error=type(e).__name__,
                sent="maybe" if unknown else "no",
            )
            error = KustomOutcomeUnknown if unknown else KustomUnavailable
            raise error(
                f"Kustom unreachable during {operation}: {type(e).__name__}", operation=operation
            ) from e
        correlation_id = response.headers.get(CORRELATION_HEADER)
        elapsed_ms = (time.monotonic() - started) * 1000
        KUSTOM_LATENCY.labels(operation).observe(elapsed_ms / 1000)
        KUSTOM_CALLS.labels(operation, f"{response.status_code // 100}xx").inc()
        log.info(
            "kustom.call",
            op=operation,
            status=response.status_code,
            correlation_id=correlation_id,
            ms=round(elapsed_ms, 1),
            **context,
        )
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        status = response.status_code
        if status >= 500 or status == 429:
            error = KustomOutcomeUnknown if leaves_outcome_open(status, body) else KustomUnavailable
            raise error(
                f"Kustom answered {status} to {operation}",
                operation=operation,
                status=status,
                correlation_id=correlation_id,
            )
        if status >= 400:
            details = body if isinstance(body, dict) else {}
            correlation_id = details.get("correlation_id") or correlation_id
            code = details.get("error_code") or ""
            raise KustomRejected(
                f"Kustom rejected {operation} with {status} {code}".strip(),
                operation=operation,
                status=status,
                error_code=details.get("error_code"),
                error_messages=list(details.get("error_messages") or []),
                correlation_id=correlation_id,
            )
        return KustomResponse(status, body, response.headers, correlation_id)

    # Checkout v3 -----------------------------------------------------------------------

    def create_order(self, payload: dict[str, Any], **ctx: Any) -> dict[str, Any]:
        """Create a checkout order; returns Kustom's order including ``html_snippet``."""
        return self._request(
            "create_order", "POST", "/checkout/v3/orders", json=payload, log_context=ctx
        ).body

    def get_order(self, order_id: str, **ctx: Any) -> dict[str, Any]:
        """Read a checkout order (404 once expired: raises `KustomRejected`)."""
        return self._request(
            "get_order", "GET", f"/checkout/v3/orders/{order_id}", log_context=ctx
        ).body

    def update_order(self, order_id: str, payload: dict[str, Any], **ctx: Any) -> dict[str, Any]:
        """Replace the cart-derived fields of an ongoing checkout order."""
        return self._request(
            "update_order",
            "POST",
            f"/checkout/v3/orders/{order_id}",
            json=payload,
            log_context=ctx,
        ).body

    # Order management ------------------------------------------------------------------

    def get_om_order(self, order_id: str, **ctx: Any) -> dict[str, Any]:
        """Read a completed order from the order-management API."""
        return self._request(
            "om_get", "GET", f"/ordermanagement/v1/orders/{order_id}", log_context=ctx
        ).body

    def acknowledge_order(self, order_id: str, key: str, **ctx: Any) -> None:
        """Tell Kustom we have the order so it stops sending pushes."""
        self._request(
            "acknowledge",
            "POST",
            f"/ordermanagement/v1/orders/{order_id}/acknowledge",
            idempotency_key=key,
            log_context=ctx,
        )

    def update_merchant_references(
        self, order_id: str, references: dict[str, str], key: str, **ctx: Any
    ) -> None:
        """Record the shop's order number on Kustom's order."""
        self._request(
            "merchant_references",
            "PATCH",
            f"/ordermanagement/v1/orders/{order_id}/merchant-references",
            json=references,
            idempotency_key=key,
            log_context=ctx,
        )

    def _created_id(
        self, operation: str, path: str, body: dict[str, Any], key: str, header: str, ctx: Any
    ) -> str:
        response = self._request(
            operation, "POST", path, json=body, idempotency_key=key, log_context=ctx
        )
        created = response.headers.get(header)
        if not created:
            location = response.headers.get("Location") or ""
            created = location.rstrip("/").rsplit("/", 1)[-1] or None
        if not created:
            raise KustomUnavailable(
                f"Kustom answered {operation} without an id",
                operation=operation,
                status=response.status,
                correlation_id=response.correlation_id,
            )
        return created

    def create_capture(self, order_id: str, body: dict[str, Any], key: str, **ctx: Any) -> str:
        """Capture (part of) the authorization; returns Kustom's capture id."""
        return self._created_id(
            "capture",
            f"/ordermanagement/v1/orders/{order_id}/captures",
            body,
            key,
            "Capture-ID",
            ctx,
        )

    def create_refund(self, order_id: str, body: dict[str, Any], key: str, **ctx: Any) -> str:
        """Refund (part of) what was captured; returns Kustom's refund id."""
        return self._created_id(
            "refund",
            f"/ordermanagement/v1/orders/{order_id}/refunds",
            body,
            key,
            "Refund-ID",
            ctx,
        )

    def cancel_order(self, order_id: str, key: str, **ctx: Any) -> None:
        """Cancel an order nothing was captured on."""
        self._request(
            "cancel",
            "POST",
            f"/ordermanagement/v1/orders/{order_id}/cancel",
            idempotency_key=key,
            log_context=ctx,
        )

    def release_remaining_authorization(self, order_id: str, key: str, **ctx: Any) -> None:
        """Give back what is left of the authorization after partial captures."""
        self._request(
            "release",
            "POST",
            f"/ordermanagement/v1/orders/{order_id}/release-remaining-authorization",
            idempotency_key=key,
            log_context=ctx,
        )
