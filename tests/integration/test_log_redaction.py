"""Issue 15, logs: a full purchase on real processes, and what every process wrote.

gunicorn as the Procfile starts it (access log on stdout), a Celery worker and beat, on
their own redis-server, with Kustom and commerce doubles that know this module's own
credentials: render → checkout → sync → validation callback → push (sent by the Kustom
double to the order's merchant_urls, token and all) → completion → acknowledgement →
capture, and a sweeper run. Then every process's output is read whole:

- with ``LOG_FORMAT=json`` every line is one JSON object, and the lines about the cart
  (every one naming it or its order, the access lines of its requests, the lines of its
  tasks) carry ``"cart"``;
- in both formats, none holds the callback token, ``CALLBACK_SECRET``,
  ``COMMERCE_WEBHOOK_SECRET``, ``KUSTOM_PASSWORD`` or the Basic-auth header's value — and
  the push's access line is there, with its token masked (so the check had something to
  find).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.celery_worker import CeleryWorker, free_port_pair
from harness.gunicorn import Gunicorn
from harness.procfile import ProcfileProcess
from harness.redis_server import RedisServer, free_port
from kustom_app.signing import callback_token
from playground.commerce import create_app as create_commerce_double
from playground.kustom import create_app as create_kustom_double
from playground.server import ServerThread
from tests.conftest import make_render, signed_headers
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}
# Tasks whose first argument is the cart (their "received" line names it too).
CART_TASKS = ("syncKustomOrder", "completeKustomOrder", "acknowledgeKustomOrder")


@dataclass
class Secrets:
    """This module's own credentials, each distinct enough to be found if it leaked."""

    kustom_username: str = field(default_factory=lambda: f"merchant-{uuid.uuid4().hex[:8]}")
    kustom_password: str = field(default_factory=lambda: f"kpw-{uuid.uuid4().hex}")
    commerce_secret: str = field(default_factory=lambda: f"cws-{uuid.uuid4().hex}")
    callback_secret: str = field(default_factory=lambda: f"cbs-{uuid.uuid4().hex}")

    @property
    def basic_auth(self) -> str:
        pair = f"{self.kustom_username}:{self.kustom_password}".encode()
        return base64.b64encode(pair).decode()

    def named(self, cart_id: str) -> dict[str, str]:
        return {
            "callback token": callback_token(self.callback_secret, cart_id),
            "CALLBACK_SECRET": self.callback_secret,
            "COMMERCE_WEBHOOK_SECRET": self.commerce_secret,
            "KUSTOM_PASSWORD": self.kustom_password,
            "Basic-auth header value": self.basic_auth,
        }


@dataclass
class Purchase:
    """What one stack's purchase left behind: ids and every process's output."""

    log_format: str
    secrets: Secrets
    cart: str
    order: str
    capture_id: str
    task_ids: set[str]
    outputs: dict[str, str]  # process -> its whole output
    pushed_url: str


def run_purchase(log_format: str, tmp: Path) -> Purchase:
    secrets = Secrets()
    kustom_app = create_kustom_double(
        username=secrets.kustom_username, password=secrets.kustom_password
    )
    kustom = kustom_app.extensions["kustom_double"]
    commerce_app = create_commerce_double(secret=secrets.commerce_secret)
    commerce = commerce_app.extensions["commerce_double"]
    port = free_port()
    cart = f"cart-logs-{log_format}-{uuid.uuid4().hex[:8]}"
    with (
        RedisServer() as redis_server,
        ServerThread(kustom_app, name="kustom-double-logs") as kustom_server,
        ServerThread(commerce_app, name="commerce-double-logs") as commerce_server,
    ):
        env = {
            "LOG_FORMAT": log_format,
            "REDIS_URL": redis_server.url,
            "KUSTOM_API_URL": kustom_server.url,
            "KUSTOM_USERNAME": secrets.kustom_username,
            "KUSTOM_PASSWORD": secrets.kustom_password,
            "COMMERCE_API_URL": commerce_server.url,
            "COMMERCE_WEBHOOK_SECRET": secrets.commerce_secret,
            "CALLBACK_SECRET": secrets.callback_secret,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "TASK_RETRY_BASE_SECONDS": "0.2",
            "TASK_RETRY_MAX_SECONDS": "2",
            "CELERY_VISIBILITY_TIMEOUT": "60",
            "SYNC_LEASE_SECONDS": "20",
            "PAYMENT_LEASE_SECONDS": "20",
            "COMPLETION_LEASE_SECONDS": "3",
            "TASK_TIME_LIMIT_SECONDS": "25",
            "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
            "RECONCILE_INTERVAL_SECONDS": "2",
        }
        web = Gunicorn(env, port=port, log_path=tmp / "web.log")
        worker = CeleryWorker(env, name=f"logs-{log_format}", concurrency=2)
        beat = ProcfileProcess(  # the Procfile's beat line, as is
            "beat",
            {
                **os.environ,
                **env,
                "BEAT_SCHEDULE_FILE": str(tmp / "beat-schedule"),
                "WORKER_METRICS_PORT": str(free_port_pair()),
            },
            tmp / "beat.log",
        )
        try:
            web.start(timeout=60)
            worker.start(timeout=60)
            beat.start(lambda: "Starting" in beat.log_tail())
            order, capture_id = purchase(web.url, cart, secrets, kustom, commerce)
            # beat queues the sweeper every 2 s: one run done is the sweeper logged too.
            wait_until(lambda: "kustom.reconcile.run" in worker.log_path.read_text(), timeout=30)
        finally:
            beat.stop()
            worker.stop()
            web.stop()
        pushes = [c for c in kustom.callbacks() if c["kind"] == "push"]
        outputs = {
            "web": web.log_path.read_text(errors="replace"),
            "worker": worker.log_path.read_text(errors="replace"),
            "beat": beat.log_path.read_text(errors="replace"),
        }
    return Purchase(
        log_format,
        secrets,
        cart,
        order,
        capture_id,
        task_ids_of(outputs["worker"], cart) if log_format == "json" else set(),
        outputs,
        pushes[0]["url"],
    )


def purchase(url: str, cart: str, secrets: Secrets, kustom: Any, commerce: Any) -> tuple[str, str]:
    """A shopper's purchase and the shop's capture, through the service's HTTP endpoints."""
    http = requests.Session()

    def post_signed(path: str, body_json: dict[str, Any]) -> requests.Response:
        body = json.dumps(body_json).encode()
        headers = signed_headers(body, secret=secrets.commerce_secret)
        return http.post(f"{url}{path}", data=body, headers=headers)

    assert post_signed("/commerce/cart-mutation", make_render(cart, 1)).status_code == 202
    checkout = http.post(f"{url}/carts/{cart}/kustom", json=URLS)
    assert checkout.status_code == 200, checkout.text
    order: str = checkout.json()["kustomOrderId"]
    final = make_render(cart, 2, quantity=3)
    assert post_signed("/commerce/cart-mutation", final).status_code == 202
    wait_until(
        lambda: not http.get(f"{url}/carts/{cart}/kustom/status").json()["syncing"], timeout=30
    )
    commerce.put_cart(final)
    token = {"cart": cart, "token": callback_token(secrets.callback_secret, cart)}
    checkout_order = kustom.stored_order(order)["checkout"]
    approved = http.post(f"{url}/kustom/validate", params=token, json=checkout_order)
    assert approved.status_code == 200, approved.text
    # The shopper pays; Kustom pushes to the order's merchant_urls.push (token included).
    kustom.complete_order(order, push=True)
    wait_until(lambda: kustom.stored_order(order)["acknowledged"], timeout=30)
    capture_id = f"cap-{uuid.uuid4().hex[:10]}"
    amount = f"{checkout_order['order_amount'] / 100:.2f}"
    capture = {"captureId": capture_id, "cartId": cart, "amount": amount, "currencyCode": "SEK"}
    assert post_signed("/commerce/payment-capture", capture).status_code == 202
    wait_until(lambda: kustom.stored_order(order)["captures"], timeout=30)
    http.close()
    return order, capture_id


def entries(output: str) -> list[dict[str, Any]]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def task_ids_of(worker_output: str, cart: str) -> set[str]:
    """The ids of the tasks that worked on ``cart`` (their lines say so)."""
    ids = set()
    for line in worker_output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("cart") == cart and entry.get("task_id"):
            ids.add(entry["task_id"])
    return ids


@pytest.fixture(scope="module")
def purchases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Purchase]:
    """One purchase per log format, run when a test first asks for it."""
    done: dict[str, Purchase] = {}

    def purchase_in(log_format: str) -> Purchase:
        if log_format not in done:
            tmp = tmp_path_factory.mktemp(f"logs-{log_format}")
            done[log_format] = run_purchase(log_format, tmp)
        return done[log_format]

    return purchase_in


@pytest.fixture(scope="module")
def json_purchase(purchases: Callable[[str], Purchase]) -> Purchase:
    return purchases("json")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_secret_in_any_line_of_any_process(purchases, log_format: str):
    purchased = purchases(log_format)
    named = purchased.secrets.named(purchased.cart)
    # The check has something to find: the token reached the web in a URL it logs.
    assert named["callback token"] in purchased.pushed_url
    for process, output in purchased.outputs.items():
        assert output.strip(), f"{process} wrote nothing"
        for name, secret in named.items():
            assert secret not in output, f"{process} logged the {name}"
    assert "token=***" in purchased.outputs["web"], "the push's access line, masked"


def test_every_line_of_every_process_is_one_json_object(json_purchase: Purchase):
    for process, output in json_purchase.outputs.items():
        for number, line in enumerate(output.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                pytest.fail(f"{process} line {number} is not JSON: {line[:300]}")
            assert isinstance(entry, dict), (process, line)
            assert {"ts", "level", "logger"} <= entry.keys(), (process, line)


def test_the_access_log_is_json_with_the_request_and_its_cart(json_purchase: Purchase):
    access = [e for e in entries(json_purchase.outputs["web"]) if e.get("event") == "http.access"]
    by_path = {(e["method"], e["path"]): e for e in access}
    push = by_path[("POST", "/kustom/push")]
    assert push["status"] == 200 and isinstance(push["ms"], float)
    assert push["cart"] == json_purchase.cart and "token=***" in push["query"]
    for path in ("/commerce/cart-mutation", "/commerce/payment-capture", "/kustom/validate"):
        assert by_path[("POST", path)]["cart"] == json_purchase.cart, path
    assert by_path[("POST", f"/carts/{json_purchase.cart}/kustom")]["status"] == 200


def test_every_line_about_the_cart_carries_it(json_purchase: Purchase):
    cart, order = json_purchase.cart, json_purchase.order
    assert json_purchase.task_ids, "the worker's lines name the cart's tasks"
    seen_events: set[str] = set()
    for process, output in json_purchase.outputs.items():
        for entry in entries(output):
            text = json.dumps(entry)
            about_the_cart = (
                cart in text
                or order in text
                or json_purchase.capture_id in text
                or entry.get("task_id") in json_purchase.task_ids
                or _received_cart_task(entry, json_purchase.task_ids)
            )
            if about_the_cart:
                assert entry.get("cart") == cart, f"{process}: {text[:400]}"
                seen_events.add(entry.get("event") or entry.get("msg", "")[:40])
    for event in (
        "kustom.render.enqueued",
        "kustom.checkout.created",
        "kustom.sync.pushed",
        "kustom.validation.approved",
        "kustom.completion.completed",
        "kustom.ack.done",
        "kustom.capture.captured",
        "http.access",
    ):
        assert any(e.startswith(event) for e in seen_events), (event, sorted(seen_events))


# The events of this stack that are about no cart: it serves only this module's cart.
NOT_ABOUT_A_CART = {
    "kustom.reconcile.run",
    "kustom.reconcile.skipped",
    "kustom.validation.rules_loaded",
}
# The process's own: its metrics port, the broker's messages and consumers.
PROCESS_EVENTS = ("metrics.", "kustom.broker.")


def test_every_event_of_the_web_and_the_worker_names_the_one_cart(json_purchase: Purchase):
    """The stack served one cart: each of its events (a commerce call made from a pool
    thread of the validation callback, a capture task's Kustom calls ...) is about it."""
    checked = 0
    for process in ("web", "worker"):
        for entry in entries(json_purchase.outputs[process]):
            event = entry.get("event")
            if event is None or event in NOT_ABOUT_A_CART or event.startswith(PROCESS_EVENTS):
                continue
            if event == "http.access" and entry["path"] == "/healthz":
                continue
            assert entry.get("cart") == json_purchase.cart, f"{process}: {entry}"
            checked += 1
    assert checked >= 20


def _received_cart_task(entry: dict[str, Any], task_ids: set[str]) -> bool:
    message = str(entry.get("msg", ""))
    return message.endswith("received") and any(
        message.startswith(f"Task {name}[{task_id}]") for name in CART_TASKS for task_id in task_ids
    )
