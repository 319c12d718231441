"""Shared fixtures: settings, fakeredis (unit tests only), the app and a signing helper."""

from __future__ import annotations

import os
import tempfile

# Metrics of this test session (and the workers it starts) go to a fresh directory; this
# must happen before anything imports prometheus_client.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kustom-metrics-")

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from kustom_app.settings import Settings
from kustom_app.signing import sign_payload
from kustom_app.state import JOB_PAYLOAD_MARKER

FIXTURES = Path(__file__).parent / "fixtures"
COMMERCE_SECRET = "test-commerce-secret"
CALLBACK_SECRET = "test-callback-secret"

# The contract's example cart render (CONTRACT section 4), kept once as a fixture file.
CONTRACT_RENDER: dict[str, Any] = json.loads(
    (FIXTURES / "renders" / "sek_contract.json").read_text()
)


def make_render(cart_id: str = "cart-1001", version: int = 1, quantity: int = 2) -> dict[str, Any]:
    """The contract's example cart with another id, version and T-shirt quantity.

    Totals are kept consistent (250.00 each, 25 % VAT included, 49.00 shipping).
    """
    render = copy.deepcopy(CONTRACT_RENDER)
    render["cartId"] = cart_id
    render["version"] = version
    line = render["lines"][0]
    line["quantity"] = line["reservedQuantity"] = quantity
    sales = 250 * quantity
    line["salesTotal"] = f"{sales}.00"
    line["taxTotal"] = f"{sales // 5}.00"
    render["cartTotal"] = f"{sales + 49}.00"
    render["cartTaxTotal"] = f"{sales // 5 + 9}.80"
    return render


def signed_headers(
    body: bytes, secret: str = COMMERCE_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    return {
        "X-Commerce-Signature": sign_payload(secret, body, timestamp),
        "Content-Type": "application/json",
    }


class RecordingQueue:
    """Stands in for Celery in web unit tests (a `kustom_app.jobs.Jobs`): records what
    would be enqueued."""

    def __init__(self, script_queue: str | None = None) -> None:
        # With ``script_queue``, sync jobs are handed to the render script as messages
        # (JSON of cart, hash, payload text) pushed onto that list, like CeleryJobs.
        self.script_queue = script_queue
        self.syncs: list[tuple[str, str | None, Any]] = []
        self.completions: list[tuple[str, str, str]] = []
        self.acknowledgements: list[tuple[str, str]] = []
        self.fraud_decisions: list[tuple[str, str, str]] = []
        self.captures: list[str] = []
        self.refunds: list[str] = []
        self.cancels: list[str] = []
        self.deliveries: list[tuple[str, str]] = []

    def sync(self, cart_id: str, payload_hash: str | None, payload: Any) -> None:
        self.syncs.append((cart_id, payload_hash, payload))

    def sync_job(self, cart_id: str, payload_hash: str) -> tuple[str, str] | None:
        if self.script_queue is None:
            return None  # jobs are recorded by `sync`
        # The script puts the payload's JSON text where the marker is, as a JSON string.
        message = {"cart": cart_id, "hash": payload_hash, "payload": JOB_PAYLOAD_MARKER}
        return self.script_queue, json.dumps(message)

    def complete(self, cart_id: str, order_id: str, path: str) -> None:
        self.completions.append((cart_id, order_id, path))

    def acknowledge(self, cart_id: str, order_id: str) -> None:
        self.acknowledgements.append((cart_id, order_id))

    def fraud_decision(self, cart_id: str, order_id: str, event_type: str) -> None:
        self.fraud_decisions.append((cart_id, order_id, event_type))

    def payment(self, kind: str, op_id: str) -> None:
        {"capture": self.captures, "refund": self.refunds, "cancel": self.cancels}[kind].append(
            op_id
        )

    def capture(self, capture_id: str) -> None:
        self.payment("capture", capture_id)

    def refund(self, refund_id: str) -> None:
        self.payment("refund", refund_id)

    def cancel(self, cart_id: str) -> None:
        self.payment("cancel", cart_id)

    def deliver(self, kind: str, op_id: str) -> None:
        self.deliveries.append((kind, op_id))


@pytest.fixture
def settings() -> Settings:
    return Settings(
        redis_url="redis://unused:6379/0",
        celery_broker_url="redis://unused:6379/0",
        kustom_api_url="https://kustom.test",
        kustom_username="merchant",
        kustom_password="secret-password",
        public_base_url="https://shop-kustom.test",
        commerce_api_url=None,
        commerce_webhook_secret=COMMERCE_SECRET,
        callback_secret=CALLBACK_SECRET,
    )


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    yield client
    client.close()


@pytest.fixture
def task_queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def app(settings: Settings, fake_redis: fakeredis.FakeRedis, task_queue: RecordingQueue):
    from webhooks.app import create_app

    return create_app(
        {"SETTINGS": settings, "REDIS": fake_redis, "TASK_QUEUE": task_queue, "TESTING": True}
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def post_render(client) -> Callable[..., Any]:
    def post(render: dict[str, Any], *, secret: str = COMMERCE_SECRET):
        body = json.dumps(render).encode()
        return client.post(
            "/commerce/cart-mutation", data=body, headers=signed_headers(body, secret)
        )

    return post
