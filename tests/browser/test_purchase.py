"""A shopper buys two T-shirts and a hoodie in the demo shop, end to end, in chromium.

Add two products → checkout (the Kustom iframe mounted by the storefront SDK) → one more
T-shirt: the iframe is suspended while kustom-app syncs the Kustom order and resumes with
the new total → Express delivery chosen in the iframe (the shipping callback reprices the
cart) → Pay (the validation callback approves) → the confirmation page shows the order
number, and the commerce playground has exactly one order, even after Kustom's push.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, SCREENSHOTS, Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# Set to write docs/screenshot.png (the README's picture) from this run.
DOCS_SCREENSHOT_ENV = "KUSTOM_DOCS_SCREENSHOT"


def shot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_purchase_end_to_end(stack: Stack, page: Any, page_problems: list[str]) -> None:
    from playwright.sync_api import expect

    shop = stack.shop_url
    frame = page.frame_locator("#klarna-checkout-iframe")
    total = frame.locator("#kco-total")
    overlay = page.locator("#klarna-checkout-overlay")
    sync_state = page.locator("#sync-state")

    # 1. Two products into the cart.
    page.goto(f"{shop}/")
    page.click('[data-product="TSHIRT-RED-M"] button.add')
    expect(page.locator(".notice")).to_contain_text("Red T-Shirt")
    page.click('[data-product="HOODIE-GRY-L"] button.add')
    expect(page.locator("#nav-cart")).to_have_text("Cart (2)")
    shot(page, "01-products")
    page.click("text=Go to cart")
    expect(page.locator("#cart-total")).to_have_text("848.00 kr")  # 250 + 549 + 49 PostNord
    shot(page, "02-cart")

    # 2. Checkout: the SDK mounts Kustom's iframe for the cart, in sync.
    page.click("#to-checkout")
    expect(total).to_have_text("848.00 SEK")
    expect(sync_state).to_have_text("in sync")
    expect(overlay).to_be_hidden()
    shot(page, "03-checkout")

    # 3. One more T-shirt: suspended while the worker updates Kustom, then resumed. The
    #    Kustom playground answers that update slowly so a person (and this test) sees it.
    stack.kustom.add_faults("update_order", delay_seconds=1.5)
    page.click('#summary tr[data-product="TSHIRT-RED-M"] .plus')
    expect(overlay).to_be_visible()
    expect(overlay).to_have_text("Updating\u2026")
    expect(sync_state).to_have_text("syncing\u2026")
    expect(page.locator("#klarna-checkout-iframe")).to_have_attribute("data-suspended", "true")
    shot(page, "04-suspended")
    expect(overlay).to_be_hidden()
    expect(total).to_have_text("1098.00 SEK")  # re-read from Kustom on resume
    expect(sync_state).to_have_text("in sync")
    expect(page.locator("#summary-total")).to_have_text("1098.00 kr")
    shot(page, "05-resumed")

    # 4. Express delivery, chosen inside Kustom's checkout.
    frame.locator('input[name="shipping"][value="express"]').check()
    expect(total).to_have_text("1148.00 SEK")
    expect(page.locator("#summary-total")).to_have_text("1148.00 kr")  # the shop's cart too
    expect(overlay).to_be_hidden()
    shot(page, "06-express")
    if os.environ.get(DOCS_SCREENSHOT_ENV):
        shutil.copyfile(SCREENSHOTS / "06-express.png", ROOT / "docs" / "screenshot.png")

    # 5. Pay: validation approves, Kustom sends the shopper to the confirmation page.
    frame.locator("#kco-pay").click()
    page.wait_for_url(re.compile(r"/confirmation\?cart="))
    number = page.locator("#order-number")
    expect(number).to_have_text(re.compile(r"^SO-\d+$"))
    # The shop's confirmation page calls mountKustomCheckout, which saw where it is.
    assert page.evaluate("window.shopConfirmation.page") == "confirmation"
    shot(page, "07-confirmation")

    [order] = stack.commerce.orders_for()
    assert number.inner_text() == order["orderNumber"]
    assert order["request"]["orderAmount"] == 114800
    assert order["request"]["selectedShippingOption"]["id"] == "express"
    # Kustom's push comes a second later; it must not make a second order.
    [push] = stack.kustom.wait_for_callbacks("push", 1, timeout=10)
    assert push["status"] == 200

    def acknowledged() -> bool:
        kustom = stack.kustom
        return any((kustom.stored_order(i) or {}).get("acknowledged") for i in kustom.order_ids())

    stack.kustom.wait_for(acknowledged, timeout=10)
    assert len(stack.commerce.orders_for()) == 1
    page.goto(f"{shop}/orders")
    expect(page.locator("tr.order")).to_have_count(1)
    expect(page.locator(".order-number")).to_have_text(order["orderNumber"])
    shot(page, "08-orders")
    assert page_problems == []


def test_confirmation_retries_until_kustom_has_completed(
    stack: Stack, page: Any, page_problems: list[str]
) -> None:
    """On the confirmation page before Kustom completed: 202s, backoff, then the number."""
    from playwright.sync_api import expect

    shop = stack.shop_url
    page.goto(f"{shop}/")
    page.click('[data-product="CAP-GRN"] button.add')
    page.goto(f"{shop}/checkout")
    expect(page.frame_locator("#klarna-checkout-iframe").locator("#kco-total")).to_have_text(
        "198.00 SEK"
    )
    [cart_id] = [c["value"] for c in page.context.cookies() if c["name"] == "kustom_shop_cart"]
    [order_id] = [
        i
        for i in stack.kustom.order_ids()
        if (stack.kustom.stored_order(i) or {}).get("status") == "checkout_incomplete"
    ]
    before = len(stack.commerce.orders_for())

    page.goto(f"{shop}/confirmation?cart={cart_id}")
    expect(page.locator("#confirm-state")).to_contain_text("attempt")  # 202: asked again
    assert stack.commerce.orders_for(cart_id) == []
    stack.kustom.complete_order(order_id)  # the shopper's payment lands at Kustom
    number = page.locator("#order-number")
    expect(number).to_have_text(re.compile(r"^SO-\d+$"))
    [order] = stack.commerce.orders_for(cart_id)
    assert number.inner_text() == order["orderNumber"]
    assert len(stack.commerce.orders_for()) == before + 1
    shot(page, "09-confirmation-after-retries")
    assert page_problems == []
