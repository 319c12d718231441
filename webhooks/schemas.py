"""Request schemas of the web layer (the cart render schema lives in kustom_app.render)."""

from __future__ import annotations

import re

from marshmallow import RAISE, Schema, fields, validate

# Cart ids travel in URLs, Redis keys and Kustom's merchant_reference1 (max 255).
# \Z, not $: "$" also matches before a trailing newline. The JSON Schema files and the
# OpenAPI document carry the same rule as CART_ID_JSON_PATTERN (ECMA-262's $ is the end).
CART_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@~+-]{0,254}\Z")
CART_ID_JSON_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:@~+-]{0,254}$"


def storefront_url() -> fields.Url:
    return fields.Url(
        required=True,
        relative=False,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2000),
    )


class CheckoutRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    termsUrl = storefront_url()
    checkoutUrl = storefront_url()
    confirmationUrl = storefront_url()
