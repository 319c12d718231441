"""Send a commerce backend's events to kustom-app: renders, captures, refunds, cancels.

Each event is serialised once and the same bytes go out on every attempt (re-signed with a
fresh timestamp), so a retry carries the same ``version`` / ``captureId`` / ``refundId`` and
the service treats it as the same event. Connection errors, timeouts, 5xx and 429 are
retried with capped exponential backoff and jitter; a 4xx is raised at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypedDict, cast
from urllib.parse import quote

import requests

from kustom_app_client.errors import KustomAppError, KustomAppRejected, KustomAppUnavailable
from kustom_app_client.signing import COMMERCE_SIGNATURE_HEADER, sign

log = logging.getLogger("kustom_app_client")

Amount = Decimal | str | int
"""Money in major units: ``Decimal("549.00")`` or ``"549.00"`` (never a float)."""


class RenderAccepted(TypedDict):
    cartId: str
    pendingHash: str | None
    syncHash: str | None
    syncing: bool


class CaptureAccepted(TypedDict):
    captureId: str
    status: str


class RefundAccepted(TypedDict):
    refundId: str
    status: str


class CancelAccepted(TypedDict):
    cartId: str
    status: str


class CartStatus(TypedDict):
    cartId: str
    kustomOrderId: str | None
    pendingHash: str | None
    syncHash: str | None
    syncing: bool
    cartState: str | None


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # exact: the service reads decimal strings as Decimal
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The bytes sent for ``event``: compact UTF-8 JSON, Decimals as decimal strings."""
    return json.dumps(
        event, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode("utf-8")


def _amount(value: Amount) -> str | int:
    if isinstance(value, (float, bool)):
        raise TypeError("amounts must be Decimal, str or int, not float or bool")
    return str(value) if isinstance(value, Decimal) else value


class KustomAppClient:
    """A commerce backend's connection to one kustom-app (``base_url``), signing with the
    shared ``COMMERCE_WEBHOOK_SECRET``.

    ``max_retries`` retries follow the first attempt; the n-th waits about
    ``backoff_seconds * 2**n`` (at most ``max_backoff_seconds``, or the service's
    ``Retry-After`` when it sends one, capped the same way).
    """

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_retries: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not secret:
            raise ValueError("secret is required (the service's COMMERCE_WEBHOOK_SECRET)")
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._sleep = sleep

    def __repr__(self) -> str:  # never the secret
        return f"KustomAppClient({self.base_url!r})"

    def __enter__(self) -> KustomAppClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # Events (CONTRACT section 4) ----------------------------------------------------------

    def send_cart_render(self, render: Mapping[str, Any]) -> RenderAccepted:
        """OnCartMutation: the cart as it is now. Send a higher ``version`` for every change;
        the service ignores a render older than one it has."""
        return cast(RenderAccepted, self._send_event("/commerce/cart-mutation", render))

    def capture_payment(
        self,
        *,
        capture_id: str,
        cart_id: str,
        amount: Amount,
        currency_code: str,
        lines: Sequence[Mapping[str, Any]] | None = None,
        shipping_info: Sequence[Mapping[str, Any]] | None = None,
        description: str | None = None,
    ) -> CaptureAccepted:
        """OnPaymentCapture: queue a (partial) capture. ``capture_id`` is the idempotency key:
        the same id is one capture however often it is sent. The result is POSTed to your
        ``/captures/<captureId>/result``."""
        event: dict[str, Any] = {
            "captureId": capture_id,
            "cartId": cart_id,
            "amount": _amount(amount),
            "currencyCode": currency_code,
        }
        _put_optional(event, lines=lines, shippingInfo=shipping_info, description=description)
        return cast(CaptureAccepted, self._send_event("/commerce/payment-capture", event))

    def refund_payment(
        self,
        *,
        refund_id: str,
        cart_id: str,
        amount: Amount,
        currency_code: str,
        lines: Sequence[Mapping[str, Any]] | None = None,
        description: str | None = None,
    ) -> RefundAccepted:
        """Queue a refund of (part of) what was captured; ``refund_id`` is its idempotency
        key. The result is POSTed to your ``/refunds/<refundId>/result``."""
        event: dict[str, Any] = {
            "refundId": refund_id,
            "cartId": cart_id,
            "amount": _amount(amount),
            "currencyCode": currency_code,
        }
        _put_optional(event, lines=lines, description=description)
        return cast(RefundAccepted, self._send_event("/commerce/payment-refund", event))

    def cancel_order(self, cart_id: str) -> CancelAccepted:
        """Cancel the cart's Kustom order (nothing captured) or release what is left."""
        return cast(CancelAccepted, self._send_event("/commerce/order-cancel", {"cartId": cart_id}))

    def cart_status(self, cart_id: str) -> CartStatus:
        """The storefront status of a cart: its Kustom order, hashes and state (unsigned)."""
        path = f"/carts/{quote(cart_id, safe='')}/kustom/status"
        return cast(CartStatus, self._request("GET", path, None))

    # Transport --------------------------------------------------------------------------

    def _send_event(self, path: str, event: Mapping[str, Any]) -> Any:
        return self._request("POST", path, encode_event(event))

    def _request(self, method: str, path: str, body: bytes | None) -> Any:
        url = self.base_url + path
        last: KustomAppError | None = None
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            if attempt:
                self._sleep(self._delay(attempt, last))
            try:
                response = self.session.request(
                    method, url, data=body, headers=self._headers(body), timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                # The event carries its own idempotency key: resending after a timeout
                # (the service may have acted) is safe.
                last = KustomAppUnavailable(
                    str(e) or type(e).__name__,
                    code=type(e).__name__,
                    attempts=attempt + 1,
                )
                log.warning("kustom_app_client.retry path=%s error=%s", path, type(e).__name__)
                continue
            if response.status_code < 400:
                return response.json() if response.content else {}
            error = _error_from(response, attempt + 1)
            if not _retryable(response.status_code):
                raise error
            last = error
            log.warning(
                "kustom_app_client.retry path=%s status=%s code=%s",
                path,
                response.status_code,
                error.code,
            )
        assert last is not None
        raise KustomAppUnavailable(
            last.message,
            code=last.code,
            status=last.status,
            details=last.details,
            attempts=attempts,
        )

    def _headers(self, body: bytes | None) -> dict[str, str]:
        if body is None:
            return {"Accept": "application/json"}
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            COMMERCE_SIGNATURE_HEADER: sign(self.secret, body),
        }

    def _delay(self, attempt: int, last: KustomAppError | None) -> float:
        if last is not None and last.retry_after is not None:
            return min(last.retry_after, self.max_backoff_seconds)
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _put_optional(event: dict[str, Any], **values: Any) -> None:
    event.update({key: value for key, value in values.items() if value is not None})


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _error_from(response: requests.Response, attempts: int) -> KustomAppError:
    kind = KustomAppUnavailable if _retryable(response.status_code) else KustomAppRejected
    code, message = f"http_{response.status_code}", response.reason or ""
    details: dict[str, Any] = {}
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    elif response.text:
        message = response.text[:200]
    retry_after = response.headers.get("Retry-After", "")
    return kind(
        message,
        code=code,
        status=response.status_code,
        details=details,
        attempts=attempts,
        retry_after=float(retry_after) if retry_after.isascii() and retry_after.isdigit() else None,
    )
