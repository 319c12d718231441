"""``kustom-playground trigger ...``: each sends what Kustom sends, where Kustom sends it.

The playground runs behind a real socket; a fake merchant records every callback it gets
and answers as told. The command line is called as a user would (``main([...])``, output
read back), against the playground's URL; the formats checked are Kustom's (see
playground/kustom/triggers.py for the sources).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, Response, jsonify, request

from kustom_app.payload import build_order_payload
from kustom_app.render import load_render
from playground.catalogue import ShopCart, render_cart
from playground.cli import main
from playground.kustom import create_app
from playground.server import ServerThread
from tests.playground.test_shop import kustom_order

AUTH = ("playground", "playground")


class Merchant:
    """Records each callback (kind, query, body, raw) and answers what ``answers`` says."""

    def __init__(self) -> None:
        self.app = Flask("merchant")
        self.received: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, Any, dict[str, str]]] = {}

        @self.app.post("/<kind>")
        def callback(kind: str) -> Response:
            raw = request.get_data()
            self.received.append(
                {
                    "kind": kind,
                    "args": dict(request.args),
                    "raw": raw,
                    "json": json.loads(raw) if raw else None,
                    "content_type": request.content_type,
                }
            )
            status, body, headers = self.answers.get(kind, (200, None, {}))
            answer = jsonify(body) if body is not None else Response(b"")
            answer.status_code = status
            answer.headers.update(headers)
            return answer

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [item for item in self.received if item["kind"] == kind]


@pytest.fixture
def merchant() -> Iterator[tuple[Merchant, str]]:
    fake = Merchant()
    with ServerThread(fake.app, name="merchant") as server:
        yield fake, server.url


@pytest.fixture
def playground() -> Iterator[tuple[str, Any]]:
    app = create_app()
    with ServerThread(app, name="kustom-playground") as server:
        yield server.url, app.extensions["kustom_double"]


def open_order(playground_url: str, merchant_url: str, **urls: str) -> str:
    """A checkout order whose merchant_urls all point at the fake merchant (an empty one in
    ``urls`` is left out)."""
    render = render_cart(ShopCart("shop-t", 1, {"TSHIRT-RED-M": 2}, "postnord"))
    merchant_urls = {
        "push": f"{merchant_url}/push?order_id={{checkout.order.id}}&cart=shop-t",
        "notification": f"{merchant_url}/notification?order_id={{checkout.order.id}}",
        "validation": f"{merchant_url}/validation?cart=shop-t&token=s3cr3t",
        "address_update": f"{merchant_url}/address_update",
        "country_change": f"{merchant_url}/country_change",
        "shipping_option_update": f"{merchant_url}/shipping_option_update",
        **urls,
    }
    merchant_urls = {name: value for name, value in merchant_urls.items() if value}
    created = requests.post(
        f"{playground_url}/checkout/v3/orders",
        json=kustom_order(render, **merchant_urls),
        auth=AUTH,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    order_id: str = created.json()["order_id"]
    return order_id


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """The command's exit status, its --json report, and its stderr."""
    status = main([*argv, "--json"])
    out = capsys.readouterr()
    return status, json.loads(out.out) if out.out.strip() else None, out.err


def repriced(option_id: str, quantity: int = 2) -> dict[str, Any]:
    """What a merchant answers to an update callback: the cart priced anew."""
    payload = build_order_payload(
        load_render(
            json.loads(
                json.dumps(
                    render_cart(ShopCart("shop-t", 2, {"TSHIRT-RED-M": quantity}, option_id)),
                    default=str,
                )
            )
        )
    )
    fields = ("order_amount", "order_tax_amount", "order_lines", "shipping_options")
    return {name: payload[name] for name in fields}


def test_pay_validates_completes_and_pushes(merchant, playground, capsys) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    status, report, _ = run(
        capsys, "trigger", "pay", order_id, "--url", url, "--address", "postal_code=11122"
    )
    assert status == 0 and report["completed"] is True
    assert [item["kind"] for item in fake.received] == ["validation", "push"]
    validation = fake.of("validation")[0]
    # The whole order, with the shopper's address, as the validation callback sends it.
    assert validation["json"]["order_id"] == order_id
    assert validation["json"]["order_lines"] == state.read_order(order_id)["order_lines"]
    assert validation["json"]["billing_address"]["postal_code"] == "11122"
    assert "html_snippet" not in validation["json"]
    push = fake.of("push")[0]
    assert push["raw"] == b"" and push["args"] == {"order_id": order_id, "cart": "shop-t"}
    held = state.stored_order(order_id)
    assert held["status"] == "checkout_complete" and held["om_status"] == "AUTHORIZED"
    assert report["order"]["om_status"] == "AUTHORIZED"
    assert [c["status"] for c in report["callbacks"]] == [200, 200]


def test_pay_stops_when_the_merchant_refuses_the_validation(merchant, playground, capsys) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    fake.answers["validation"] = (
        400,
        {"error_type": "approval_failed", "error_text": "Out of stock"},
        {},
    )
    status, report, _ = run(capsys, "trigger", "pay", order_id, "--url", url)
    assert status == 0
    assert report["completed"] is False
    assert report["refusal"]["error"] == "Out of stock"
    assert fake.of("push") == []
    assert state.stored_order(order_id)["status"] == "checkout_incomplete"


def test_pay_pending_then_fraud_decision_notifies(merchant, playground, capsys) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    assert run(capsys, "trigger", "pay", order_id, "--url", url, "--pending", "--no-push")[0] == 0
    assert fake.of("push") == []
    assert state.stored_order(order_id)["order_management"]["fraud_status"] == "PENDING"
    status, report, _ = run(
        capsys, "trigger", "fraud", order_id, "--decision", "REJECTED", "--url", url
    )
    assert status == 0
    notification = fake.of("notification")[0]
    assert notification["json"] == {"order_id": order_id, "event_type": "FRAUD_RISK_REJECTED"}
    assert notification["content_type"] == "application/json"
    assert notification["args"] == {"order_id": order_id}
    om = state.stored_order(order_id)["order_management"]
    assert (om["fraud_status"], om["status"]) == ("REJECTED", "CANCELLED")
    assert report["order"]["om_status"] == "CANCELLED"


@pytest.mark.parametrize("decision", ["ACCEPTED", "STOPPED"])
def test_fraud_sends_each_documented_event(merchant, playground, capsys, decision) -> None:
    fake, merchant_url = merchant
    url, _ = playground
    order_id = open_order(url, merchant_url)
    run(capsys, "trigger", "pay", order_id, "--url", url, "--pending", "--no-push")
    run(capsys, "trigger", "fraud", order_id, "--decision", decision, "--url", url)
    assert fake.of("notification")[0]["json"]["event_type"] == f"FRAUD_RISK_{decision}"


def test_push_sends_an_empty_post_again(merchant, playground, capsys) -> None:
    fake, merchant_url = merchant
    url, _ = playground
    order_id = open_order(url, merchant_url)
    run(capsys, "trigger", "pay", order_id, "--url", url, "--no-validation")
    fake.answers["push"] = (500, {"oops": True}, {})
    status, report, _ = run(capsys, "trigger", "push", order_id, "--url", url)
    assert status == 0
    assert [p["raw"] for p in fake.of("push")] == [b"", b""]
    assert report["callbacks"][0]["status"] == 500  # reported, not judged
    assert report["note"] is None


def test_validation_alone_reports_the_answer_and_changes_nothing(
    merchant, playground, capsys
) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    before = state.read_order(order_id)
    fake.answers["validation"] = (303, None, {"Location": "https://shop.example/sorry"})
    status, report, _ = run(capsys, "trigger", "validation", order_id, "--url", url)
    assert status == 0
    assert report["approved"] is False
    assert report["refusal"] == {"redirect": "https://shop.example/sorry", "rejected": True}
    assert fake.of("validation")[0]["json"]["order_amount"] == before["order_amount"]
    assert state.read_order(order_id) == before


def test_address_update_sends_the_address_and_applies_the_answer(
    merchant, playground, capsys
) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    fake.answers["address_update"] = (200, repriced("postnord", quantity=3), {})
    status, report, _ = run(
        capsys,
        "trigger",
        "address-update",
        order_id,
        "--url",
        url,
        "--address",
        "postal_code=99999",
        "--address",
        "city=Kiruna",
    )
    assert status == 0 and report["applied"] is True
    body = fake.of("address_update")[0]["json"]
    assert body["shipping_address"]["postal_code"] == "99999"
    assert body["shipping_address"]["city"] == "Kiruna"
    assert {"order_amount", "order_tax_amount", "order_lines", "purchase_currency"} <= set(body)
    held = state.read_order(order_id)
    assert held["order_amount"] == repriced("postnord", quantity=3)["order_amount"]
    assert held["shipping_address"]["city"] == "Kiruna"


def test_an_update_answer_that_does_not_add_up_changes_nothing(
    merchant, playground, capsys
) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    before = state.read_order(order_id)["order_amount"]
    wrong = repriced("postnord", quantity=3)
    wrong["order_amount"] += 1
    fake.answers["address_update"] = (200, wrong, {})
    status, report, _ = run(capsys, "trigger", "address-update", order_id, "--url", url)
    assert status == 0 and report["applied"] is False
    assert "do not add up" in report["error"]
    assert state.read_order(order_id)["order_amount"] == before


def test_country_change_sends_the_new_country(merchant, playground, capsys) -> None:
    fake, merchant_url = merchant
    url, _ = playground
    order_id = open_order(url, merchant_url)
    fake.answers["country_change"] = (
        400,
        {"error_type": "unsupported_shipping_address", "error_text": "We ship to Sweden only"},
        {},
    )
    status, report, _ = run(
        capsys, "trigger", "country-change", order_id, "--country", "de", "--url", url
    )
    assert status == 0
    assert fake.of("country_change")[0]["json"]["billing_address"]["country"] == "DE"
    assert report["applied"] is False and report["error"] == "We ship to Sweden only"


def test_shipping_option_update_sends_the_option_and_applies_the_answer(
    merchant, playground, capsys
) -> None:
    fake, merchant_url = merchant
    url, state = playground
    order_id = open_order(url, merchant_url)
    fake.answers["shipping_option_update"] = (200, repriced("express"), {})
    status, report, _ = run(
        capsys, "trigger", "shipping-option-update", order_id, "--option", "express", "--url", url
    )
    assert status == 0 and report["applied"] is True
    assert fake.of("shipping_option_update")[0]["json"]["selected_shipping_option"]["id"] == (
        "express"
    )
    held = state.read_order(order_id)
    assert held["order_amount"] == repriced("express")["order_amount"]
    assert held["selected_shipping_option"]["id"] == "express"


def test_expire_makes_the_order_gone(merchant, playground, capsys) -> None:
    _, merchant_url = merchant
    url, _ = playground
    order_id = open_order(url, merchant_url)
    assert run(capsys, "trigger", "expire", order_id, "--url", url)[1]["order"]["expired"]
    gone = requests.get(f"{url}/checkout/v3/orders/{order_id}", auth=AUTH, timeout=5)
    assert (gone.status_code, gone.content) == (404, b"")
    status, _, err = run(capsys, "trigger", "pay", order_id, "--url", url)
    assert status == 1 and "expired" in err


def test_an_unpaid_order_untouched_past_its_lifetime_is_gone(merchant) -> None:
    app = create_app(order_lifetime_seconds=0.3)
    client = app.test_client()
    order = app.extensions["kustom_double"].create_order(
        kustom_order(render_cart(ShopCart("shop-t", 1, {"CAP-GRN": 1}, "postnord")))
    )
    headers = {"Authorization": "Basic cGxheWdyb3VuZDpwbGF5Z3JvdW5k"}
    path = f"/checkout/v3/orders/{order['order_id']}"
    assert client.get(path, headers=headers).status_code == 200
    time.sleep(0.4)  # the lifetime itself is what is tested
    assert client.get(path, headers=headers).status_code == 404


def test_fail_count_makes_the_next_calls_fail(playground, capsys) -> None:
    url, _ = playground
    status, report, _ = run(
        capsys, "trigger", "fail", "--status", "503", "--count", "2", "--url", url
    )
    assert status == 0 and report["outage"]["remaining"] == 2
    answers = [
        requests.get(f"{url}/ordermanagement/v1/orders/x", auth=AUTH, timeout=5) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [503, 503, 404]
    assert answers[0].json()["error_code"] == "SERVICE_UNAVAILABLE"
    assert answers[0].headers["Klarna-Correlation-Id"] == answers[0].json()["correlation_id"]


def test_fail_for_a_while_then_recovers_by_itself(playground, capsys) -> None:
    url, _ = playground
    run(capsys, "trigger", "fail", "--status", "502", "--for", "1", "--url", url)
    probe = f"{url}/ordermanagement/v1/orders/x"
    assert requests.get(probe, auth=AUTH, timeout=5).status_code == 502
    deadline = time.monotonic() + 20
    while requests.get(probe, auth=AUTH, timeout=5).status_code == 502:
        assert time.monotonic() < deadline, "the outage did not end"
        time.sleep(0.1)
    assert requests.get(probe, auth=AUTH, timeout=5).status_code == 404


def test_fail_only_one_operation_and_recover(playground, capsys) -> None:
    url, _ = playground
    run(capsys, "trigger", "fail", "--operation", "capture", "--for", "60", "--url", url)
    other = requests.get(f"{url}/ordermanagement/v1/orders/x", auth=AUTH, timeout=5)
    assert other.status_code == 404
    capture = requests.post(
        f"{url}/ordermanagement/v1/orders/x/captures", json={}, auth=AUTH, timeout=5
    )
    assert capture.status_code == 503
    _, report, _ = run(capsys, "trigger", "recover", "--url", url)
    assert report["outage"] is None
    capture = requests.post(
        f"{url}/ordermanagement/v1/orders/x/captures", json={}, auth=AUTH, timeout=5
    )
    assert capture.status_code == 404


def test_fail_only_the_calls_about_one_order(playground, capsys) -> None:
    url, _ = playground
    _, report, _ = run(
        capsys, "trigger", "fail", "--order", "order-a", "--count", "1", "--url", url
    )
    assert report["outage"]["order_id"] == "order-a"
    other = requests.get(f"{url}/ordermanagement/v1/orders/order-b", auth=AUTH, timeout=5)
    assert other.status_code == 404  # another order's call does not use the window up
    about = requests.get(f"{url}/ordermanagement/v1/orders/order-a", auth=AUTH, timeout=5)
    assert about.status_code == 503
    again = requests.get(f"{url}/ordermanagement/v1/orders/order-a", auth=AUTH, timeout=5)
    assert again.status_code == 404
    assert main(["trigger", "fail", "--order", "x", "--count", "1", "--url", url]) == 0
    assert "about order x" in capsys.readouterr().out


def test_slow_delays_the_next_calls_only(playground, capsys) -> None:
    url, _ = playground
    run(capsys, "trigger", "slow", "--seconds", "0.5", "--count", "1", "--url", url)
    probe = f"{url}/ordermanagement/v1/orders/x"
    started = time.monotonic()
    assert requests.get(probe, auth=AUTH, timeout=10).status_code == 404
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    requests.get(probe, auth=AUTH, timeout=10)
    assert time.monotonic() - started < 0.5


def test_slow_and_fail_need_a_window(playground, capsys) -> None:
    url, _ = playground
    with pytest.raises(SystemExit) as done:
        main(["trigger", "fail", "--url", url])
    assert done.value.code == 2
    assert "--for SECONDS and/or --count N" in capsys.readouterr().err


def test_unknown_order_and_missing_callback_url_are_clear_errors(
    merchant, playground, capsys
) -> None:
    _, merchant_url = merchant
    url, _ = playground
    status, _, err = run(capsys, "trigger", "push", "no-such-order", "--url", url)
    assert status == 1 and "404" in err and "unknown order no-such-order" in err
    order_id = open_order(url, merchant_url, notification="")
    run(capsys, "trigger", "pay", order_id, "--url", url, "--no-push", "--no-validation")
    status, _, err = run(
        capsys, "trigger", "fraud", order_id, "--decision", "ACCEPTED", "--url", url
    )
    assert status == 1 and "no merchant_urls.notification" in err


def test_the_human_output_says_what_was_sent_and_answered(merchant, playground, capsys) -> None:
    _, merchant_url = merchant
    url, _ = playground
    order_id = open_order(url, merchant_url)
    assert main(["trigger", "pay", order_id, "--url", url]) == 0
    out = capsys.readouterr().out
    assert f"pay {order_id}" in out
    # The callback's token is a credential: hidden in what a CI log keeps.
    assert f"-> validation: POST {merchant_url}/validation?cart=shop-t&token=*** => HTTP 200" in out
    assert "s3cr3t" not in out
    assert f"-> push: POST {merchant_url}/push?order_id={order_id}&cart=shop-t => HTTP 200" in out
    assert "order: checkout_complete; order management AUTHORIZED, fraud ACCEPTED" in out
