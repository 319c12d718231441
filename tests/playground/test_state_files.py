"""The playgrounds' state files: what ``make run`` keeps in .run/ across a restart.

A "restart" here is a new app made from the same file, as a new process would be (the
subprocess version for the Kustom playground is in test_playground_cli.py): the shop
still has its orders, its carts and its order numbers; the Kustom double its orders; and
a write is atomic (no temporary file left, the old file intact until the new one is whole).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.waiting import wait_until
from kustom_app.signing import sign_payload
from playground.catalogue import ShopCart, render_cart
from playground.commerce import create_app as create_commerce
from playground.kustom import create_app as create_kustom
from playground.statefile import StateFileError, StateWriter, read_state
from tests.conftest import COMMERCE_SECRET
from tests.playground.test_playground_cli import free_port
from tests.playground.test_shop import kustom_order

AUTH_HEADER = {"Authorization": "Basic cGxheWdyb3VuZDpwbGF5Z3JvdW5k"}


def complete(client: Any, cart_id: str, kustom_order_id: str) -> Any:
    raw = json.dumps({"kustomOrderId": kustom_order_id, "orderAmount": 19800}).encode()
    return client.post(
        f"/carts/{cart_id}/complete",
        data=raw,
        headers={
            "Idempotency-Key": f"kustom-complete-{kustom_order_id}",
            "X-Kustom-App-Signature": sign_payload(COMMERCE_SECRET, raw),
            "Content-Type": "application/json",
        },
    )


def shop(state_file: Path) -> Any:
    return create_commerce(secret=COMMERCE_SECRET, state_file=str(state_file))


def test_the_shops_orders_and_numbers_continue_after_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "shop-state.json"
    first = shop(state_file).test_client()
    first.post("/cart/add", data={"product": "CAP-GRN"})
    cart_id = first.get_cookie("kustom_shop_cart").value
    done = complete(first, cart_id, "k-1")
    assert (done.status_code, done.json["orderNumber"]) == (201, "SO-10001")

    again = shop(state_file)
    browser = again.test_client()
    # The order is still there, listed, and its completion is still idempotent.
    assert [o["orderNumber"] for o in browser.get("/_double/orders").json] == ["SO-10001"]
    assert "SO-10001" in browser.get("/orders").get_data(as_text=True)
    replay = complete(browser, cart_id, "k-1")
    assert (replay.status_code, replay.json["orderNumber"]) == (200, "SO-10001")
    assert complete(browser, cart_id, "k-other").status_code == 409  # one order per cart
    # The next order gets the next number, not SO-10001 again.
    browser.post("/cart/add", data={"product": "SOCKS-3PK"})
    second_cart = browser.get_cookie("kustom_shop_cart").value
    assert second_cart != cart_id
    assert complete(browser, second_cart, "k-2").json["orderNumber"] == "SO-10002"


def test_an_open_shop_cart_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "shop-state.json"
    first = shop(state_file).test_client()
    first.post("/cart/add", data={"product": "TSHIRT-RED-M"})
    first.post("/cart/add", data={"product": "TSHIRT-RED-M"})
    cart_id = first.get_cookie("kustom_shop_cart").value

    again = shop(state_file)
    state = again.extensions["commerce_double"]
    kept = state.shop_cart(cart_id)
    assert kept is not None and kept.quantities == {"TSHIRT-RED-M": 2}
    # kustom-app's GET /carts/<id> (section 5) answers the same render as before.
    raw = b""
    answer = again.test_client().get(
        f"/carts/{cart_id}", headers={"X-Kustom-App-Signature": sign_payload(COMMERCE_SECRET, raw)}
    )
    assert answer.status_code == 200
    assert answer.json["lines"][0]["quantity"] == 2
    assert answer.json["version"] == kept.version


def test_without_a_state_file_nothing_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    client = create_commerce(secret=COMMERCE_SECRET).test_client()
    client.post("/cart/add", data={"product": "CAP-GRN"})
    assert list(tmp_path.iterdir()) == []


def test_the_kustom_doubles_orders_and_idempotent_answers_survive(tmp_path: Path) -> None:
    state_file = tmp_path / "kustom.json"
    app = create_kustom(state_file=str(state_file))
    client = app.test_client()
    render = render_cart(ShopCart("shop-s", 1, {"CAP-GRN": 1}, "postnord"))
    created = client.post("/checkout/v3/orders", json=kustom_order(render), headers=AUTH_HEADER)
    order_id = created.json["order_id"]
    app.extensions["kustom_double"].complete_order(order_id)
    capture_headers = {**AUTH_HEADER, "Klarna-Idempotency-Key": "capture-key-1"}
    amount = created.json["order_amount"]
    captured = client.post(
        f"/ordermanagement/v1/orders/{order_id}/captures",
        json={"captured_amount": amount},
        headers=capture_headers,
    )
    assert captured.status_code == 201

    again = create_kustom(state_file=str(state_file)).test_client()
    om = again.get(f"/ordermanagement/v1/orders/{order_id}", headers=AUTH_HEADER)
    assert om.json["status"] == "CAPTURED"
    # The retried capture (same key) is answered as before, not captured twice.
    replay = again.post(
        f"/ordermanagement/v1/orders/{order_id}/captures",
        json={"captured_amount": amount},
        headers=capture_headers,
    )
    assert replay.status_code == 201
    assert replay.headers["Capture-Id"] == captured.headers["Capture-Id"]
    assert len(again.get(f"/_double/orders/{order_id}").json["captures"]) == 1


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    data = {"n": 1}
    writer = StateWriter(state_file, "kustom", lambda: dict(data))
    assert writer.save() is True
    assert writer.save() is False  # unchanged: not written again
    data["n"] = 2
    assert writer.save() is True
    assert read_state(state_file, "kustom") == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    data: dict[str, Any] = {"n": 1}
    writer = StateWriter(state_file, "kustom", lambda: dict(data))
    writer.save()
    data["bad"] = object()  # not JSON: the write fails before anything is replaced
    with pytest.raises(TypeError):
        writer.save()
    assert read_state(state_file, "kustom") == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{oops", "is not JSON"),
        (json.dumps({"kind": "commerce", "format": 1, "state": {}}), "not a kustom playground"),
        (json.dumps({"kind": "kustom", "format": 9, "state": {}}), "has format 9"),
    ],
)
def test_a_wrong_state_file_is_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(text)
    with pytest.raises(StateFileError, match=message):
        create_kustom(state_file=str(state_file))


def test_the_shop_process_keeps_its_numbers_across_a_kill(tmp_path: Path) -> None:
    """``python -m playground.commerce --state-file`` as scripts/run starts it."""
    state_file = tmp_path / "shop-state.json"
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "playground.commerce", "--port", str(port),
                "--service-url", "http://127.0.0.1:9", "--secret", COMMERCE_SECRET,
                "--state-file", str(state_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip

        def up() -> bool:
            assert process.poll() is None, "the shop exited at start"
            try:
                return requests.get(f"{url}/_double/orders", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=30)
        return process

    def complete_over_http(cart_id: str, key: str) -> str:
        raw = json.dumps({"kustomOrderId": key}).encode()
        answer = requests.post(
            f"{url}/carts/{cart_id}/complete",
            data=raw,
            headers={
                "Idempotency-Key": key,
                "X-Kustom-App-Signature": sign_payload(COMMERCE_SECRET, raw),
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        number: str = answer.json()["orderNumber"]
        return number

    process = start()
    try:
        assert complete_over_http("cart-a", "key-a") == "SO-10001"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = start()
        assert complete_over_http("cart-b", "key-b") == "SO-10002"
        numbers = [
            o["orderNumber"] for o in requests.get(f"{url}/_double/orders", timeout=5).json()
        ]
        assert numbers == ["SO-10001", "SO-10002"]
    finally:
        process.kill()
        process.wait(10)
