"""Issue 15: the operator commands against a real Redis, real worker, and the doubles.

Every command runs as an operator runs it: a subprocess of the ``kustom-app`` console
script or of ``flask --app webhooks.app kustom``, with the service's environment, and its
``--json`` document read from stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.redis_server import free_port
from playground.kustom.purchase import default_address
from tests.conftest import make_render, signed_headers
from tests.domain import cart_store
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ENTRY_POINTS = {
    "script": [str(BIN / "kustom-app")],
    "flask": [str(BIN / "flask"), "--app", "webhooks.app", "kustom"],
}
URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


def run(
    entry: str, *args: str, env: dict[str, str], changes: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, **(changes or {})}
    return subprocess.run(
        [*ENTRY_POINTS[entry], *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_json(entry: str, *args: str, env: dict[str, str], **kw: Any) -> tuple[int, Any]:
    done = run(entry, *args, "--json", env=env, **kw)
    try:
        document = json.loads(done.stdout)
    except ValueError as e:
        raise AssertionError(f"not one JSON document: {done.stdout!r} {done.stderr}") from e
    return done.returncode, document


@pytest.fixture
def store(redis_server):
    return cart_store(redis.Redis.from_url(redis_server.url))


def post_render(http, web, commerce, render: dict[str, Any]) -> None:
    commerce.put_cart(render)
    body = json.dumps(render).encode()
    response = http.post(
        f"{web.url}/commerce/cart-mutation", data=body, headers=signed_headers(body)
    )
    assert response.status_code == 202, response.text


def post_signed(http, web, path: str, event: dict[str, Any]):
    body = json.dumps(event).encode()
    return http.post(f"{web.url}{path}", data=body, headers=signed_headers(body))


def events(report: dict[str, Any]) -> list[str]:
    return [entry["event"] for entry in report["timeline"]]


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """``wanted`` appears in ``seen`` in this order (other events may come between)."""
    rest = iter(seen)
    return all(any(event == w for event in rest) for w in wanted)


@pytest.mark.parametrize("entry", ["script", "flask"])
def test_cart_show_after_a_real_purchase_tells_its_story_in_order(
    entry, http, web, worker, kustom, commerce, store, service_env
):
    cart = f"cart-ops-{uuid.uuid4().hex[:10]}"
    post_render(http, web, commerce, make_render(cart, 1, quantity=1))
    order_id = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS).json()["kustomOrderId"]
    post_render(http, web, commerce, make_render(cart, 2, quantity=3))  # 799.00 SEK
    wait_until(lambda: not store.load(cart).syncing, timeout=60)
    paid = kustom.shopper_pay(order_id, default_address("SE"))
    assert "redirect" in paid, paid
    wait_until(lambda: (s := store.load(cart)) is not None and s.acknowledged, timeout=60)
    capture = {"captureId": f"cap-{uuid.uuid4().hex[:10]}", "cartId": cart, "amount": "799.00",
               "currencyCode": "SEK"}  # fmt: skip
    assert post_signed(http, web, "/commerce/payment-capture", capture).status_code == 202
    wait_until(lambda: "payment.capture.captured" in [e["event"] for e in
               store.timeline.entries(cart)], timeout=60)  # fmt: skip

    code, report = run_json(entry, "cart", "show", cart, env=service_env)

    assert code == 0
    assert report["cartId"] == cart and report["state"] == "completed"
    assert report["version"] == 2 and report["syncing"] is False
    assert report["pendingHash"] == report["syncHash"]
    assert report["kustomOrder"]["id"] == order_id and report["kustomOrder"]["ageSeconds"] >= 0
    completion = report["completion"]
    assert completion["orderNumber"] == commerce.orders_for(cart)[0]["orderNumber"]
    assert completion["acknowledged"] is True and completion["orderId"] == order_id
    assert report["payments"] == [
        {**report["payments"][0], "kind": "capture", "id": capture["captureId"],
         "status": "captured", "amount": 79900, "currency": "SEK"}
    ]  # fmt: skip
    assert report["mismatch"] is None and report["deadLetters"] == []
    seen = events(report)
    assert in_order(
        seen,
        [
            "render",
            "order.created",
            "render",
            "sync.pushed",
            "validation.approved",
            "callback.push",
            "completion.claimed",
            "completion.completed",
            "acknowledged",
            "payment.capture.accepted",
            "payment.capture.captured",
        ],
    ), seen
    renders = [e for e in report["timeline"] if e["event"] == "render"]
    assert [r["version"] for r in renders] == [1, 2]
    assert renders[1]["hash"] == report["syncHash"]
    pushed = next(e for e in report["timeline"] if e["event"] == "sync.pushed")
    assert pushed["hash"] == report["syncHash"] and pushed["order"] == order_id
    stamps = [e["at"] for e in report["timeline"]]
    assert stamps == sorted(stamps)
    # No personal data: the shopper's address never reaches the timeline.
    text = json.dumps(report["timeline"])
    assert default_address("SE")["email"] not in text
    assert default_address("SE")["street_address"] not in text

    shown = run(entry, "cart", "show", cart, env=service_env)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[0] == f"cart {cart}  state=completed version=2"
    assert any(line.startswith(f"  kustom order {order_id} age=") for line in lines)
    assert any(f"capture {capture['captureId']} captured amount=79900 SEK" in x for x in lines)
    assert f"timeline ({len(seen)} entries, oldest first)" in lines
    timeline_lines = lines[lines.index(f"timeline ({len(seen)} entries, oldest first)") + 1 :]
    assert [line.split()[1] for line in timeline_lines] == seen


@pytest.mark.parametrize("entry", ["script", "flask"])
def test_cart_show_of_an_unknown_cart_exits_3(entry, service_env, redis_server):
    code, document = run_json(entry, "cart", "show", "cart-never-seen", env=service_env)
    assert code == 3 and document["error"]["code"] == "cart_not_found"
    text = run(entry, "cart", "show", "cart-never-seen", env=service_env)
    assert text.returncode == 3 and "Nothing is known about cart cart-never-seen" in text.stderr


def test_commands_answer_5_when_redis_is_unreachable(service_env):
    down = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    for args in (["cart", "show", "c1"], ["deadletters", "list"], ["sweep"], ["mismatches"]):
        code, document = run_json("script", *args, env=service_env, changes=down)
        assert code == 5 and document["error"]["code"] == "redis_unreachable", args


def test_a_dead_letter_is_listed_retried_through_the_worker_and_gone(
    http, web, worker, kustom, commerce, store, service_env
):
    cart = f"cart-dl-{uuid.uuid4().hex[:10]}"
    post_render(http, web, commerce, make_render(cart, 1, quantity=1))
    order_id = http.post(f"{web.url}/carts/{cart}/kustom", json=URLS).json()["kustomOrderId"]
    kustom.add_faults("update_order", [{"status": 400, "error_code": "BAD_VALUE"}])
    post_render(http, web, commerce, make_render(cart, 2, quantity=2))

    def dead_letter_of_cart() -> dict[str, Any] | None:
        code, listed = run_json("script", "deadletters", "list", env=service_env)
        assert code == 0
        return next((d for d in listed["deadLetters"] if d["cart"] == cart), None)

    wait_until(lambda: [d for d in store.dead_letters.all() if d.cart_id == cart], timeout=60)
    letter = dead_letter_of_cart()
    assert letter is not None
    assert letter["task"] == "syncKustomOrder" and "KustomRejected" in letter["error"]
    assert letter["ids"]["kustomErrorCode"] == "BAD_VALUE" and letter["at"] > 0
    assert store.load(cart).syncing, "the rejected push left the cart unsynced"
    text = run("flask", "deadletters", "list", env=service_env)
    assert text.returncode == 0 and f"{letter['id']}  syncKustomOrder  cart={cart}" in text.stdout
    code, shown = run_json("script", "cart", "show", cart, env=service_env)
    assert [d["id"] for d in shown["deadLetters"]] == [letter["id"]]
    assert "deadletter" in events(shown) and "sync.rejected" in events(shown)

    code, retried = run_json("flask", "deadletters", "retry", letter["id"], env=service_env)

    assert code == 0 and retried == {
        "id": letter["id"], "task": "syncKustomOrder", "queued": [cart], "removed": True
    }  # fmt: skip
    wait_until(lambda: not store.load(cart).syncing, timeout=60)
    assert kustom.stored_order(order_id)["checkout"]["order_amount"] == 54900
    assert dead_letter_of_cart() is None
    code, again = run_json("script", "deadletters", "retry", letter["id"], env=service_env)
    assert code == 3 and again["error"]["code"] == "dead_letter_not_found"
    code, shown = run_json("script", "cart", "show", cart, env=service_env)
    assert in_order(events(shown), ["deadletter", "operator.deadletter_retry", "sync.pushed"])


def test_a_dead_letter_dropped_is_gone_and_nothing_runs(store, service_env, redis_server):
    entry = {"task": "acknowledgeKustomOrder", "taskId": f"t-{uuid.uuid4().hex}", "at": 1,
             "error": "KustomRejected: no", "cart": "cart-drop", "order": "o-1"}  # fmt: skip
    store.dead_letters.record(json.dumps(entry), keep=1000, cart_id="cart-drop")

    code, dropped = run_json("script", "deadletters", "drop", entry["taskId"], env=service_env)

    assert code == 0 and dropped["removed"] is True
    assert store.dead_letters.find(entry["taskId"]) is None
    code, again = run_json("flask", "deadletters", "drop", entry["taskId"], env=service_env)
    assert code == 3 and again["error"]["code"] == "dead_letter_not_found"


def test_a_dead_letter_without_its_ids_is_not_retryable_and_stays(store, service_env):
    entry = {"task": "completeKustomOrder", "taskId": f"t-{uuid.uuid4().hex}", "at": 1,
             "error": "RuntimeError: x", "args": []}  # fmt: skip
    store.dead_letters.record(json.dumps(entry), keep=1000)
    code, document = run_json("script", "deadletters", "retry", entry["taskId"], env=service_env)
    assert code == 1 and document["error"]["code"] == "not_retryable"
    assert store.dead_letters.find(entry["taskId"]) is not None
    store.dead_letters.remove(store.dead_letters.find(entry["taskId"]))


@pytest.mark.parametrize("entry", ["script", "flask"])
def test_sweep_runs_the_sweeper_now_and_says_what_it_fixed(
    entry, http, web, worker, kustom, commerce, store, service_env
):
    cart = f"cart-sw-{uuid.uuid4().hex[:10]}"
    post_render(http, web, commerce, make_render(cart, 1, quantity=1))
    http.post(f"{web.url}/carts/{cart}/kustom", json=URLS).raise_for_status()
    # A render stored while its job was lost: the cart waits for the sweeper.
    from kustom_app.render import load_render
    from kustom_app.sync import ingest_render

    outcome, _ = ingest_render(store, load_render(make_render(cart, 2, quantity=4)))
    assert outcome.enqueue and store.load(cart).syncing
    stale = int(service_env["SYNC_STALE_SECONDS"])
    wait_until(lambda: store.stale_syncing(stale * 1000, 10_000).count(cart), timeout=30)

    code, report = run_json(entry, "sweep", env=service_env)

    assert code == 0 and report["resynced"] >= 1 and report["fixed"] >= 1
    assert report["stale_syncs"] >= 1
    wait_until(lambda: not store.load(cart).syncing, timeout=60)
    assert "sweeper.resynced" in [e["event"] for e in store.timeline.entries(cart)]
    text = run(entry, "sweep", env=service_env)
    assert text.returncode == 0 and text.stdout.startswith("Sweeper run: fixed ")


def test_sweep_exits_4_while_another_run_holds_the_lock(store, service_env):
    lock = store.reconcile_lock(timeout=60)
    assert lock.acquire(blocking=False)
    try:
        code, document = run_json("script", "sweep", env=service_env)
    finally:
        lock.release()
    assert code == 4 and document["error"]["code"] == "sweeper_busy"


def doctor(entry: str, env: dict[str, str], **changes: str) -> tuple[int, dict[str, Any]]:
    code, document = run_json(entry, "doctor", env=env, changes=changes)
    return code, document


def checks(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["checks"]}


@pytest.mark.parametrize("entry", ["script", "flask"])
def test_doctor_passes_a_healthy_deployment(entry, service_env, kustom, commerce, web):
    code, document = doctor(entry, service_env)
    assert code == 0 and document["healthy"] is True, document
    found = checks(document)
    assert list(found) == [
        "redis", "broker", "kustom", "commerce", "public_base_url", "visibility_timeout",
        "callback_secret",
    ]  # fmt: skip
    assert found["kustom"]["details"]["status"] == 404
    assert found["commerce"]["details"]["status"] == 404
    limits = found["visibility_timeout"]["details"]
    assert limits["visibilityTimeoutSeconds"] == 60
    assert limits["marginSeconds"] == 60 - max(limits["limits"].values()) > 0
    text = run(entry, "doctor", env=service_env)
    assert text.returncode == 0 and text.stdout.splitlines()[-1] == "healthy"
    assert all(line.startswith("PASS  ") for line in text.stdout.splitlines()[:-1])


def test_doctor_tells_wrong_kustom_credentials(service_env, kustom):
    code, document = doctor("script", service_env, KUSTOM_PASSWORD="not-the-password")
    assert code == 1 and document["healthy"] is False
    found = checks(document)
    assert found["kustom"]["ok"] is False and found["kustom"]["details"]["status"] == 401
    assert "credentials refused" in found["kustom"]["reason"]
    assert "not-the-password" not in json.dumps(document)
    assert all(c["ok"] for name, c in found.items() if name != "kustom")
    text = run("flask", "doctor", env=service_env, changes={"KUSTOM_PASSWORD": "wrong"})
    assert text.returncode == 1
    assert "FAIL  kustom" in text.stdout and "unhealthy: 1 check(s) failed" in text.stdout


def test_doctor_tells_a_commerce_secret_mismatch(service_env, commerce):
    code, document = doctor("script", service_env, COMMERCE_WEBHOOK_SECRET="another-secret")
    found = checks(document)
    assert code == 1 and found["commerce"]["ok"] is False
    assert found["commerce"]["details"]["status"] == 401
    assert "COMMERCE_WEBHOOK_SECRET differs" in found["commerce"]["reason"]
    assert "another-secret" not in json.dumps(document)
    assert found["kustom"]["ok"] is True


def test_doctor_tells_unreachable_services_and_production_mistakes(service_env):
    dead = f"http://127.0.0.1:{free_port()}"
    code, document = doctor(
        "script",
        service_env,
        KUSTOM_API_URL=dead,
        COMMERCE_API_URL=dead,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        APP_ENV="production",
    )
    found = checks(document)
    assert code == 1
    assert {name for name, c in found.items() if not c["ok"]} == {
        "redis", "broker", "kustom", "commerce", "public_base_url"
    }  # fmt: skip
    assert "unreachable" in found["kustom"]["reason"]
    assert "unreachable" in found["commerce"]["reason"]
    assert found["public_base_url"]["reason"] == "must be https in production"


def test_doctor_fails_the_development_callback_secret(service_env):
    env = {k: v for k, v in service_env.items() if k != "CALLBACK_SECRET"}
    code, document = doctor("script", env, CALLBACK_SECRET="")
    assert code == 1 and checks(document)["callback_secret"]["ok"] is False
