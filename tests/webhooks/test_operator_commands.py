"""The operator commands' --json documents and exit codes on the app's CLI (fakeredis)."""

from __future__ import annotations

import json

from tests.conftest import make_render


def kustom_cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["kustom", *args])


def test_mismatches_and_resolve_answer_json(app, post_render, task_queue):
    from webhooks import extension

    with app.app_context():
        store = extension.services().store
    assert json.loads(kustom_cli(app, "mismatches", "--json").output) == {"mismatches": []}
    post_render(make_render("cart-m1", 1))
    store.record_mismatch("cart-m1", "order-9", ["the order amount 1 differs from the cart's 2"])

    listed = json.loads(kustom_cli(app, "mismatches", "--json").output)

    (m,) = listed["mismatches"]
    assert (m["cartId"], m["kustomOrderId"], m["cartState"]) == ("cart-m1", "order-9", "open")
    assert m["reasons"] == ["the order amount 1 differs from the cart's 2"] and m["since"] > 0
    refused = kustom_cli(app, "resolve", "cart-m1", "--dismiss", "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.output)["error"]["code"] == "reason_required"
    done = kustom_cli(app, "resolve", "cart-m1", "--dismiss", "--reason", "refunded", "--json")
    assert done.exit_code == 0
    assert json.loads(done.output) == {
        "cartId": "cart-m1",
        "action": "dismiss",
        "kustomOrderId": "order-9",
    }
    assert [e["event"] for e in store.timeline.entries("cart-m1")][-2:] == [
        "completion.mismatch",
        "operator.mismatch_dismissed",
    ]


def test_cart_show_of_a_cart_never_seen_exits_3(app):
    result = kustom_cli(app, "cart", "show", "nope", "--json")
    assert result.exit_code == 3
    assert json.loads(result.output)["error"]["code"] == "cart_not_found"
