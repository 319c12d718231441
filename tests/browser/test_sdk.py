"""The storefront SDK's own behaviour in chromium, against a scripted stand-in for kustom-app.

A small HTTP server on 127.0.0.1 serves the real ``webhooks/static/kustom-checkout.js``, a
test page that calls ``mountKustomCheckout`` and records its callbacks in
``window.calls``, and the storefront endpoints (checkout, confirm, status, events) answering
what each test scripts. No Redis, worker or playground is started.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.browser.conftest import ROOT, browser_page, missing_browser

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

SDK = ROOT / "webhooks" / "static" / "kustom-checkout.js"
CART = "cart-sdk-1"
ORDER_ID = "kustom-order-1"

# The snippet stands in for Kustom's: its _klarnaCheckout records suspend and resume.
SNIPPET = (
    '<div id="snippet">checkout</div><script>window.kustomCalls = [];'
    "window._klarnaCheckout = function (callback) { callback({"
    'suspend: function () { window.kustomCalls.push("suspend"); },'
    'resume: function () { window.kustomCalls.push("resume"); } }); };</script>'
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><div id="kustom"></div>
<script type="module">
  window.calls = [];
  const { mountKustomCheckout } = await import("/static/kustom-checkout.js");
  const origin = location.origin;
  window.checkout = mountKustomCheckout({
    ...OPTIONS,
    container: "#kustom",
    termsUrl: origin + "/terms",
    checkoutUrl: origin + "/checkout",
    confirmationUrl: origin + "/confirmation?cart=" + OPTIONS.cartId,
    onComplete(orderNumber, details) { calls.push({ kind: "complete", orderNumber, details }); },
    onError(error) { calls.push({ kind: "error", error }); },
    onRetry(retry) { calls.push({ kind: "retry", ...retry }); },
    onStatus(status) { calls.push({ kind: "status", status }); },
  });
</script></body></html>
"""

Answer = tuple[int, Any]


def status_body(
    *, syncing: bool = False, cart_state: str = "open", synced: str = "h1"
) -> dict[str, Any]:
    hashes = ("h-next", synced) if syncing else (synced, synced)
    return {
        "cartId": CART,
        "kustomOrderId": ORDER_ID,
        "pendingHash": hashes[0],
        "syncHash": hashes[1],
        "syncing": syncing,
        "cartState": cart_state,
    }


def completed(order_number: str) -> Answer:
    body = {"status": "checkout_complete", "cartState": "completed", "orderNumber": order_number}
    return 200, body


INCOMPLETE: Answer = (202, {"status": "checkout_incomplete"})


@dataclass
class Script:
    """What the stand-in answers. Each list is taken in order; its last answer repeats."""

    options: dict[str, Any] = field(default_factory=dict)
    checkout: list[Answer] = field(
        default_factory=lambda: [
            (200, {"kustomOrderId": ORDER_ID, "htmlSnippet": SNIPPET, "syncing": False})
        ]
    )
    confirm: list[Answer] = field(default_factory=lambda: [INCOMPLETE])
    status: list[Answer] = field(default_factory=lambda: [(200, status_body())])
    # An int: that HTTP status instead of a stream. A list: those statuses as events.
    events: int | list[dict[str, Any]] = field(default_factory=lambda: [status_body()])


class StubService:
    """The SDK, the test page and scripted storefront endpoints on one loopback origin."""

    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[tuple[float, str, str]] = []  # (monotonic, method, path)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def seen(self, method: str, suffix: str) -> list[float]:
        """When requests ``method`` to a path ending in ``suffix`` came."""
        with self.lock:
            return [t for t, m, p in self.requests if m == method and p.endswith(suffix)]

    def _next(self, answers: list[Answer]) -> Answer:
        with self.lock:
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, answer: Answer) -> None:
                status, body = answer
                self._send(status, json.dumps(body).encode(), "application/json")

            def _record(self) -> str:
                path = self.path.split("?", 1)[0]
                with stub.lock:
                    stub.requests.append((time.monotonic(), self.command, path))
                return path

            def do_GET(self) -> None:
                path = self._record()
                if path == "/static/kustom-checkout.js":
                    self._send(200, SDK.read_bytes(), "text/javascript; charset=utf-8")
                elif path in ("/checkout", "/confirmation"):
                    options = json.dumps({"baseUrl": stub.url, **stub.script.options})
                    page = PAGE.replace("OPTIONS", options)
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif path == f"/carts/{CART}/kustom/status":
                    self._json(stub._next(stub.script.status))
                elif path == f"/carts/{CART}/kustom/events":
                    self._events()
                else:
                    self._json((404, {"error": {"code": "not_found", "message": path}}))

            def _events(self) -> None:
                events = stub.script.events
                if isinstance(events, int):
                    error = {"error": {"code": "unavailable", "message": "no streams"}}
                    self._json((events, error))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(b"retry: 60000\n\n")
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(0.2)
                stub.stopping.wait(5)  # an open stream, as kustom-app keeps it

            def do_POST(self) -> None:
                path = self._record()
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if path == f"/carts/{CART}/kustom":
                    self._json(stub._next(stub.script.checkout))
                elif path == f"/carts/{CART}/kustom/confirm":
                    self._json(stub._next(stub.script.confirm))
                else:
                    self._json((404, {"error": {"code": "not_found", "message": path}}))

        return Handler

    def __enter__(self) -> StubService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubService]:
    if missing_browser():
        pytest.skip(missing_browser() or "")
    with StubService() as service:
        yield service


@pytest.fixture
def sdk_page(page_problems: list[str]) -> Iterator[Any]:
    with browser_page(page_problems) as page:
        yield page


def calls(page: Any, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(
        "(kind) => (window.calls || []).filter((call) => call.kind === kind)", kind
    )
    return found


def wait_for_call(page: Any, kind: str, timeout_ms: int = 10_000) -> dict[str, Any]:
    page.wait_for_function(
        "(kind) => (window.calls || []).some((call) => call.kind === kind)",
        arg=kind,
        timeout=timeout_ms,
    )
    return calls(page, kind)[0]


def uncaught(page_problems: list[str]) -> list[str]:
    return [p for p in page_problems if p.startswith("page error")]


@pytest.mark.parametrize(
    ("status", "code"), [(409, "amount_mismatch"), (404, "kustom_order_not_found")]
)
def test_confirmation_page_reports_a_final_4xx_once_without_retrying(
    stub: StubService, sdk_page: Any, page_problems: list[str], status: int, code: str
) -> None:
    details = {"kustomOrderId": ORDER_ID, "reasons": ["order_amount"]}
    stub.script.confirm = [(status, {"error": {"code": code, "message": "no", "details": details}})]
    stub.script.options = {"cartId": CART, "confirmInitialDelayMs": 100}

    sdk_page.goto(f"{stub.url}/confirmation?cart={CART}")
    error = wait_for_call(sdk_page, "error")["error"]
    assert (error["status"], error["code"], error["details"]) == (status, code, details)
    time.sleep(1.0)  # a retry would have come after 50-100 ms
    assert len(stub.seen("POST", "/kustom/confirm")) == 1
    assert calls(sdk_page, "retry") == []
    assert calls(sdk_page, "complete") == []
    assert stub.seen("POST", f"/carts/{CART}/kustom") == []  # the checkout is not mounted here
    assert sdk_page.evaluate("window.checkout.page") == "confirmation"
    assert uncaught(page_problems) == []


def test_confirmation_page_retries_202_with_backoff_then_reports_the_order_number(
    stub: StubService, sdk_page: Any, page_problems: list[str]
) -> None:
    stub.script.confirm = [INCOMPLETE] * 4 + [completed("SO-1042")]
    stub.script.options = {"cartId": CART, "confirmInitialDelayMs": 200, "confirmMaxDelayMs": 800}

    sdk_page.goto(f"{stub.url}/confirmation?cart={CART}")
    complete = wait_for_call(sdk_page, "complete")
    assert complete["orderNumber"] == "SO-1042"
    assert complete["details"]["cartId"] == CART
    assert complete["details"]["status"] == "checkout_complete"
    assert sdk_page.evaluate("window.checkout.ready.then((d) => d.orderNumber)") == "SO-1042"

    asked = stub.seen("POST", "/kustom/confirm")
    assert len(asked) == 5
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(asked)]
    # Each wait is between half and all of min(800, 200 * 2^n) ms (plus the round trip).
    for gap, ceiling in zip(gaps, [200, 400, 800, 800], strict=True):
        assert ceiling / 2 - 15 <= gap <= ceiling + 500, (gaps, ceiling)
    assert [r["attempt"] for r in calls(sdk_page, "retry")] == [1, 2, 3, 4]
    time.sleep(1.0)
    assert len(stub.seen("POST", "/kustom/confirm")) == 5  # no asking after completion
    assert calls(sdk_page, "error") == []
    assert uncaught(page_problems) == []


def test_confirmation_page_gives_up_after_the_confirm_timeout(
    stub: StubService, sdk_page: Any, page_problems: list[str]
) -> None:
    stub.script.confirm = [INCOMPLETE]
    stub.script.options = {
        "cartId": CART,
        "confirmInitialDelayMs": 100,
        "confirmMaxDelayMs": 200,
        "confirmTimeoutMs": 1000,
    }

    sdk_page.goto(f"{stub.url}/confirmation?cart={CART}")
    error = wait_for_call(sdk_page, "error")["error"]
    assert error["code"] == "confirm_timeout"
    assert error["details"]["last"]["status"] == 202
    asked = stub.seen("POST", "/kustom/confirm")
    assert len(asked) >= 4  # retried meanwhile
    assert asked[-1] - asked[0] <= 1.0
    time.sleep(0.6)
    assert len(stub.seen("POST", "/kustom/confirm")) == len(asked)  # and then stopped
    assert calls(sdk_page, "complete") == []
    assert sdk_page.evaluate("window.checkout.ready") is None
    assert uncaught(page_problems) == []


def test_checkout_page_polls_the_status_when_the_event_stream_is_refused(
    stub: StubService, sdk_page: Any, page_problems: list[str]
) -> None:
    stub.script.events = 503
    stub.script.status = [
        (200, status_body(syncing=True)),
        (200, status_body(syncing=True)),
        (200, status_body(syncing=False)),
    ]
    stub.script.options = {"cartId": CART, "pollIntervalMs": 200}

    sdk_page.goto(f"{stub.url}/checkout")
    sdk_page.wait_for_selector("#kustom #snippet")
    sdk_page.wait_for_function("(window.kustomCalls || []).length >= 2")
    assert sdk_page.evaluate("window.kustomCalls") == ["suspend", "resume"]
    assert sdk_page.evaluate("window.checkout.page") == "checkout"
    assert len(stub.seen("GET", "/kustom/events")) == 1  # refused: not asked again
    assert len(stub.seen("GET", "/kustom/status")) >= 3
    assert [c["status"]["syncing"] for c in calls(sdk_page, "status")][:3] == [True, True, False]
    assert stub.seen("POST", "/kustom/confirm") == []
    assert uncaught(page_problems) == []


def test_checkout_page_refreshes_the_iframe_after_a_sync_it_did_not_see(
    stub: StubService, sdk_page: Any, page_problems: list[str]
) -> None:
    """Two statuses in sync with different hashes: a whole sync came between them (merged
    by the stream, or between two polls). The iframe must re-read the order all the same."""
    stub.script.events = 503
    stub.script.status = [(200, status_body()), (200, status_body(synced="h2"))]
    stub.script.options = {"cartId": CART, "pollIntervalMs": 200}

    sdk_page.goto(f"{stub.url}/checkout")
    sdk_page.wait_for_function("(window.kustomCalls || []).length >= 2")
    time.sleep(0.8)  # more polls of the same status: nothing more to do
    assert len(stub.seen("GET", "/kustom/status")) >= 4
    assert sdk_page.evaluate("window.kustomCalls") == ["suspend", "resume"]
    assert sdk_page.evaluate("window.checkout.suspended") is False
    assert uncaught(page_problems) == []


def test_checkout_page_reports_the_order_number_when_the_cart_is_completed_meanwhile(
    stub: StubService, sdk_page: Any, page_problems: list[str]
) -> None:
    stub.script.events = [status_body(), status_body(cart_state="completed")]
    stub.script.confirm = [completed("SO-2001")]
    stub.script.options = {"cartId": CART}

    sdk_page.goto(f"{stub.url}/checkout")
    complete = wait_for_call(sdk_page, "complete")
    assert complete["orderNumber"] == "SO-2001"
    assert complete["details"]["kustomOrderId"] == ORDER_ID
    assert len(stub.seen("POST", f"/carts/{CART}/kustom")) == 1
    assert len(stub.seen("POST", "/kustom/confirm")) == 1
    assert calls(sdk_page, "error") == []
    assert uncaught(page_problems) == []


def test_checkout_page_reports_the_order_number_when_the_cart_was_already_completed(
    stub: StubService, sdk_page: Any, page_problems: list[str]
) -> None:
    error = {"code": "cart_completed", "message": "Cart is completed.", "details": {}}
    stub.script.checkout = [(409, {"error": error})]
    stub.script.confirm = [completed("SO-3003")]
    stub.script.options = {"cartId": CART}

    sdk_page.goto(f"{stub.url}/checkout")  # the shopper went back after paying
    assert wait_for_call(sdk_page, "complete")["orderNumber"] == "SO-3003"
    assert sdk_page.evaluate("window.checkout.ready.then((d) => d.orderNumber)") == "SO-3003"
    assert calls(sdk_page, "error") == []
    assert stub.seen("GET", "/kustom/events") == []
    assert uncaught(page_problems) == []


@pytest.mark.parametrize(
    ("confirmation_url", "here", "expected"),
    [
        ("/confirmation?cart=c1", "/confirmation?cart=c1", True),
        ("/confirmation?cart=c1&order={checkout.order.id}", "/confirmation?cart=c1&order=o9", True),
        ("/thanks/{checkout.order.id}", "/thanks/0b3f-11", True),
        ("/thanks/{checkout.order.id}", "/thanks/a/b", False),
        ("/confirmation?cart=c1", "/checkout", False),
    ],
)
def test_the_confirmation_page_rule(
    stub: StubService, sdk_page: Any, confirmation_url: str, here: str, expected: bool
) -> None:
    sdk_page.goto(f"{stub.url}/static/kustom-checkout.js")
    is_confirmation = sdk_page.evaluate(
        """async ([url, here]) => {
          const sdk = await import("/static/kustom-checkout.js");
          return sdk.isConfirmationPage(location.origin + url, location.origin + here);
        }""",
        [confirmation_url, here],
    )
    assert is_confirmation is expected
    other_origin = re.sub(r":\d+$", ":1", stub.url)
    assert not sdk_page.evaluate(
        """async ([url, here]) => {
          const sdk = await import("/static/kustom-checkout.js");
          return sdk.isConfirmationPage(url, location.origin + here);
        }""",
        [other_origin + confirmation_url, here],
    )
