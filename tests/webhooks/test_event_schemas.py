"""schemas/*.schema.json say exactly what the service accepts (docs/api.md).

Each case goes through both the JSON Schema (draft 2020-12, as a backend team's CI would
run it) and the service's own validation, and both must give the same verdict, except for
the rules only the service checks (arithmetic and per-currency decimals, listed in
docs/api.md), which are cases of their own: accepted by the schema, refused by the service.
Bodies drawn from the schemas (by schemathesis, valid and invalid ones) are held to the
same agreement at the end.

The service's validation of a render is what makes it payable: the field rules of
`load_render` (POST /commerce/cart-mutation answers 400 there) and the cart id rule, then
the payload build (`prepare_render`; the checkout answers 422 `cart_not_payable` there).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from marshmallow import ValidationError
from schemathesis import GenerationMode

from kustom_app.ordermanagement import prepare_capture, prepare_refund
from kustom_app.ordermanagement.errors import PaymentEventError
from kustom_app.render import load_render
from kustom_app.sync import prepare_render
from tests.conftest import CONTRACT_RENDER, FIXTURES
from webhooks.openapi import openapi_document
from webhooks.payments import CancelEventSchema, CaptureEventSchema, RefundEventSchema
from webhooks.schemas import CART_ID_PATTERN

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RENDERS = sorted((FIXTURES / "renders").glob("*.json"))


def schema_validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


RENDER_SCHEMA = schema_validator("cart-render")


def schema_accepts(validator: Draft202012Validator, instance: Any) -> bool:
    return validator.is_valid(instance)


def service_accepts_render(render: Any) -> bool:
    try:
        loaded = load_render(render)
    except ValidationError:
        return False
    if not CART_ID_PATTERN.match(loaded["cartId"]):
        return False
    return prepare_render(loaded).payload is not None


@pytest.mark.parametrize("path", RENDERS, ids=lambda p: p.stem)
def test_every_fixture_render_is_accepted_by_both(path):
    render = json.loads(path.read_text())
    assert schema_accepts(RENDER_SCHEMA, render), list(RENDER_SCHEMA.iter_errors(render))
    assert service_accepts_render(render)


def _line(render: dict[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = render["lines"][0]
    return line


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(render: dict[str, Any]) -> None:
        target = render
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop(*path: Any) -> Callable[[dict[str, Any]], None]:
    def change(render: dict[str, Any]) -> None:
        target = render
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _as_discount(unit_price: str, total: str, tax: str) -> Callable[[dict[str, Any]], None]:
    """A coupon line added to the contract cart, with its totals taken off the cart's."""

    def change(render: dict[str, Any]) -> None:
        render["lines"].append(
            {
                "lineId": "coupon",
                "productNumber": "SUMMER",
                "type": "discount",
                "quantity": 1,
                "unitPrice": unit_price,
                "salesTotal": total,
                "taxRate": "0.25",
                "taxTotal": tax,
            }
        )

    return change


def _valid_discount(render: dict[str, Any]) -> None:
    _as_discount("-50.00", "-50.00", "-10.00")(render)
    render["cartTotal"], render["cartTaxTotal"] = "499.00", "99.80"


def _many_lines(count: int) -> Callable[[dict[str, Any]], None]:
    def change(render: dict[str, Any]) -> None:
        line = _line(render)
        render["lines"] = [
            {**line, "lineId": f"l{i}", "quantity": 0, "salesTotal": "0", "taxTotal": "0"}
            for i in range(count - 1)
        ] + [line]

    return change


# (id, change, accepted by both). Each one a rule the schema states.
BOTH = [
    ("as is", lambda r: None, True),
    ("money as JSON numbers", lambda r: r.update(cartTotal=549, cartTaxTotal=109.8), True),
    ("a discount line taking money off", _valid_discount, True),
    ("lower-case codes", lambda r: r.update(currencyCode="sek", countryCode="se"), True),
    ("unknown fields are ignored", _set("promotion", value={"code": "X"}), True),
    ("version 7.0 is 7", _set("version", value=7.0), True),
    ("null optionals", lambda r: r.update(locale=None, channelKey=None), True),
    ("null line optionals", lambda r: _line(r).update(type=None, discountTotal=None), True),
    ("no shipping options", _drop("shippingOptions"), True),
    ("a cart id of 255", _set("cartId", value="c" * 255), True),
    *[(f"without {field}", _drop(field), False) for field in RENDER_SCHEMA.schema["required"]],
    *[
        (f"line without {field}", _drop("lines", 0, field), False)
        for field in ("lineId", "productNumber", "quantity", "unitPrice", "salesTotal")
    ],
    ("an empty cart id", _set("cartId", value=""), False),
    ("a cart id of 256", _set("cartId", value="c" * 256), False),
    ("a cart id with a space", _set("cartId", value="cart 1"), False),
    ("a cart id starting with a dot", _set("cartId", value=".cart"), False),
    ("a negative version", _set("version", value=-1), False),
    ("a fractional version", _set("version", value=1.5), False),
    ("a version as text", _set("version", value="7"), False),
    ("a version beyond int64", _set("version", value=2**63), False),
    ("a currency of two letters", _set("currencyCode", value="SE"), False),
    ("a currency as a number", _set("currencyCode", value=752), False),
    ("a country of three letters", _set("countryCode", value="SWE"), False),
    ("a locale with an underscore", _set("locale", value="sv_SE"), False),
    ("taxIncluded as text", _set("taxIncluded", value="true"), False),
    ("taxIncluded as 1", _set("taxIncluded", value=1), False),
    ("a total with a decimal comma", _set("cartTotal", value="549,00"), False),
    ("a total as a boolean", _set("cartTotal", value=True), False),
    ("a null total", _set("cartTotal", value=None), False),
    ("a total of 65 characters", _set("cartTotal", value="0" * 62 + "549"), False),
    ("a negative cart total", _set("cartTotal", value="-549.00"), False),
    ("no lines", _set("lines", value=[]), False),
    ("lines not a list", _set("lines", value={"l1": {}}), False),
    ("1001 lines", _many_lines(1001), False),
    ("a negative quantity", _set("lines", 0, "quantity", value=-2), False),
    ("a fractional quantity", _set("lines", 0, "quantity", value=2.5), False),
    ("an unknown line type", _set("lines", 0, "type", value="coupon"), False),
    ("sales_tax is the service's own line", _set("lines", 0, "type", value="sales_tax"), False),
    ("a tax rate above 1", _set("lines", 0, "taxRate", value="25"), False),
    ("a negative tax rate", _set("lines", 0, "taxRate", value=-0.25), False),
    ("a negative discountTotal", _set("lines", 0, "discountTotal", value="-1.00"), False),
    (
        "a physical line with a negative total",
        _set("lines", 0, "salesTotal", value="-500.00"),
        False,
    ),
    ("a discount line with a positive price", _as_discount("50.00", "-50.00", "-10.00"), False),
    ("a discount line with a positive total", _as_discount("-50.00", "50.00", "10.00"), False),
    ("shipping without price", _drop("shipping", "price"), False),
    ("shipping at a negative price", _set("shipping", "price", value="-49.00"), False),
    ("shipping options not a list", _set("shippingOptions", value="postnord"), False),
    ("an option without id", _drop("shippingOptions", 0, "id"), False),
]

# (id, change): accepted by the schema, refused by the service (docs/api.md lists these).
SERVICE_ONLY = [
    ("line total off by a cent", _set("lines", 0, "salesTotal", value="499.99")),
    ("cart total not the sum of the lines", _set("cartTotal", value="550.00")),
    ("cart tax not the sum of the lines' tax", _set("cartTaxTotal", value="100.00")),
    ("more decimals than SEK has", _set("lines", 0, "unitPrice", value="250.001")),
    ("a tax rate Kustom cannot write", _set("lines", 0, "taxRate", value="0.08875")),
    ("a line's tax off its rate", _set("lines", 0, "taxTotal", value="90.00")),
    ("only removed lines", lambda r: _line(r).update(quantity=0, salesTotal="0", taxTotal="0")),
]


def _changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    render = copy.deepcopy(CONTRACT_RENDER)
    change(render)
    return render


@pytest.mark.parametrize(
    ("change", "accepted"), [(c, a) for _, c, a in BOTH], ids=[i for i, _, _ in BOTH]
)
def test_schema_and_service_agree_on_renders(change, accepted):
    render = _changed(change)
    assert schema_accepts(RENDER_SCHEMA, render) is accepted, list(
        RENDER_SCHEMA.iter_errors(render)
    )
    assert service_accepts_render(render) is accepted


@pytest.mark.parametrize("change", [c for _, c in SERVICE_ONLY], ids=[i for i, _ in SERVICE_ONLY])
def test_rules_only_the_service_checks(change):
    render = _changed(change)
    assert schema_accepts(RENDER_SCHEMA, render), list(RENDER_SCHEMA.iter_errors(render))
    assert not service_accepts_render(render)


# -- payment events -------------------------------------------------------------------------


def service_accepts_event(kind: str, event: Any) -> bool:
    schema, prepare = {
        "payment-capture": (CaptureEventSchema(), prepare_capture),
        "payment-refund": (RefundEventSchema(), prepare_refund),
        "order-cancel": (CancelEventSchema(), None),
    }[kind]
    try:
        loaded = schema.load(event)
        if prepare is not None:
            prepare(loaded)
    except (ValidationError, PaymentEventError):
        return False
    return True


CAPTURE = {"captureId": "cap-1", "cartId": "cart-1001", "amount": "549.00", "currencyCode": "SEK"}
REFUND = {"refundId": "ref-1", "cartId": "cart-1001", "amount": 100, "currencyCode": "SEK"}
CANCEL = {"cartId": "cart-1001"}
EVENTS = {"payment-capture": CAPTURE, "payment-refund": REFUND, "order-cancel": CANCEL}
ID_FIELD = {"payment-capture": "captureId", "payment-refund": "refundId"}

EVENT_CASES: list[tuple[str, str, dict[str, Any], bool]] = (
    [(kind, "as is", {}, True) for kind in EVENTS]
    + [
        (kind, case, change, accepted)
        for kind in ("payment-capture", "payment-refund")
        for case, change, accepted in [
            ("amount as a number", {"amount": 12.5}, True),
            ("lower-case currency", {"currencyCode": "sek"}, True),
            ("null optionals", {"lines": None, "description": None}, True),
            ("a description of 255", {"description": "d" * 255}, True),
            ("unknown fields", {"note": "x"}, True),
            ("a zero amount", {"amount": "0.00"}, False),
            ("a negative amount", {"amount": -1}, False),
            ("an amount that is no number", {"amount": "12,50"}, False),
            ("an amount as a boolean", {"amount": True}, False),
            ("a currency of two letters", {"currencyCode": "SE"}, False),
            ("a description of 256", {"description": "d" * 256}, False),
            ("lines not a list", {"lines": "all"}, False),
            ("a cart id with a space", {"cartId": "cart 1"}, False),
            ("an empty id", {ID_FIELD[kind]: ""}, False),
            ("an id of 256", {ID_FIELD[kind]: "i" * 256}, False),
            ("no currency", {"currencyCode": None}, False),
        ]
    ]
    + [
        ("order-cancel", "unknown fields", {"reason": "x"}, True),
        ("order-cancel", "an empty cart id", {"cartId": ""}, False),
        ("order-cancel", "a cart id as a number", {"cartId": 1001}, False),
    ]
)


def _event(kind: str, change: dict[str, Any]) -> dict[str, Any]:
    event = {**EVENTS[kind], **change}
    return {
        key: value for key, value in event.items() if not (value is None and key in EVENTS[kind])
    }


@pytest.mark.parametrize(
    ("kind", "change", "accepted"),
    [(k, c, a) for k, _, c, a in EVENT_CASES],
    ids=[f"{k}: {i}" for k, i, _, _ in EVENT_CASES],
)
def test_schema_and_service_agree_on_payment_events(kind, change, accepted):
    event = _event(kind, change)
    validator = schema_validator(kind)
    assert schema_accepts(validator, event) is accepted, list(validator.iter_errors(event))
    assert service_accepts_event(kind, event) is accepted


@pytest.mark.parametrize("kind", ["payment-capture", "payment-refund"])
def test_payment_rules_only_the_service_checks(kind):
    for change in ({"amount": "10.001"}, {"lines": [{"nonsense": True}]}):
        event = _event(kind, change)
        assert schema_accepts(schema_validator(kind), event)
        assert not service_accepts_event(kind, event)


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_required_field_is_required_by_both(kind):
    for field in EVENTS[kind]:
        event = {k: v for k, v in EVENTS[kind].items() if k != field}
        assert not schema_accepts(schema_validator(kind), event), field
        assert not service_accepts_event(kind, event), field


def test_the_documented_differences():
    """docs/api.md names these; a change to either side shows here."""
    exponent_rate = _changed(_set("lines", 0, "taxRate", value="2.5e-1"))
    assert not schema_accepts(RENDER_SCHEMA, exponent_rate)
    assert service_accepts_render(exponent_rate)
    newline = _changed(_set("cartId", value="cart-1\n"))
    assert not service_accepts_render(newline)  # the cart id rule ends in \Z


def _check_jsonschema(schema: str, *instances: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "check-jsonschema"), "--schemafile"]
    return subprocess.run(
        [*command, str(SCHEMAS / schema), *map(str, instances)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_jsonschema_as_docs_api_md_shows_it(tmp_path):
    """The command docs/api.md gives a backend team: ECMA-262 patterns, via regress."""
    assert _check_jsonschema("cart-render.schema.json", *RENDERS).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_changed(_set("cartId", value="cart-1\n"))))
    result = _check_jsonschema("cart-render.schema.json", bad)
    assert result.returncode == 1 and "cartId" in result.stdout


# -- generated bodies -----------------------------------------------------------------------
#
# schemathesis draws bodies from the OpenAPI document's components (the schemas above,
# embedded): valid ones (positive) and invalid ones (negative). Both sides must agree on
# each, except for the documented differences, which are set aside.

_MONEY_EXPONENT = re.compile(r"[eE][+-]?([0-9]+)\Z")


def _documented_difference(value: Any) -> bool:
    """A body holding something docs/api.md names as judged differently: an exponent no
    decimal holds (or any long one), a text ending in a newline (Python's "$"), or a
    rate written with an exponent."""
    if isinstance(value, dict):
        rate = value.get("taxRate")
        if isinstance(rate, str) and "e" in rate.lower():
            return True
        return any(_documented_difference(v) for v in value.values())
    if isinstance(value, list):
        return any(_documented_difference(v) for v in value)
    if isinstance(value, str):
        exponent = _MONEY_EXPONENT.search(value)
        return value.endswith("\n") or (exponent is not None and len(exponent.group(1)) > 9)
    return False


def _bodies(path: str, mode: GenerationMode) -> Any:
    operation = schemathesis.openapi.from_dict(openapi_document())[path]["POST"]
    return operation.as_strategy(generation_mode=mode).map(lambda case: case.body)


GENERATED = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@GENERATED
@given(render=_bodies("/commerce/cart-mutation", GenerationMode.POSITIVE))
def test_every_render_the_schema_accepts_passes_the_services_field_rules(render):
    assume(schema_accepts(RENDER_SCHEMA, render) and not _documented_difference(render))
    loaded = load_render(render)  # no ValidationError: only payability may still fail
    assert CART_ID_PATTERN.match(loaded["cartId"])


@GENERATED
@given(render=_bodies("/commerce/cart-mutation", GenerationMode.NEGATIVE))
def test_every_render_the_schema_refuses_the_service_refuses(render):
    assume(not schema_accepts(RENDER_SCHEMA, render) and not _documented_difference(render))
    assert not service_accepts_render(render)


@GENERATED
@given(
    kind=st.sampled_from(["payment-capture", "payment-refund", "order-cancel"]),
    data=st.data(),
)
def test_every_payment_event_the_schema_accepts_passes_the_services_field_rules(kind, data):
    event = data.draw(_bodies(f"/commerce/{kind}", GenerationMode.POSITIVE))
    assume(schema_accepts(schema_validator(kind), event) and not _documented_difference(event))
    schema = {
        "payment-capture": CaptureEventSchema(),
        "payment-refund": RefundEventSchema(),
        "order-cancel": CancelEventSchema(),
    }[kind]
    schema.load(event)
