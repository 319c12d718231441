"""The worked examples of docs/integration.md are true: each render there is accepted by
the published JSON Schema and by the service, and builds exactly the Kustom amounts the
guide writes under it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kustom_app.payload import build_order_payload
from kustom_app.render import load_render

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "integration.md").read_text()
RENDER_SCHEMA = json.loads((ROOT / "schemas" / "cart-render.schema.json").read_text())

# <!-- render: name --> then a ```json block, then prose up to the next heading.
EXAMPLE = re.compile(r"<!-- render: ([\w-]+) -->\n```json\n(.*?)\n```\n(.*?)(?=\n#)", re.S)
AMOUNTS = re.compile(r"Kustom receives `order_amount` (\d+) and `order_tax_amount` (\d+)")
EXAMPLES = {name: (json.loads(body), prose) for name, body, prose in EXAMPLE.findall(GUIDE)}


def test_the_guide_has_one_example_per_market() -> None:
    assert sorted(EXAMPLES) == ["eur-coupon", "sek-vat", "usd-sales-tax"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_passes_the_published_schema(name: str) -> None:
    render, _ = EXAMPLES[name]
    jsonschema.Draft202012Validator(RENDER_SCHEMA).validate(render)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_builds_the_amounts_the_guide_states(name: str) -> None:
    render, prose = EXAMPLES[name]
    [(amount, tax)] = AMOUNTS.findall(prose)
    payload = build_order_payload(load_render(render))
    assert (payload["order_amount"], payload["order_tax_amount"]) == (int(amount), int(tax))


def order_line(payload: dict[str, Any], kind: str) -> dict[str, Any]:
    [line] = [line for line in payload["order_lines"] if line["type"] == kind]
    return line


def test_the_us_example_carries_its_tax_on_the_sales_tax_line_shown() -> None:
    render, prose = EXAMPLES["usd-sales-tax"]
    payload = build_order_payload(load_render(render))
    shown = json.loads(re.search(r"The last order line is\n?\s*`(\{.*?\})`", prose, re.S)[1])
    line = order_line(payload, "sales_tax")
    assert {key: line[key] for key in shown} == shown
    assert payload["order_lines"][-1] is line
    assert all(line["tax_rate"] == 0 for line in payload["order_lines"])


def test_the_coupon_example_is_a_negative_discount_line() -> None:
    render, prose = EXAMPLES["eur-coupon"]
    line = order_line(build_order_payload(load_render(render)), "discount")
    assert "`total_amount` -500" in prose
    assert line["total_amount"] == -500
