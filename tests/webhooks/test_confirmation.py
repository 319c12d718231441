"""Confirm, push and fraud notifications through the app, Kustom and commerce faked by
`responses`; the push's `completeKustomOrder` runs in this process, as the worker runs it."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import replace
from typing import Any

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import load_render
from kustom_app.signing import callback_token
from tests.conftest import CALLBACK_SECRET, make_render
from tests.webhooks.nested_json import NESTED_BODIES

KUSTOM = "https://kustom.test"
COMMERCE = "https://commerce.test"
CART, ORDER = "cart-1", "o-1"
OM_URL = f"{KUSTOM}/ordermanagement/v1/orders/{ORDER}"
MISMATCHES_INDEX = "kustom:mismatches"  # what kustom_completion_mismatches_open counts

# (changes to Kustom's order, words of the reason the answer gives)
MISMATCHES = {
    "amount": ({"order_amount": 100, "original_order_amount": 100}, "amount 100 differs"),
    "wrong_cart": ({"merchant_reference1": "cart-2"}, "belongs to cart 'cart-2'"),
    "currency": ({"purchase_currency": "NOK"}, "in NOK, the cart in SEK"),
}


@pytest.fixture
def app(settings, fake_redis, task_queue):
    from webhooks.app import create_app

    return create_app(
        {
            "SETTINGS": replace(settings, commerce_api_url=COMMERCE, confirm_wait_seconds=0),
            "REDIS": fake_redis,
            "TASK_QUEUE": task_queue,
            "TESTING": True,
        }
    )


@pytest.fixture
def store(app):
    return app.extensions["kustom"].store


@pytest.fixture
def payload(store) -> dict[str, Any]:
    """cart-1 with Kustom order o-1, synced with the cart's payload."""
    render = make_render(CART, 1)
    built = build_order_payload(load_render(render))
    store.record_render(CART, 1, render, payload_hash(built), built)
    store.record_order(CART, ORDER, payload_hash(built), built)
    return built


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def om_order(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "order_id": ORDER,
        "status": "AUTHORIZED",
        "fraud_status": "ACCEPTED",
        "order_amount": payload["order_amount"],
        "original_order_amount": payload["order_amount"],
        "order_tax_amount": payload["order_tax_amount"],
        "purchase_currency": payload["purchase_currency"],
        "order_lines": copy.deepcopy(payload["order_lines"]),
        "merchant_reference1": CART,
        **changes,
    }


def callback(path: str = "push", cart: str = CART, token: str | None = None, **query: str):
    token = token or callback_token(CALLBACK_SECRET, cart)
    params = "&".join(f"{k}={v}" for k, v in {**query, "cart": cart, "token": token}.items())
    return f"/kustom/{path}?{params}"


def snapshot(redis: Any) -> dict[bytes, bytes | None]:
    """Every key and its serialized value: equal snapshots, nothing changed."""
    return {key: redis.dump(key) for key in redis.scan_iter()}


def commerce_calls(http) -> list[Any]:
    return [c for c in http.calls if c.request.url.startswith(COMMERCE)]


def kustom_writes(http) -> list[Any]:
    """Anything sent to Kustom other than reads: acknowledge, cancel, merchant references."""
    return [c for c in http.calls if c.request.url.startswith(KUSTOM) and c.request.method != "GET"]


def run_completion_task(app, monkeypatch, path: str = "push") -> tuple[str, list]:
    """Run the completeKustomOrder the push queued, in this process, on the app's services."""
    import workers.retry as retry
    import workers.tasks as tasks

    acknowledgements: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks, "process_services", lambda: app.extensions["kustom"])
    monkeypatch.setattr(retry, "process_services", lambda: app.extensions["kustom"])
    monkeypatch.setattr(
        tasks.acknowledge_kustom_order, "enqueue", lambda *a: acknowledgements.append(a)
    )
    result = tasks.complete_kustom_order.apply(args=(CART, ORDER, path))
    return result.get(), acknowledgements


# --- confirm: 409 amount_mismatch -------------------------------------------------------


@pytest.mark.parametrize("kind", MISMATCHES)
def test_confirm_of_a_mismatched_order_is_409_and_completes_nothing(
    client, store, payload, http, task_queue, kind
):
    changes, words = MISMATCHES[kind]
    http.get(OM_URL, json=om_order(payload, **changes))

    response = client.post(f"/carts/{CART}/kustom/confirm")

    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "amount_mismatch" and error["message"]
    assert error["details"]["kustomOrderId"] == ORDER
    assert any(words in reason for reason in error["details"]["reasons"]), error
    assert commerce_calls(http) == [], "nothing completed at the commerce backend"
    assert kustom_writes(http) == [], "not acknowledged, not cancelled"
    assert task_queue.acknowledgements == [] and task_queue.completions == []
    assert store.load(CART).cart_state == "open"
    assert client.get(f"/carts/{CART}/kustom/status").get_json()["cartState"] == "open"
    assert store.redis.zscore(MISMATCHES_INDEX, CART) is not None


def test_a_matching_order_confirms_200_and_then_queues_the_acknowledgement(
    client, store, payload, http, task_queue
):
    """The counterpart of the mismatch tests: the same set-up completes."""
    http.get(OM_URL, json=om_order(payload))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)
    response = client.post(f"/carts/{CART}/kustom/confirm")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "checkout_complete",
        "cartState": "completed",
        "orderNumber": "SO-1",
    }
    assert task_queue.acknowledgements == [(CART, ORDER)]


# --- push: recorded, CRITICAL, not acknowledged, not cancelled ---------------------------


@pytest.mark.parametrize("kind", MISMATCHES)
def test_push_of_a_mismatched_order_is_recorded_and_alerted_never_acked_or_cancelled(
    app, client, store, payload, http, task_queue, monkeypatch, caplog, kind
):
    changes, words = MISMATCHES[kind]
    http.get(OM_URL, json=om_order(payload, **changes))

    response = client.post(callback("push", order_id=ORDER))
    assert response.status_code == 200
    assert task_queue.completions == [(CART, ORDER, "push")]
    with caplog.at_level(logging.INFO, logger="kustom_app.completion"):
        outcome, acknowledgements = run_completion_task(app, monkeypatch)

    assert outcome == "mismatch"
    alerts = [
        r for r in caplog.records if r.getMessage().startswith("kustom.completion.amount_mismatch")
    ]
    assert len(alerts) == 1 and alerts[0].levelno == logging.CRITICAL
    assert f"cart={CART} order={ORDER} path=push" in alerts[0].getMessage()
    assert words in alerts[0].getMessage()
    mismatch = store.load(CART).fields["mismatch"]
    assert ORDER in mismatch and words in mismatch
    assert store.redis.zscore(MISMATCHES_INDEX, CART) is not None
    assert acknowledgements == [] and task_queue.acknowledgements == []
    assert task_queue.cancels == []
    assert commerce_calls(http) == [] and kustom_writes(http) == []
    assert store.load(CART).cart_state == "open"


# --- confirm: Kustom refusing to show the order ------------------------------------------


def test_a_kustom_4xx_while_confirm_reads_the_order_is_502_and_changes_nothing(
    client, store, payload, http, task_queue, fake_redis
):
    http.get(
        OM_URL,
        status=403,
        json={"error_code": "NOT_ALLOWED", "error_messages": ["no"], "correlation_id": "c-1"},
    )
    before = snapshot(fake_redis)

    response = client.post(f"/carts/{CART}/kustom/confirm")

    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "kustom_unavailable" and error["message"]
    assert error["details"] == {
        "status": 403,
        "kustomErrorCode": "NOT_ALLOWED",
        "correlationId": "c-1",
    }
    assert snapshot(fake_redis) == before
    assert commerce_calls(http) == [] and task_queue.completions == []


# --- fraud notifications ----------------------------------------------------------------


def notify(client, event_type: str, order_id: str = ORDER):
    body = {"order_id": order_id, "event_type": event_type}
    return client.post(callback("notification"), json=body)


def run_fraud_task(app, monkeypatch, event_type: str) -> str:
    import workers.retry as retry
    import workers.tasks as tasks

    monkeypatch.setattr(tasks, "process_services", lambda: app.extensions["kustom"])
    monkeypatch.setattr(retry, "process_services", lambda: app.extensions["kustom"])
    return tasks.forward_fraud_decision.apply(args=(CART, ORDER, event_type)).get()


@pytest.mark.parametrize(
    "decision", ["FRAUD_RISK_ACCEPTED", "FRAUD_RISK_REJECTED", "FRAUD_RISK_STOPPED"]
)
def test_a_fraud_decision_is_recorded_on_arrival_then_forwarded(
    app, client, store, payload, http, task_queue, monkeypatch, decision
):
    http.get(OM_URL, json=om_order(payload, fraud_status="PENDING"))
    forward = http.post(f"{COMMERCE}/carts/{CART}/fraud-decision", json={"status": "ok"})

    response = notify(client, decision)

    assert response.status_code == 200
    assert task_queue.fraud_decisions == [(CART, ORDER, decision)]
    fields = store.load(CART).fields
    assert fields["fraud_decision"] == decision and fields["fraud_decision_order_id"] == ORDER
    assert "fraud_decision_forwarded" not in fields, "recorded before anything is forwarded"

    assert run_fraud_task(app, monkeypatch, decision) == "forwarded"
    assert forward.call_count == 1
    sent = forward.calls[0].request
    assert sent.headers["X-Kustom-App-Signature"]
    assert json.loads(sent.body) == {"kustomOrderId": ORDER, "decision": decision}
    assert store.load(CART).fields["fraud_decision_forwarded"] == decision


def test_a_fraud_decision_is_kept_while_the_commerce_backend_is_down(
    app, client, store, payload, http, monkeypatch
):
    http.get(OM_URL, json=om_order(payload, fraud_status="PENDING"))
    url = f"{COMMERCE}/carts/{CART}/fraud-decision"
    for _ in range(2):
        http.post(url, status=503, json={"error": {"code": "down"}})
    http.post(url, json={"status": "ok"})

    assert notify(client, "FRAUD_RISK_REJECTED").status_code == 200
    assert store.load(CART).fields["fraud_decision"] == "FRAUD_RISK_REJECTED"

    # The task retries through the outage (run eagerly here: retries follow at once).
    assert run_fraud_task(app, monkeypatch, "FRAUD_RISK_REJECTED") == "forwarded"
    assert [c.response.status_code for c in http.calls if c.request.url == url] == [503, 503, 200]
    assert store.load(CART).fields["fraud_decision_forwarded"] == "FRAUD_RISK_REJECTED"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"token": "0" * 64}, 401, "invalid_token"),
        ({"event_type": None}, 400, "invalid_event_type"),
        ({"event_type": ""}, 400, "invalid_event_type"),
        ({"event_type": ["FRAUD_RISK_REJECTED"]}, 400, "invalid_event_type"),
        ({"event_type": {"FRAUD_RISK_REJECTED": 1}}, 400, "invalid_event_type"),
        ({"event_type": 7}, 400, "invalid_event_type"),
        ({"order_id": ""}, 400, "missing_order_id"),
    ],
    ids=["token", "null", "empty", "list", "object", "number", "no-order"],
)
def test_a_bad_notification_is_4xx_and_changes_nothing(
    client, payload, task_queue, fake_redis, change, status, code
):
    before = snapshot(fake_redis)
    body = {"order_id": ORDER, "event_type": "FRAUD_RISK_REJECTED", **change}
    token = body.pop("token", None)

    response = client.post(callback("notification", token=token), json=body)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert snapshot(fake_redis) == before
    assert task_queue.fraud_decisions == []


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'["FRAUD_RISK_REJECTED"]', *NESTED_BODIES.values()],
    ids=["broken", "empty", "array", *NESTED_BODIES],
)
def test_a_notification_that_is_not_json_is_400_and_changes_nothing(
    client, payload, task_queue, fake_redis, raw
):
    before = snapshot(fake_redis)
    response = client.post(callback("notification"), data=raw)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert snapshot(fake_redis) == before
    assert task_queue.fraud_decisions == []


def notifications_counted(client) -> dict[str, float]:
    """kustom_notifications_total by event_type, as GET /metrics shows it."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        sample.labels["event_type"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "kustom_notifications"
        for sample in family.samples
        if sample.name == "kustom_notifications_total"
    }


def test_an_unknown_event_type_is_answered_200_logged_counted_and_changes_nothing(
    client, payload, task_queue, fake_redis, caplog
):
    before, counted = snapshot(fake_redis), notifications_counted(client)
    event_type = "ORDER_SOMETHING_NEW_" + "X" * 300

    with caplog.at_level(logging.WARNING, logger="webhooks.kustom_confirm"):
        response = notify(client, event_type)

    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored"}
    assert snapshot(fake_redis) == before
    assert task_queue.fraud_decisions == []
    [record] = [r for r in caplog.records if "unknown_event_type" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "ORDER_SOMETHING_NEW_" in record.getMessage()
    assert "X" * 100 not in record.getMessage(), "the raw value is cut short in the log"
    after = notifications_counted(client)
    assert after["unknown"] == counted.get("unknown", 0) + 1
    assert set(after) <= {"unknown", "FRAUD_RISK_ACCEPTED", "FRAUD_RISK_REJECTED",
                          "FRAUD_RISK_STOPPED"}  # fmt: skip


def test_a_known_event_type_is_counted_under_its_name(client, payload, task_queue):
    counted = notifications_counted(client)
    assert notify(client, "FRAUD_RISK_STOPPED").status_code == 200
    after = notifications_counted(client)
    assert after["FRAUD_RISK_STOPPED"] == counted.get("FRAUD_RISK_STOPPED", 0) + 1
    assert after.get("unknown", 0) == counted.get("unknown", 0)


def test_a_decision_for_another_order_is_not_recorded_on_the_cart(
    client, store, payload, task_queue
):
    response = notify(client, "FRAUD_RISK_STOPPED", order_id="o-other")
    assert response.status_code == 200  # the task checks with Kustom and dead-letters it
    assert "fraud_decision" not in store.load(CART).fields


# --- operators: open mismatches and their resolution ------------------------------------


@pytest.fixture
def mismatched(client, store, payload, http) -> dict[str, Any]:
    """cart-1's confirm was refused: Kustom's order is for 600.00 SEK, the cart 549.00."""
    http.get(OM_URL, json=om_order(payload, order_amount=60000, original_order_amount=60000))
    assert client.post(f"/carts/{CART}/kustom/confirm").status_code == 409
    return payload


def kustom_cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["kustom", *args])


def mismatch_open(store) -> bool:
    return (
        store.redis.zscore(MISMATCHES_INDEX, CART) is not None
        or "mismatch" in store.load(CART).fields
    )


def test_mismatches_lists_the_open_ones_with_their_reasons(app, payload, http, mismatched):
    result = kustom_cli(app, "mismatches")
    assert result.exit_code == 0, result.output
    assert f"{CART} order={ORDER} " in result.output and "cart=open" in result.output
    assert "  - the order amount 60000 differs from the cart's 54900" in result.output


def test_no_open_mismatches_says_so(app, payload):
    result = kustom_cli(app, "mismatches")
    assert result.exit_code == 0 and result.output == "No open mismatches.\n"


def test_a_completion_that_finishes_closes_its_mismatch(
    app, client, store, payload, http, mismatched
):
    """Kustom's order caught up (or was corrected): the next confirm completes the cart and
    the alert's index forgets it."""
    http.replace(responses.GET, OM_URL, json=om_order(payload))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)
    assert client.post(f"/carts/{CART}/kustom/confirm").status_code == 200
    assert not mismatch_open(store)
    assert kustom_cli(app, "mismatches").output == "No open mismatches.\n"


def test_resolve_retry_clears_the_mark_and_queues_the_completion_again(
    app, client, store, payload, http, task_queue, mismatched, monkeypatch, caplog
):
    # The operator lowered the authorization at Kustom to the cart's amount: order_amount
    # is now the cart's, original_order_amount still what the shopper first authorized.
    http.replace(responses.GET, OM_URL, json=om_order(payload, original_order_amount=60000))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)

    with caplog.at_level(logging.WARNING, logger="kustom_app.completion"):
        result = kustom_cli(app, "resolve", CART, "--retry", "--reason", "amount fixed")

    assert result.exit_code == 0, result.output
    assert task_queue.completions == [(CART, ORDER, "operator")]
    assert not mismatch_open(store)
    assert any(
        r.levelno == logging.WARNING
        and r.getMessage().startswith("kustom.completion.mismatch_retry")
        and "reason=amount fixed" in r.getMessage()
        for r in caplog.records
    )
    outcome, acknowledgements = run_completion_task(app, monkeypatch, path="operator")
    assert outcome == "completed" and acknowledgements == [(CART, ORDER)]
    assert store.load(CART).order_number == "SO-1"


def test_resolve_dismiss_needs_a_reason_then_stops_the_alerts(
    app, client, store, payload, http, task_queue, mismatched, monkeypatch, caplog
):
    refused = kustom_cli(app, "resolve", CART, "--dismiss")
    assert refused.exit_code == 1 and "reason_required" in refused.output
    assert mismatch_open(store)

    with caplog.at_level(logging.WARNING, logger="kustom_app.completion"):
        result = kustom_cli(
            app, "resolve", CART, "--dismiss", "--reason", "cancelled in the Kustom portal"
        )

    assert result.exit_code == 0, result.output
    assert not mismatch_open(store) and task_queue.completions == []
    dismissals = [
        r
        for r in caplog.records
        if r.getMessage().startswith("kustom.completion.mismatch_dismissed")
    ]
    assert len(dismissals) == 1 and dismissals[0].levelno == logging.WARNING
    assert "reason=cancelled in the Kustom portal" in dismissals[0].getMessage()
    assert "cancelled in the Kustom portal" in store.load(CART).fields["mismatch_dismissed"]
    assert store.redis.zscore(store.open_orders_key, CART) is None, "the sweeper stops asking"

    # Kustom pushes the (unacknowledged) order again: no new alert, nothing completed.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kustom_app.completion"):
        outcome, acknowledgements = run_completion_task(app, monkeypatch)
    assert outcome == "mismatch" and acknowledgements == []
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert not mismatch_open(store) and commerce_calls(http) == []


@pytest.mark.parametrize(
    ("args", "exit_code", "words"),
    [
        (["resolve", CART, "--retry"], 1, "mismatch_not_open"),
        (["resolve", CART, "--dismiss", "--reason", "x"], 1, "mismatch_not_open"),
        (["resolve", CART], 2, "Give --retry or --dismiss"),
    ],
)
def test_resolve_refuses_what_it_cannot_do(app, payload, fake_redis, args, exit_code, words):
    before = snapshot(fake_redis)
    result = kustom_cli(app, *args)
    assert result.exit_code == exit_code and words in result.output
    assert snapshot(fake_redis) == before


def test_a_second_payment_cannot_be_retried_only_dismissed(
    app, client, store, payload, http, task_queue
):
    http.get(OM_URL, json=om_order(payload))
    http.post(f"{COMMERCE}/carts/{CART}/complete", json={"orderNumber": "SO-1"}, status=201)
    assert client.post(f"/carts/{CART}/kustom/confirm").status_code == 200
    store.record_mismatch(CART, "o-2", ["a second payment"])  # as the push of o-2 records it

    refused = kustom_cli(app, "resolve", CART, "--retry")
    assert refused.exit_code == 1 and "mismatch_not_retryable" in refused.output
    assert mismatch_open(store) and task_queue.completions == []
    assert kustom_cli(app, "resolve", CART, "--dismiss", "--reason", "refunded").exit_code == 0
    assert not mismatch_open(store)
    assert store.load(CART).cart_state == "completed"
