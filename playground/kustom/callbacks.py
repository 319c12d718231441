"""The Kustom double calling the merchant: push, notification, validation, shipping option.

Pushes and notifications are POSTed once, from a background thread, after an optional delay
(Kustom pushes seconds after the shopper is sent to the confirmation page). The validation
and shipping-option callbacks are synchronous: the shopper's page waits for the answer, up
to ``merchant_callback_timeout_seconds`` (10 s, as Kustom). Every request and its outcome
lands in the callback log (``callbacks()``).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

from playground.kustom.store import DoubleStore


class MerchantCallbacks(DoubleStore):
    """The requests Kustom sends to the order's ``merchant_urls``."""

    def send_push(self, order_id: str, *, delay_seconds: float = 0.0) -> None:
        """POST the merchant's push URL (empty body) from a background thread."""
        with self.lock:
            record = self._admin_record(order_id)
            url_template = record["order"]["merchant_urls"]["push"]
        self._post_callback(
            "push", order_id, url_template, json_body=None, delay_seconds=delay_seconds
        )

    def _call_merchant(
        self, kind: str, order_id: str, url: str, body: Any
    ) -> tuple[int | None, Any, Mapping[str, str]]:
        """POST a synchronous callback (validation, shipping option) and log it like a push."""
        entry, headers = self._deliver(kind, order_id, url, body)
        return entry["status"], entry["answer"], headers

    def _deliver(
        self, kind: str, order_id: str, url: str, body: Any
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        """POST one callback now (``body`` None: no body at all, as Kustom's push); its
        log entry ``{kind, order_id, url, json, status, error, answer, location, at}``
        and the answer's headers."""
        status: int | None = None
        answer: Any = None
        headers: Mapping[str, str] = {}
        error: str | None = None
        started = time.time()
        with self.lock:
            generation = self._generation
        try:
            response = requests.post(
                url,
                json=body,
                timeout=self.merchant_callback_timeout_seconds,
                allow_redirects=False,
            )
            status, headers = response.status_code, response.headers
            try:
                answer = response.json() if response.content else None
            except ValueError:
                answer = response.text[:500] or None
        except requests.RequestException as exc:
            error = repr(exc)
        entry = {
            "kind": kind,
            "order_id": order_id,
            "url": url,
            "json": copy.deepcopy(body),
            "status": status,
            "error": error,
            "answer": copy.deepcopy(answer),
            "location": headers.get("Location"),
            "at": started,
        }
        with self.lock:
            if generation == self._generation:
                self._callbacks.append(copy.deepcopy(entry))
                self.lock.notify_all()
        return entry, headers

    def _post_callback(
        self,
        kind: str,
        order_id: str,
        url_template: str,
        *,
        json_body: Any,
        delay_seconds: float,
    ) -> None:
        url = url_template.replace("{checkout.order.id}", order_id)
        with self.lock:
            generation = self._generation

        def run() -> None:
            if delay_seconds > 0:
                time.sleep(delay_seconds)
            with self.lock:
                if generation != self._generation:
                    return  # reset since: drop it
            status: int | None = None
            error: str | None = None
            started = time.time()
            try:
                if json_body is None:
                    answer = requests.post(url, timeout=self.push_timeout_seconds)
                else:
                    answer = requests.post(url, json=json_body, timeout=self.push_timeout_seconds)
                status = answer.status_code
            except requests.RequestException as exc:
                error = repr(exc)
            with self.lock:
                if generation != self._generation:
                    return
                self._callbacks.append(
                    {
                        "kind": kind,
                        "order_id": order_id,
                        "url": url,
                        "json": json_body,
                        "status": status,
                        "error": error,
                        "at": started,
                    }
                )
                self.lock.notify_all()

        threading.Thread(target=run, name=f"kustom-double-{kind}", daemon=True).start()
