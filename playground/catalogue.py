"""The demo shop's catalogue, and a cart priced from it as a CONTRACT section 4 render.

SEK products with 25 % VAT included, two shipping options, and ``render_cart``: the one
place where the shop's arithmetic happens (line tax is the VAT inside the line's total, the
cart's totals are the sums of the numbers shown), so that the service's payload builder and
Kustom's checks accept every render the shop sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

CURRENCY = "SEK"
COUNTRY = "SE"
LOCALE = "sv-SE"
CHANNEL = "playground-shop"
VAT_RATE = Decimal("0.25")
CENT = Decimal("0.01")
MAX_QUANTITY = 99


@dataclass(frozen=True)
class Product:
    number: str
    name: str
    price: Decimal  # per piece, VAT included
    colour: str  # for the shop page's swatch


@dataclass(frozen=True)
class ShippingChoice:
    id: str
    name: str
    price: Decimal  # VAT included
    description: str


PRODUCTS: tuple[Product, ...] = (
    Product("TSHIRT-RED-M", "Red T-Shirt, M", Decimal("250.00"), "#d94141"),
    Product("TSHIRT-BLUE-L", "Blue T-Shirt, L", Decimal("199.00"), "#3b6fd9"),
    Product("TSHIRT-BLACK-S", "Black T-Shirt, S", Decimal("229.00"), "#222222"),
    Product("HOODIE-GRY-L", "Grey Hoodie, L", Decimal("549.00"), "#8c8c8c"),
    Product("CAP-GRN", "Green Cap", Decimal("149.00"), "#3c8f5a"),
    Product("SOCKS-3PK", "Socks, 3-pack", Decimal("99.00"), "#e3b23c"),
)
PRODUCTS_BY_NUMBER = {product.number: product for product in PRODUCTS}
SHIPPING_CHOICES: tuple[ShippingChoice, ...] = (
    ShippingChoice("postnord", "PostNord", Decimal("49.00"), "2-4 working days"),
    ShippingChoice("express", "Express", Decimal("99.00"), "Next working day"),
)
SHIPPING_BY_ID = {choice.id: choice for choice in SHIPPING_CHOICES}


@dataclass
class ShopCart:
    cart_id: str
    version: int = 0
    quantities: dict[str, int] = field(default_factory=dict)  # product number -> pieces
    shipping_id: str = SHIPPING_CHOICES[0].id
    address: dict[str, Any] | None = None
    completed: bool = False


def vat_included(amount: Decimal, rate: Decimal = VAT_RATE) -> Decimal:
    """The VAT inside a VAT-inclusive amount, to the öre (Kustom allows ±1 minor unit)."""
    return (amount * rate / (1 + rate)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


def _shipping_render(choice: ShippingChoice) -> dict[str, Any]:
    return {
        "id": choice.id,
        "name": choice.name,
        "price": _money(choice.price),
        "taxRate": str(VAT_RATE),
        "taxTotal": _money(vat_included(choice.price)),
        "description": choice.description,
    }


def render_cart(cart: ShopCart) -> dict[str, Any]:
    """The cart as a CONTRACT section 4 render, with totals that add up to the öre.

    Line tax is the VAT included in the line's sales total, and the cart's totals are the
    sums of exactly the numbers shown on the lines and the shipping, so the service's
    payload builder and Kustom's arithmetic accept every render. An empty cart has no
    shipping and totals of zero (the service treats it as not payable).
    """
    lines: list[dict[str, Any]] = []
    total = tax = Decimal(0)
    for number, quantity in cart.quantities.items():
        product = PRODUCTS_BY_NUMBER[number]
        sales = product.price * quantity
        line_tax = vat_included(sales)
        total += sales
        tax += line_tax
        lines.append(
            {
                "lineId": f"line-{number.lower()}",
                "productNumber": number,
                "description": product.name,
                "quantity": quantity,
                "reservedQuantity": quantity,
                "unitPrice": _money(product.price),
                "discountTotal": "0.00",
                "salesTotal": _money(sales),
                "taxRate": str(VAT_RATE),
                "taxTotal": _money(line_tax),
                "productUrl": None,
                "imageUrl": None,
            }
        )
    render: dict[str, Any] = {
        "cartId": cart.cart_id,
        "version": cart.version,
        "channelKey": CHANNEL,
        "currencyCode": CURRENCY,
        "countryCode": COUNTRY,
        "locale": LOCALE,
        "taxIncluded": True,
        "lines": lines,
        "shippingOptions": [_shipping_render(choice) for choice in SHIPPING_CHOICES],
    }
    if lines:
        shipping = _shipping_render(SHIPPING_BY_ID[cart.shipping_id])
        render["shipping"] = shipping
        total += Decimal(shipping["price"])
        tax += Decimal(shipping["taxTotal"])
    render["cartTotal"] = _money(total)
    render["cartTaxTotal"] = _money(tax)
    return render


def json_default(value: Any) -> Any:
    """``json.dumps`` default for renders: their money is ``Decimal``, sent as strings."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
