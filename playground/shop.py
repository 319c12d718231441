"""The demo storefront of the commerce playground: what a shopper clicks through locally.

Plain HTML pages with a little JavaScript, served by ``python -m playground.commerce``:

``/``              products; "Add to cart"
``/cart``          the cart: -/+ quantity, remove, shipping choice
``/checkout``      the cart beside the Kustom iframe, mounted by kustom-app's storefront SDK
                   (``<service>/static/kustom-checkout.js``, an ES module loaded across
                   origins, hence CORS_ALLOWED_ORIGINS). Quantities stay editable here, so
                   one can watch the iframe suspend ("Updating…") and resume with the new
                   total.
``/confirmation``  Kustom sends the shopper here; ``mountKustomCheckout`` (the same call as on
                   ``/checkout``) sees it is on the confirmation URL, runs the confirm call
                   and shows the order number
``/orders``        completed orders, as the commerce backend received them
``/terms``         the terms Kustom links to

The cart lives in a cookie-named in-memory cart (``kustom_shop_cart``); a completed cart is
replaced by a new one on the next page. Every change goes to kustom-app as a signed render.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template_string,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from playground.catalogue import PRODUCTS, PRODUCTS_BY_NUMBER, SHIPPING_CHOICES, ShopCart
from playground.commerce_state import (
    EXTENSION_KEY,
    PUBLISHER_KEY,
    CommerceDoubleState,
    RenderPublisher,
    ShopError,
)

bp = Blueprint("shop", __name__)

CART_COOKIE = "kustom_shop_cart"
ICON = (  # inline, so the browser asks for no /favicon.ico
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%23ffa8cd'/%3E%3C/svg%3E"
)
SHOP_NAME = "Tee Shop"


def _state() -> CommerceDoubleState:
    state: CommerceDoubleState = current_app.extensions[EXTENSION_KEY]
    return state


def _publisher() -> RenderPublisher:
    publisher: RenderPublisher = current_app.extensions[PUBLISHER_KEY]
    return publisher


def _cart() -> ShopCart:
    """The shopper's open cart; a new one when there is none or it was paid for."""
    state = _state()
    cart = state.shop_cart(request.cookies.get(CART_COOKIE))
    if cart is None or cart.completed:
        cart_id = state.new_cart()
        g.new_cart_id = cart_id
        cart = state.shop_cart(cart_id)
    assert cart is not None
    return cart


@bp.after_request
def _remember_cart(response: Response) -> Response:
    cart_id = g.get("new_cart_id")
    if cart_id:
        response.set_cookie(CART_COOKIE, cart_id, httponly=True, samesite="Lax")
    return response


def _kr(amount: Any) -> str:
    return f"{Decimal(str(amount)):.2f} kr"


def _publish(render: dict[str, Any]) -> dict[str, Any]:
    return _publisher().publish(render)


# ------------------------------------------------------------------------------ templates

_LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ shop }}</title>
<link rel="icon" href="{{ icon }}">
<style>
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: #1d1b19; background: #faf8f5; }
  .top { background: #1d1b19; color: #fff; }
  .top .in, main { max-width: 1080px; margin: 0 auto; padding: 0 20px; }
  .top .in { display: flex; align-items: center; gap: 22px; height: 56px; }
  .top a { color: #fff; text-decoration: none; white-space: nowrap; }
  .top .brand { font-weight: 700; font-size: 18px; margin-right: auto; }
  .top .note { font-size: 12px; background: #ffa8cd; color: #1d1b19; border-radius: 999px;
               padding: 1px 9px; margin-left: 8px; font-weight: 500; }
  main { padding-top: 22px; padding-bottom: 40px; }
  @media (max-width: 520px) {
    .top .in, main { padding: 0 12px; }
    main { padding-top: 16px; padding-bottom: 28px; }
    .top .in { gap: 14px; }
    .top .note { display: none; }
  }
  h1 { font-size: 26px; margin: 0 0 16px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 16px; }
  .card { background: #fff; border-radius: 10px; padding: 14px; box-shadow: 0 1px 3px #0001; }
  .swatch { height: 120px; border-radius: 8px; margin-bottom: 10px; display: flex;
            align-items: center; justify-content: center; font-size: 54px; }
  .price { font-weight: 600; }
  button, .button { font: inherit; border: 0; border-radius: 8px; padding: 8px 14px;
                    background: #1d1b19; color: #fff; cursor: pointer; text-decoration: none;
                    display: inline-block; }
  button.quiet { background: #ece7e1; color: #1d1b19; padding: 2px 10px; }
  button:disabled { opacity: .5; cursor: progress; }
  table { width: 100%; border-collapse: collapse; background: #fff; border-radius: 10px; }
  th, td { text-align: left; padding: 9px 12px; border-bottom: 1px solid #eee; }
  td.num, th.num { text-align: right; white-space: nowrap; }
  .qty { display: inline-flex; align-items: center; gap: 8px; }
  .qty form { display: inline; }
  .totals td { font-weight: 600; }
  .muted { color: #6f6760; font-size: 13px; }
  .notice { background: #e8f4ea; border-radius: 8px; padding: 8px 12px; margin-bottom: 14px; }
  .error { background: #fdecec; color: #8a1010; border-radius: 8px; padding: 8px 12px; }
  .checkout { display: grid; grid-template-columns: minmax(0, 5fr) minmax(0, 6fr); gap: 22px;
              align-items: start; }
  @media (max-width: 820px) { .checkout { grid-template-columns: 1fr; } }
  .pill { display: inline-block; border-radius: 999px; padding: 2px 10px; font-size: 13px;
          background: #e8f4ea; color: #1e6b33; }
  .pill.syncing { background: #fff1d6; color: #8a5a00; }
  .pill.failed { background: #fdecec; color: #8a1010; }
  #kustom-checkout { background: #fff; border-radius: 10px; padding: 4px; min-height: 200px;
                     box-shadow: 0 1px 3px #0001; }
  .big { font-size: 28px; font-weight: 700; letter-spacing: .5px; }
</style>
</head>
<body>
<div class="top"><div class="in">
  <a class="brand" href="/">{{ shop }}<span class="note">local playground</span></a>
  <a href="/">Products</a>
  <a href="/cart" id="nav-cart">Cart ({{ count }})</a>
  <a href="/orders">Orders</a>
</div></div>
<main>
{{ content }}
</main>
</body>
</html>
"""

_PRODUCTS = """
<h1>T-shirts and more</h1>
{% if added %}
<p class="notice">Added {{ added }} to your cart. <a href="/cart">Go to cart</a>
  or <a href="/checkout">check out</a>.</p>
{% endif %}
<div class="grid">
{% for p in products %}
  <div class="card" data-product="{{ p.number }}">
    <div class="swatch" style="background: {{ p.colour }}22">
      <span style="color: {{ p.colour }}">&#9632;</span></div>
    <div>{{ p.name }}</div>
    <div class="price">{{ kr(p.price) }} <span class="muted">incl. 25 % VAT</span></div>
    <form method="post" action="/cart/add">
      <input type="hidden" name="product" value="{{ p.number }}">
      <button type="submit" class="add">Add to cart</button>
    </form>
  </div>
{% endfor %}
</div>
"""

_CART = """
<h1>Your cart</h1>
{% if not render.lines %}
<p>Your cart is empty. <a href="/">See the products</a>.</p>
{% else %}
<table>
  <thead><tr><th>Product</th><th>Quantity</th><th class="num">Price</th></tr></thead>
  <tbody>
  {% for line in render.lines %}
    <tr data-product="{{ line.productNumber }}">
      <td>{{ line.description }}<br><span class="muted">{{ kr(line.unitPrice) }} each</span></td>
      <td><span class="qty">
        <form method="post" action="/cart/quantity">
          <input type="hidden" name="product" value="{{ line.productNumber }}">
          <input type="hidden" name="quantity" value="{{ line.quantity - 1 }}">
          <button class="quiet minus" aria-label="One less">&minus;</button></form>
        <span class="count">{{ line.quantity }}</span>
        <form method="post" action="/cart/quantity">
          <input type="hidden" name="product" value="{{ line.productNumber }}">
          <input type="hidden" name="quantity" value="{{ line.quantity + 1 }}">
          <button class="quiet plus" aria-label="One more">+</button></form>
        <form method="post" action="/cart/quantity">
          <input type="hidden" name="product" value="{{ line.productNumber }}">
          <input type="hidden" name="quantity" value="0">
          <button class="quiet remove">Remove</button></form>
      </span></td>
      <td class="num">{{ kr(line.salesTotal) }}</td>
    </tr>
  {% endfor %}
    <tr><td colspan="2">
      <form method="post" action="/cart/shipping" id="shipping-form">
      {% for option in render.shippingOptions %}
        <label><input type="radio" name="shipping" value="{{ option.id }}"
          {% if render.shipping and render.shipping.id == option.id %}checked{% endif %}
          onchange="this.form.submit()"> {{ option.name }}
          <span class="muted">({{ option.description }})</span></label><br>
      {% endfor %}
      <noscript><button>Update delivery</button></noscript>
      </form></td>
      <td class="num">{{ kr(render.shipping.price) }}</td></tr>
    <tr class="totals"><td colspan="2">Total <span class="muted">of which VAT
      {{ kr(render.cartTaxTotal) }}</span></td>
      <td class="num" id="cart-total">{{ kr(render.cartTotal) }}</td></tr>
  </tbody>
</table>
<p style="text-align: right">
  <a class="button" id="to-checkout" href="/checkout">Go to checkout</a></p>
{% endif %}
"""

_CHECKOUT = """
<h1>Checkout</h1>
{% if not render.lines %}
<p>Your cart is empty. <a href="/">See the products</a>.</p>
{% elif not service_url %}
<p class="error">No kustom-app URL is configured (start with --service-url).</p>
{% else %}
<div class="checkout">
  <section>
    <table id="summary">
      <thead><tr><th>Your cart</th><th>Qty</th><th class="num">Price</th></tr></thead>
      <tbody></tbody>
      <tfoot>
        <tr><td colspan="2" id="summary-shipping"></td>
          <td class="num" id="summary-shipping-price"></td></tr>
        <tr class="totals"><td colspan="2">Total</td><td class="num" id="summary-total"></td></tr>
      </tfoot>
    </table>
    <p>Kustom: <span class="pill" id="sync-state">connecting&hellip;</span>
       <span class="muted" id="sync-detail"></span></p>
    <p class="muted">Change a quantity here and watch the checkout: it is suspended
      while kustom-app updates Kustom's order, then resumes with the new total.
      Choose the delivery inside the checkout.</p>
    <p class="error" id="checkout-error" hidden></p>
  </section>
  <section><div id="kustom-checkout"></div></section>
</div>
<script type="module">
  const serviceUrl = {{ service_url|tojson }};
  const cartId = {{ render.cartId|tojson }};
  const summary = document.querySelector("#summary tbody");
  const kr = (amount) => Number(amount).toFixed(2) + " kr";
  let busy = false;

  function showError(error) {
    const box = document.getElementById("checkout-error");
    box.textContent = error ? (error.message || String(error)) : "";
    box.hidden = !error;
  }

  // Checkout could not be made or followed: say so, in red, instead of "connecting…".
  function checkoutFailed(error) {
    const pill = document.getElementById("sync-state");
    pill.textContent = "failed";
    pill.classList.remove("syncing");
    pill.classList.add("failed");
    showError(error);
  }

  function draw(render) {
    summary.replaceChildren();
    for (const line of render.lines) {
      const row = document.createElement("tr");
      row.dataset.product = line.productNumber;
      row.innerHTML = '<td class="name"></td><td><span class="qty">' +
        '<button class="quiet minus" aria-label="One less">&minus;</button>' +
        '<span class="count"></span>' +
        '<button class="quiet plus" aria-label="One more">+</button></span></td>' +
        '<td class="num line-total"></td>';
      row.querySelector(".name").textContent = line.description;
      row.querySelector(".count").textContent = line.quantity;
      row.querySelector(".line-total").textContent = kr(line.salesTotal);
      const number = line.productNumber;
      row.querySelector(".minus").onclick = () => setQuantity(number, line.quantity - 1);
      row.querySelector(".plus").onclick = () => setQuantity(number, line.quantity + 1);
      summary.append(row);
    }
    const shipping = render.shipping;
    document.getElementById("summary-shipping").textContent =
      shipping ? "Delivery: " + shipping.name : "Delivery";
    document.getElementById("summary-shipping-price").textContent =
      shipping ? kr(shipping.price) : "";
    document.getElementById("summary-total").textContent = kr(render.cartTotal);
    document.getElementById("nav-cart").textContent =
      "Cart (" + render.lines.reduce((n, line) => n + line.quantity, 0) + ")";
    for (const button of summary.querySelectorAll("button")) { button.disabled = busy; }
  }

  async function refresh() {
    const answer = await fetch("/shop/api/cart", { cache: "no-store" });
    if (answer.ok) { draw((await answer.json()).render); }
  }

  async function setQuantity(productNumber, quantity) {
    if (busy) { return; }
    busy = true;
    for (const button of summary.querySelectorAll("button")) { button.disabled = true; }
    showError(null);
    let render = null;
    try {
      const answer = await fetch("/shop/api/cart/lines", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ productNumber, quantity }),
      });
      const body = await answer.json();
      if (answer.ok) { render = body.render; } else { showError(body.error); }
    } catch (e) {
      showError(e);
    } finally {
      busy = false;
    }
    if (render && !render.lines.length) { location.href = "/cart"; return; }
    if (render) { draw(render); } else { refresh(); }
  }

  draw({{ render|tojson }});
  let sdk;
  try {
    sdk = await import(serviceUrl + "/static/kustom-checkout.js");
  } catch (e) {
    checkoutFailed({ message: "kustom-app is not reachable at " + serviceUrl +
      " (or this shop's origin is not in its CORS_ALLOWED_ORIGINS)." });
    throw e;
  }
  const origin = location.origin;
  let lastPending = null;
  window.shopCheckout = sdk.mountKustomCheckout({
    baseUrl: serviceUrl,
    cartId,
    container: "#kustom-checkout",
    termsUrl: origin + "/terms",
    checkoutUrl: origin + "/checkout",
    confirmationUrl: origin + "/confirmation?cart=" + encodeURIComponent(cartId),
    onStatus(status) {
      const pill = document.getElementById("sync-state");
      pill.textContent = status.syncing ? "syncing\u2026" : "in sync";
      pill.classList.toggle("syncing", status.syncing);
      pill.classList.remove("failed");
      document.getElementById("sync-detail").textContent =
        "order " + (status.kustomOrderId || "-").slice(0, 8);
      // A change made inside the checkout (delivery) reaches the cart through kustom-app.
      if (lastPending !== null && status.pendingHash !== lastPending) { refresh(); }
      lastPending = status.pendingHash;
    },
    onError: checkoutFailed,
    onComplete() {
      // Paid in another tab, or the push came first: the confirmation page shows the number.
      location.href = "/confirmation?cart=" + encodeURIComponent(cartId);
    },
  });
</script>
{% endif %}
"""

_CONFIRMATION = """
<h1>Thank you!</h1>
<div class="card" style="max-width: 560px">
  <p id="confirm-state">Confirming your payment with kustom-app&hellip;</p>
  <p id="order" hidden>Your order number is<br>
    <span class="big" id="order-number"></span></p>
  <p class="error" id="confirm-error" hidden></p>
  <p class="muted">Cart {{ cart_id }}</p>
  <p><a href="/">Continue shopping</a> · <a href="/orders">See all orders</a></p>
</div>
{% if service_url and cart_id %}
<script type="module">
  const serviceUrl = {{ service_url|tojson }};
  const cartId = {{ cart_id|tojson }};
  const { mountKustomCheckout } = await import(serviceUrl + "/static/kustom-checkout.js");
  const state = document.getElementById("confirm-state");
  const origin = location.origin;
  // The checkout page's options: this page's path is confirmationUrl's, so the SDK runs
  // the confirm call here instead of mounting the checkout.
  window.shopConfirmation = mountKustomCheckout({
    baseUrl: serviceUrl,
    cartId,
    termsUrl: origin + "/terms",
    checkoutUrl: origin + "/checkout",
    confirmationUrl: origin + "/confirmation?cart=" + encodeURIComponent(cartId),
    onRetry({ attempt }) {
      state.textContent = "Waiting for Kustom to confirm the payment (attempt " +
        (attempt + 1) + ")\u2026";
    },
    onComplete(orderNumber) {
      state.textContent = "Your payment is confirmed.";
      document.getElementById("order-number").textContent = orderNumber;
      document.getElementById("order").hidden = false;
    },
    onError(error) {
      state.hidden = true;
      const box = document.getElementById("confirm-error");
      box.textContent = error.message + " (" + error.code + ")";
      box.hidden = false;
    },
  });
</script>
{% endif %}
"""

_ORDERS = """
<h1>Completed orders</h1>
<p class="muted">What the commerce backend received from kustom-app
  (<code>POST /carts/&lt;id&gt;/complete</code>).</p>
{% if not orders %}
<p id="no-orders">No orders yet.</p>
{% else %}
<table id="orders">
  <thead><tr><th>Order</th><th>Cart</th><th>Items</th><th>Delivery</th><th>Customer</th>
    <th>Fraud status</th><th class="num">Amount</th><th>Completed</th></tr></thead>
  <tbody>
  {% for o in orders %}
    <tr class="order">
      <td class="order-number"><strong>{{ o.orderNumber }}</strong></td>
      <td class="muted">{{ o.cartId }}</td>
      <td>{% for line in (o.cart or {}).get("lines", []) %}{{ line.quantity }} &times;
        {{ line.description }}<br>{% endfor %}</td>
      <td>{{ o.delivery }}</td>
      <td>{{ o.customer }}</td>
      <td>{{ o.request.get("fraudStatus") or "" }}</td>
      <td class="num">{{ o.amount }}</td>
      <td class="muted">{{ o.when }}</td>
    </tr>
  {% endfor %}
  </tbody>
</table>
{% endif %}
"""

_TERMS = """
<h1>Terms</h1>
<p>This is a local playground shop. Nothing is sold, shipped or charged.</p>
"""


def _page(title: str, body: str, **context: Any) -> str:
    cart = context.pop("cart", None)
    count = sum(cart.quantities.values()) if cart is not None else 0
    # Autoescaped here, so safe to put into the layout as it is.
    content = Markup(render_template_string(body, kr=_kr, **context))  # noqa: S704
    return render_template_string(
        _LAYOUT, title=title, shop=SHOP_NAME, icon=ICON, count=count, content=content
    )


# ------------------------------------------------------------------------------ pages


@bp.get("/")
def products() -> str:
    added = PRODUCTS_BY_NUMBER.get(request.args.get("added", ""))
    return _page(
        "Products",
        _PRODUCTS,
        products=PRODUCTS,
        added=added.name if added else None,
        cart=_cart(),
    )


@bp.get("/cart")
def cart_page() -> str:
    cart = _cart()
    return _page("Cart", _CART, render=_state().render(cart.cart_id), cart=cart)


def _form_action(action: Callable[[str], dict[str, Any]], done: str) -> ResponseReturnValue:
    cart = _cart()
    try:
        _publish(action(cart.cart_id))
    except ShopError as e:
        return Response(e.message, status=e.status)
    return redirect(done, code=303)


@bp.post("/cart/add")
def add_to_cart() -> ResponseReturnValue:
    number = request.form.get("product", "")
    return _form_action(
        lambda cart_id: _state().add_item(cart_id, number),
        url_for("shop.products", added=number),
    )


@bp.post("/cart/quantity")
def change_quantity() -> ResponseReturnValue:
    number = request.form.get("product", "")
    try:
        quantity = int(request.form.get("quantity", ""))
    except ValueError:
        return Response("quantity must be a whole number", status=400)
    return _form_action(
        lambda cart_id: _state().set_quantity(cart_id, number, max(0, quantity)), "/cart"
    )


@bp.post("/cart/shipping")
def choose_shipping() -> ResponseReturnValue:
    option = request.form.get("shipping", "")
    return _form_action(lambda cart_id: _state().select_shipping(cart_id, option), "/cart")


@bp.get("/checkout")
def checkout_page() -> str:
    cart = _cart()
    render = _state().render(cart.cart_id)
    assert render is not None
    if render["lines"]:
        # A render lost on its way (the service was down) is repaired here, before the
        # service reads the cart for the Kustom order. Same version: no change if it has it.
        _publish(render)
    return _page(
        "Checkout",
        _CHECKOUT,
        render=render,
        service_url=current_app.config.get("SHOP_SERVICE_URL"),
        cart=cart,
    )


@bp.get("/confirmation")
def confirmation_page() -> str:
    cart_id = request.args.get("cart", "")
    if cart_id and request.cookies.get(CART_COOKIE) == cart_id:
        # Kustom sends the shopper here only after taking the payment: shop on in a new
        # cart, while the confirm call completes this one.
        g.new_cart_id = _state().new_cart()
    return _page(
        "Thank you",
        _CONFIRMATION,
        cart_id=cart_id,
        service_url=current_app.config.get("SHOP_SERVICE_URL"),
        cart=_cart() if not g.get("new_cart_id") else _state().shop_cart(g.new_cart_id),
    )


@bp.get("/terms")
def terms_page() -> str:
    return _page("Terms", _TERMS, cart=_cart())


def _order_row(order: dict[str, Any]) -> dict[str, Any]:
    body = order.get("request") or {}
    billing = body.get("billingAddress") or {}
    shipping = body.get("selectedShippingOption") or {}
    amount = body.get("orderAmount")
    name = " ".join(str(billing.get(k) or "") for k in ("given_name", "family_name")).strip()
    delivery = shipping.get("name") if isinstance(shipping, dict) else None
    if not delivery:
        delivery = ((order.get("cart") or {}).get("shipping") or {}).get("name", "")
    return {
        **order,
        "amount": _kr(Decimal(int(amount)) / 100) if amount is not None else "",
        "customer": ", ".join(x for x in (name, str(billing.get("email") or "")) if x),
        "delivery": delivery,
        "when": datetime.fromtimestamp(order.get("completedAt") or 0, UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        ),
    }


@bp.get("/orders")
def orders_page() -> str:
    orders = sorted(_state().orders_for(), key=lambda o: o.get("completedAt") or 0, reverse=True)
    return _page("Orders", _ORDERS, orders=[_order_row(o) for o in orders], cart=_cart())


# ------------------------------------------------------------------------------ checkout page JSON


def _api(action: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _api_error(400, "invalid_json", "Send a JSON object.")
    cart = _cart()
    try:
        render = action(cart.cart_id, body)
    except ShopError as e:
        return _api_error(e.status, e.code, e.message)
    return jsonify({"render": render, "published": _publish(render)})


def _api_error(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _quantity(body: dict[str, Any], default: int | None = None) -> int:
    value = body.get("quantity", default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShopError(400, "invalid_quantity", "quantity must be a whole number")
    return value


@bp.get("/shop/api/cart")
def api_cart() -> Response:
    cart = _cart()
    return jsonify({"render": _state().render(cart.cart_id)})


@bp.post("/shop/api/cart/items")
def api_add_item() -> Response:
    return _api(
        lambda cart_id, body: _state().add_item(
            cart_id, str(body.get("productNumber")), _quantity(body, 1)
        )
    )


@bp.post("/shop/api/cart/lines")
def api_set_quantity() -> Response:
    return _api(
        lambda cart_id, body: _state().set_quantity(
            cart_id, str(body.get("productNumber")), max(0, _quantity(body))
        )
    )


__all__ = ["CART_COOKIE", "SHIPPING_CHOICES", "bp"]
