"""The OnKustomValidation machinery: hook input, rule loading, running, effects, integrity."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import logging
import sys
import threading
import time
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import kustom_app.validation as validation
from kustom_app.payload import build_order_payload, payload_hash
from kustom_app.render import dump_render, load_render
from kustom_app.settings import ConfigurationError
from kustom_app.state import CartStore
from kustom_app.sync import ingest_render
from kustom_app.validation import (
    ALLOWED_CODES,
    HOOK,
    NamedRule,
    OrderValidator,
    build_hook_input,
    check_integrity,
    first_rejection,
    load_rules,
    run_rules,
)
from tests.conftest import CONTRACT_RENDER, FIXTURES, make_render

EXAMPLE_PKG = FIXTURES / "validation_rules_pkg"

# The reference's hook input declaration (reference/001, "Hook Input").
REFERENCE_KEYS = {
    "hook",
    "channelKey",
    "currencyCode",
    "locale",
    "taxIncluded",
    "orderTotal",
    "orderTaxTotal",
    "orderLines",
}
REFERENCE_LINE_KEYS = {
    "productNumber",
    "description",
    "quantity",
    "reservedQuantity",
    "unitPrice",
    "salesTotal",
    "taxTotal",
}


def loaded(render: dict[str, Any] | None = None) -> dict[str, Any]:
    return load_render(copy.deepcopy(render or CONTRACT_RENDER))


def rule(name: str, func: Any) -> NamedRule:
    return NamedRule(name, func)


def reject(code: str = "approval_failed", message: str | None = "no") -> dict[str, Any]:
    effect = {"effect": "validationError", "code": code}
    if message is not None:
        effect["message"] = message
    return effect


# -- hook input -----------------------------------------------------------------------------


def test_a_render_without_locale_or_channel_gives_nothing_there_and_kustom_a_locale() -> None:
    data = copy.deepcopy(CONTRACT_RENDER)
    del data["locale"], data["channelKey"]
    render = load_render(data)
    hook_input = build_hook_input(render)
    assert hook_input["locale"] is None  # the reference's `locale: text | nothing`
    assert hook_input["channelKey"] is None
    assert build_order_payload(render)["locale"] == "en-SE"  # Kustom requires one


def test_hook_input_has_exactly_the_reference_shape() -> None:
    hook_input = build_hook_input(loaded())
    assert set(hook_input) == REFERENCE_KEYS
    assert all(set(line) == REFERENCE_LINE_KEYS for line in hook_input["orderLines"])
    assert hook_input == {
        "hook": "OnKustomValidation",
        "channelKey": "retail-se",
        "currencyCode": "SEK",
        "locale": "sv-SE",
        "taxIncluded": True,
        "orderTotal": Decimal("549.00"),
        "orderTaxTotal": Decimal("109.80"),
        "orderLines": [
            {
                "productNumber": "TSHIRT-RED-M",
                "description": "Red T-Shirt",
                "quantity": 2,
                "reservedQuantity": 2,
                "unitPrice": Decimal("250.00"),
                "salesTotal": Decimal("500.00"),
                "taxTotal": Decimal("100.00"),
            }
        ],
    }
    assert hook_input["hook"] == HOOK


def test_hook_input_money_is_decimal_and_counts_are_int() -> None:
    hook_input = build_hook_input(loaded())
    assert type(hook_input["orderTotal"]) is Decimal
    assert type(hook_input["orderTaxTotal"]) is Decimal
    line = hook_input["orderLines"][0]
    assert type(line["quantity"]) is int and type(line["reservedQuantity"]) is int
    assert all(type(line[k]) is Decimal for k in ("unitPrice", "salesTotal", "taxTotal"))


def test_hook_input_from_a_stored_render_equals_the_loaded_one() -> None:
    stored = dump_render(loaded())
    assert build_hook_input(stored) == build_hook_input(loaded())


def test_hook_input_leaves_out_removed_lines_and_shipping() -> None:
    render = copy.deepcopy(CONTRACT_RENDER)
    removed = {
        **render["lines"][0],
        "lineId": "l2",
        "productNumber": "GONE",
        "quantity": 0,
        "reservedQuantity": 0,
        "salesTotal": "0.00",
        "taxTotal": "0.00",
    }
    render["lines"].append(removed)
    hook_input = build_hook_input(loaded(render))
    assert [line["productNumber"] for line in hook_input["orderLines"]] == ["TSHIRT-RED-M"]


def test_hook_input_optional_fields_are_none_and_reserved_defaults_to_quantity() -> None:
    render = copy.deepcopy(CONTRACT_RENDER)
    del render["channelKey"]
    del render["lines"][0]["reservedQuantity"]
    render["lines"][0]["description"] = None
    hook_input = build_hook_input(loaded(render))
    assert hook_input["channelKey"] is None
    assert hook_input["orderLines"][0]["description"] is None
    assert hook_input["orderLines"][0]["reservedQuantity"] == 2


# -- rule loading ---------------------------------------------------------------------------


def no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])


def test_env_specs_load_in_the_order_given(monkeypatch: pytest.MonkeyPatch) -> None:
    no_entry_points(monkeypatch)
    rules = load_rules(
        ["kustom_app.rules:stock_available", " tests.kustom_app.test_validation:approve "]
    )
    assert [r.name for r in rules] == [
        "kustom_app.rules:stock_available",
        "tests.kustom_app.test_validation:approve",
    ]
    assert rules[1].func is approve


def test_the_same_rule_named_twice_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    no_entry_points(monkeypatch)
    rules = load_rules(["kustom_app.rules:stock_available", "kustom_app.rules:stock_available"])
    assert len(rules) == 1


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("kustom_app.rules", "module:function"),
        (":stock_available", "module:function"),
        ("kustom_app.rules:", "module:function"),
        ("kustom_app.no_such_module:rule", "cannot be loaded"),
        ("kustom_app.rules:no_such_rule", "cannot be loaded"),
        ("kustom_app.validation:HOOK", "not callable"),
        ("kustom_app.rules:minimum_order_total", "KUSTOM_MIN_ORDER_TOTAL"),
    ],
)
def test_a_bad_spec_fails_loudly(monkeypatch: pytest.MonkeyPatch, spec: str, fragment: str) -> None:
    no_entry_points(monkeypatch)
    monkeypatch.delenv("KUSTOM_MIN_ORDER_TOTAL", raising=False)
    with pytest.raises(ConfigurationError, match=fragment):
        load_rules([spec])


def _install_example_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the example package discoverable exactly as `pip install` would.

    A ``*.dist-info`` directory with the entry points declared in its pyproject.toml is
    what importlib.metadata reads from an installed distribution; with it and the source
    on sys.path, discovery runs through the real importlib.metadata machinery.
    """
    project = tomllib.loads((EXAMPLE_PKG / "pyproject.toml").read_text())["project"]
    dist_info = tmp_path / "kustom_example_rules-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE_PKG / "src"))
    monkeypatch.delitem(sys.modules, "kustom_example_rules", raising=False)


def test_the_example_package_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_example_package(tmp_path, monkeypatch)
    rules = load_rules(["kustom_app.rules:stock_available"])
    # Entry points come first, then KUSTOM_VALIDATION_RULES.
    assert [r.name for r in rules] == [
        "max-quantity-per-product",
        "kustom_app.rules:stock_available",
    ]
    render = make_render(quantity=11)
    rejection = run_rules(rules, build_hook_input(load_render(render)))
    assert rejection is not None
    assert (rejection.code, rejection.rule) == ("approval_failed", "max-quantity-per-product")
    assert rejection.message == "You can buy at most 10 of each item: TSHIRT-RED-M"
    assert run_rules(rules, build_hook_input(load_render(make_render(quantity=10)))) is None


def test_a_broken_entry_point_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    broken = importlib.metadata.EntryPoint(
        name="broken", value="kustom_app.no_such_module:rule", group=validation.ENTRY_POINT_GROUP
    )

    def entry_points(**kwargs: Any) -> list[Any]:
        assert kwargs == {"group": "kustom_app.validation_rules"}
        return [broken]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with pytest.raises(ConfigurationError, match=r"'broken'.*cannot be loaded"):
        load_rules()


def test_entry_points_run_sorted_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    group = validation.ENTRY_POINT_GROUP
    found = [
        importlib.metadata.EntryPoint("zeta", "kustom_app.rules:stock_available", group),
        importlib.metadata.EntryPoint("alpha", "tests.kustom_app.test_validation:approve", group),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: found)
    assert [r.name for r in load_rules()] == ["alpha", "zeta"]


# -- effects --------------------------------------------------------------------------------


def approve(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
    return []


def test_only_validation_errors_count_and_the_first_wins() -> None:
    effects = [
        {"effect": "sendEmail", "to": "x"},
        reject("unsupported_shipping_address", "first"),
        reject("address_error", "second"),
    ]
    rejection = first_rejection("r", effects)
    assert rejection is not None
    assert (rejection.code, rejection.message, rejection.rule) == (
        "unsupported_shipping_address",
        "first",
        "r",
    )
    assert first_rejection("r", [{"effect": "log"}, {"code": "approval_failed"}]) is None


@pytest.mark.parametrize("code", sorted(ALLOWED_CODES))
def test_each_allowed_code_is_passed_on(code: str) -> None:
    rejection = first_rejection("r", [reject(code, "text")])
    assert rejection is not None and rejection.code == code


def test_message_falls_back_to_code() -> None:
    rejection = first_rejection("r", [reject("address_error", None)])
    assert rejection is not None and rejection.message == "address_error"
    rejection = first_rejection("r", [reject("address_error", "  ")])
    assert rejection is not None and rejection.message == "address_error"


def test_an_unknown_code_is_a_rule_bug_sent_as_approval_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="kustom_app.validation"):
        rejection = first_rejection("shop:my_rule", [reject("out_of_stock", "Sold out")])
    assert rejection is not None
    assert (rejection.code, rejection.message) == ("approval_failed", "Sold out")
    assert "kustom.validation.rule_bug rule=shop:my_rule" in caplog.text


def test_a_non_text_message_is_a_rule_bug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="kustom_app.validation"):
        rejection = first_rejection(
            "r", [{"effect": "validationError", "code": "address_error", "message": 42}]
        )
    assert rejection is not None and rejection.message == "address_error"
    assert "rule_bug rule=r" in caplog.text


# -- running rules --------------------------------------------------------------------------

HOOK_INPUT = build_hook_input(load_render(copy.deepcopy(CONTRACT_RENDER)))


@pytest.mark.parametrize(
    "result",
    [None, [], (), {"effect": "log"}, iter([{"effect": "log"}])],
    ids=["none", "list", "tuple", "one-effect", "iterator"],
)
def test_rules_may_return_none_one_effect_or_an_iterable(result: Any) -> None:
    assert run_rules([rule("r", lambda _: result)], HOOK_INPUT) is None


def test_a_single_effect_dict_rejects() -> None:
    rejection = run_rules([rule("r", lambda _: reject("address_error", "bad"))], HOOK_INPUT)
    assert rejection is not None and (rejection.code, rejection.message) == ("address_error", "bad")


def test_a_generator_rule_works() -> None:
    def gen(hook_input: dict[str, Any]):
        if hook_input["orderTotal"] > 500:
            yield reject("approval_failed", "too much")

    rejection = run_rules([rule("gen", gen)], HOOK_INPUT)
    assert rejection is not None and rejection.message == "too much"


def test_a_rule_that_raises_rejects_approval_failed_logged_with_its_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
        raise KeyError("orderTotals")

    with caplog.at_level(logging.ERROR, logger="kustom_app.validation"):
        rejection = run_rules([rule("shop.rules:boom", boom)], HOOK_INPUT)
    assert rejection is not None
    assert (rejection.code, rejection.rule, rejection.reason) == (
        "approval_failed",
        "shop.rules:boom",
        "rule_failed",
    )
    assert "orderTotals" not in rejection.message  # nothing internal reaches the shopper
    assert "kustom.validation.rule_failed rule=shop.rules:boom error=KeyError" in caplog.text


@pytest.mark.parametrize("result", [42, "approval_failed", [42]], ids=["int", "str", "list-of-int"])
def test_a_rule_returning_garbage_rejects(result: Any) -> None:
    rejection = run_rules([rule("r", lambda _: result)], HOOK_INPUT)
    assert rejection is not None and rejection.reason == "rule_failed"


def test_a_slow_rule_rejects_within_its_budget(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def slow(hook_input: dict[str, Any]) -> list[dict[str, Any]]:
        release.wait(5)
        return []

    started = time.monotonic()
    try:
        with caplog.at_level(logging.ERROR, logger="kustom_app.validation"):
            rejection = run_rules([rule("shop:slow", slow)], HOOK_INPUT, budget=0.2)
    finally:
        release.set()
    elapsed = time.monotonic() - started
    assert rejection is not None
    assert (rejection.code, rejection.rule, rejection.reason) == (
        "approval_failed",
        "shop:slow",
        "rule_timeout",
    )
    assert 0.2 <= elapsed < 0.5
    assert "kustom.validation.rule_timeout rule=shop:slow" in caplog.text


def test_the_overall_deadline_caps_the_rule_budget() -> None:
    release = threading.Event()
    started = time.monotonic()
    try:
        rejection = run_rules(
            [rule("slow", lambda _: release.wait(5))],
            HOOK_INPUT,
            budget=5,
            deadline=started + 0.1,
        )
    finally:
        release.set()
    assert rejection is not None and rejection.reason == "rule_timeout"
    assert time.monotonic() - started < 0.4


def test_the_first_rule_in_order_wins_even_when_a_later_one_answers_first() -> None:
    def slow_reject(hook_input: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.1)
        return reject("address_error", "first rule")

    rules = [rule("a", slow_reject), rule("b", lambda _: reject("approval_failed", "second"))]
    rejection = run_rules(rules, HOOK_INPUT)
    assert rejection is not None and (rejection.rule, rejection.message) == ("a", "first rule")


def test_rules_run_side_by_side() -> None:
    rules = [rule(f"r{i}", lambda _: time.sleep(0.2)) for i in range(4)]
    started = time.monotonic()
    assert run_rules(rules, HOOK_INPUT) is None
    assert time.monotonic() - started < 0.45


def test_a_rule_cannot_change_what_the_next_one_sees() -> None:
    seen: list[Decimal] = []

    def vandal(hook_input: dict[str, Any]) -> None:
        hook_input["orderTotal"] = Decimal(0)
        hook_input["orderLines"].clear()

    def witness(hook_input: dict[str, Any]) -> None:
        seen.append(hook_input["orderTotal"])
        seen.append(Decimal(len(hook_input["orderLines"])))

    original = copy.deepcopy(HOOK_INPUT)
    assert run_rules([rule("v", vandal), rule("w", witness)], HOOK_INPUT) is None
    assert seen == [Decimal("549.00"), Decimal(1)]
    assert original == HOOK_INPUT


# -- the integrity rule ---------------------------------------------------------------------


def kustom_order(render: dict[str, Any]) -> dict[str, Any]:
    """Kustom's order as it would echo the payload we sent for ``render``."""
    return copy.deepcopy(build_order_payload(load_render(copy.deepcopy(render))))


def integrity(store: CartStore, order: dict[str, Any], cart_id: str = "cart-1"):
    state = store.load(cart_id)
    render = load_render(state.render) if state and state.render else None
    return check_integrity(cart_id, order, state, render)


def test_integrity_approves_kustoms_order_equal_to_the_render(store: CartStore) -> None:
    render = make_render("cart-1", 1)
    ingest_render(store, load_render(render))
    assert integrity(store, kustom_order(render)) is None


def test_integrity_ignores_line_order_and_names_and_defaults(store: CartStore) -> None:
    render = make_render("cart-1", 1)
    ingest_render(store, load_render(render))
    order = kustom_order(render)
    order["order_lines"].reverse()
    order["order_lines"][0]["name"] = "Renamed by Kustom"
    del order["order_lines"][1]["total_discount_amount"]  # Kustom's default is 0
    assert integrity(store, order) is None


def test_integrity_rejects_a_sync_in_flight(store: CartStore) -> None:
    first = make_render("cart-1", 1)
    _, prepared = ingest_render(store, load_render(first))
    store.record_order("cart-1", "o-1", prepared.hash, prepared.payload or {})
    second = make_render("cart-1", 2, quantity=3)
    ingest_render(store, load_render(second))
    # Even Kustom's order already equal to the new render is refused until the sync lands.
    for order in (kustom_order(first), kustom_order(second)):
        rejection = integrity(store, order)
        assert rejection is not None
        assert (rejection.code, rejection.reason, rejection.rule) == (
            "approval_failed",
            "sync_in_flight",
            "integrity",
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda o: o.update(order_amount=o["order_amount"] - 100), "amount_mismatch"),
        (lambda o: o.update(order_tax_amount=o["order_tax_amount"] + 1), "amount_mismatch"),
        (lambda o: o.update(purchase_currency="EUR"), "currency_mismatch"),
        (lambda o: o.update(merchant_reference1="cart-2"), "merchant_reference_mismatch"),
        (lambda o: o.pop("merchant_reference1"), "merchant_reference_mismatch"),
        (lambda o: o["order_lines"].pop(), "lines_mismatch"),
        (lambda o: o["order_lines"].append(dict(o["order_lines"][0])), "lines_mismatch"),
        (lambda o: o["order_lines"][0].update(reference="OTHER"), "lines_mismatch"),
        (lambda o: o["order_lines"][0].update(type="digital"), "lines_mismatch"),
        (lambda o: o["order_lines"][0].update(tax_rate=1200), "lines_mismatch"),
        # Same line total, different split: 4 x 125.00 instead of 2 x 250.00.
        (lambda o: o["order_lines"][0].update(quantity=4, unit_price=12500), "lines_mismatch"),
        (
            lambda o: o["order_lines"][0].update(unit_price=30000, total_discount_amount=10000),
            "lines_mismatch",
        ),
        (lambda o: o["order_lines"][0].update(total_tax_amount=9999), "lines_mismatch"),
    ],
)
def test_integrity_rejects_an_order_that_differs_from_the_render(
    store: CartStore, change: Any, reason: str
) -> None:
    render = make_render("cart-1", 1)
    ingest_render(store, load_render(render))
    order = kustom_order(render)
    change(order)
    rejection = integrity(store, order)
    assert rejection is not None and (rejection.code, rejection.reason) == (
        "approval_failed",
        reason,
    )


def typed_render() -> dict[str, Any]:
    render: dict[str, Any] = json.loads((FIXTURES / "renders" / "eur_typed_lines.json").read_text())
    return render


def test_integrity_approves_a_cart_with_coupon_gift_card_and_fee_lines(store: CartStore) -> None:
    render = typed_render()
    ingest_render(store, load_render(render))
    assert integrity(store, kustom_order(render), "cart-de-3003") is None


@pytest.mark.parametrize(
    "change",
    [
        lambda lines: lines.remove(next(x for x in lines if x["type"] == "gift_card")),
        lambda lines: next(x for x in lines if x["type"] == "discount").update(type="physical"),
        lambda lines: next(x for x in lines if x["type"] == "surcharge").update(type="physical"),
    ],
)
def test_integrity_rejects_a_typed_line_lost_or_flattened(store: CartStore, change: Any) -> None:
    render = typed_render()
    ingest_render(store, load_render(render))
    order = kustom_order(render)
    change(order["order_lines"])
    rejection = integrity(store, order, "cart-de-3003")
    assert rejection is not None and rejection.reason == "lines_mismatch"


def test_hook_input_lists_discount_lines_with_their_negative_amounts() -> None:
    lines = build_hook_input(loaded(typed_render()))["orderLines"]
    assert [(line["productNumber"], line["salesTotal"]) for line in lines] == [
        ("MUG-BLUE", Decimal("80.00")),
        ("SPRING10", Decimal("-10.00")),
        ("GIFTCARD-****4242", Decimal("-20.00")),
        ("small-order-fee", Decimal("5.00")),
        ("EBOOK-42", Decimal("9.99")),
    ]
    assert set(lines[1]) == set(lines[0])  # the reference's shape: no extra fields


def test_integrity_rejects_an_unknown_cart(store: CartStore) -> None:
    rejection = integrity(store, kustom_order(make_render("cart-1", 1)))
    assert rejection is not None and rejection.reason == "unknown_cart"


def test_integrity_rejects_an_unpayable_cart(store: CartStore) -> None:
    render = make_render("cart-1", 1)
    order = kustom_order(render)
    render["lines"][0]["salesTotal"] = "499.00"  # no longer adds up
    ingest_render(store, load_render(render))  # no Kustom order yet: nothing to sync
    rejection = integrity(store, order)
    assert rejection is not None and rejection.reason == "cart_not_payable"


def test_integrity_rejects_a_cart_no_longer_open(store: CartStore, fake_redis) -> None:
    render = make_render("cart-1", 1)
    ingest_render(store, load_render(render))
    fake_redis.hset("kustom:cart:cart-1", "state", "completed")
    rejection = integrity(store, kustom_order(render))
    assert rejection is not None and rejection.reason == "cart_completed"


# -- the whole answer -----------------------------------------------------------------------


def test_validator_answers_by_its_deadline_even_when_redis_hangs(store: CartStore) -> None:
    release = threading.Event()

    class HangingStore:
        def load(self, cart_id: str) -> None:
            release.wait(5)

    validator = OrderValidator(deadline=0.3)
    started = time.monotonic()
    try:
        outcome = validator.validate("cart-1", {}, HangingStore(), None)  # type: ignore[arg-type]
    finally:
        release.set()
    assert time.monotonic() - started < 0.5
    assert outcome.rejection is not None
    assert (outcome.rejection.code, outcome.rejection.reason) == ("approval_failed", "deadline")


def test_validator_rejects_when_the_store_fails(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenStore:
        def load(self, cart_id: str) -> None:
            raise ConnectionError("redis down")

    with caplog.at_level(logging.ERROR, logger="kustom_app.validation"):
        outcome = OrderValidator().validate("cart-1", {}, BrokenStore(), None)  # type: ignore[arg-type]
    assert outcome.rejection is not None and outcome.rejection.reason == "error"
    assert "kustom.validation.failed cart=cart-1 error=ConnectionError" in caplog.text


def test_validator_runs_rules_only_after_integrity_passes(store: CartStore) -> None:
    calls: list[str] = []
    validator = OrderValidator([rule("r", lambda _: calls.append("ran"))])
    render = make_render("cart-1", 1)
    ingest_render(store, load_render(render))
    bad = kustom_order(render)
    bad["order_amount"] += 1
    outcome = validator.validate("cart-1", bad, store, None)
    assert outcome.rejection is not None and outcome.rejection.rule == "integrity"
    assert calls == []
    assert validator.validate("cart-1", kustom_order(render), store, None).approved
    assert calls == ["ran"]


def test_payload_hash_of_the_answered_order_is_what_integrity_compares(store: CartStore) -> None:
    # The integrity rule compares against the payload the sync would send: same hash.
    render = make_render("cart-1", 1)
    _, prepared = ingest_render(store, load_render(render))
    assert prepared.hash == payload_hash(kustom_order(render))
