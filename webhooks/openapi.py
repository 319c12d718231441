"""The OpenAPI 3.1 description of the service's own HTTP API (``GET /openapi.json``).

Built with apispec from what the code already has: the request schemas of the views
(marshmallow, through apispec's marshmallow plugin), the answers of `webhooks.answers`,
and the JSON Schema files of ``schemas/`` (the cart render and the payment events, which
a commerce backend may also use alone; see docs/api.md) embedded as components, so the
document and those files are one truth. docs/openapi.json is a copy, regenerated with
``make openapi`` and held equal to this by tests/webhooks/test_openapi.py.

Every status an endpoint can answer is listed. A 500 is not: it is a bug, and the tests
treat it as one.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from kustom_app.signing import SIGNATURE_TOLERANCE_SECONDS
from webhooks import answers
from webhooks.commerce import INBOUND_SIGNATURE_HEADER
from webhooks.kustom_callbacks import (
    ShippingOptionUpdateSchema,
    ShippingServiceRequestSchema,
    ValidationOrderSchema,
)
from webhooks.kustom_confirm import MAX_ORDER_ID
from webhooks.schemas import CART_ID_JSON_PATTERN, CheckoutRequestSchema

# The repository's schemas/ (the Dockerfile copies it beside the packages).
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
# Component name → file in SCHEMA_DIR.
EVENT_SCHEMAS = {
    "CartRender": "cart-render.schema.json",
    "PaymentCapture": "payment-capture.schema.json",
    "PaymentRefund": "payment-refund.schema.json",
    "OrderCancel": "order-cancel.schema.json",
}

JSON = "application/json"
SIGNED: list[dict[str, list[str]]] = [{"commerceSignature": []}]

DESCRIPTION = f"""\
kustom-app connects a commerce backend to Kustom Checkout. This document describes every
endpoint the service answers: the storefront's (called from the shopper's browser), the
commerce backend's events (signed), Kustom's callbacks (with a per-cart token), and the
service-wide ones.

**Errors.** Every refusal is `{{"error": {{"code", "message", "details"}}}}` with a 4xx/5xx
status, and changes nothing; programs test `code`. The callbacks Kustom reads (validate,
address-update, country-change, shipping-option-update) refuse in Kustom's shape instead,
`{{"error_type", "error_text"}}` with 400, which Kustom shows to the shopper.

**Signatures.** Commerce events carry `{INBOUND_SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex
HMAC-SHA256(COMMERCE_WEBHOOK_SECRET, "<t>.<raw body>")>`; the timestamp must be within
{SIGNATURE_TOLERANCE_SECONDS} s of the service's clock. The service signs its own calls to
the backend the same way, in `X-Kustom-App-Signature`.

**Redis.** Any endpoint may answer 503 `redis_unavailable` while the state store is
unreachable: retry with backoff.
"""


def app_version() -> str:
    """The installed kustom-app version (the document's info.version)."""
    try:
        return version("kustom-app")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0"


# -- the JSON Schema files, as components -----------------------------------------------------


def require_event_schemas() -> None:
    """Stop the process at start, not with a 500 at ``GET /openapi.json``, when the schema
    files are not beside the packages (an install without the repository's schemas/)."""
    missing = [name for name in EVENT_SCHEMAS.values() if not (SCHEMA_DIR / name).is_file()]
    if missing:
        raise RuntimeError(
            f"kustom-app: {SCHEMA_DIR} lacks {', '.join(missing)}, which GET /openapi.json "
            "embeds; run from the repository or an image that copies schemas/"
        )


def load_event_schema(file_name: str) -> dict[str, Any]:
    """One of the schema files of ``schemas/``, as written (draft 2020-12)."""
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
    return loaded


def event_components(name: str, schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``schema`` as OpenAPI components: itself as ``name``, each ``$defs`` entry as
    ``name`` + its capitalised key, with ``#/$defs/x`` refs pointed at those.

    The same keywords, only moved: OpenAPI 3.1's schemas are draft 2020-12, and a
    self-contained component is what every OpenAPI tool resolves (a nested ``$id`` is not).
    """
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)

    def component_name(key: str) -> str:
        return name + key[0].upper() + key[1:]

    def relink(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return {**node, "$ref": "#/components/schemas/" + component_name(ref[8:])}
            return {key: relink(value) for key, value in node.items()}
        if isinstance(node, list):
            return [relink(item) for item in node]
        return node

    components = {name: relink(schema)}
    for key, definition in defs.items():
        components[component_name(key)] = relink(definition)
    return components


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# -- responses --------------------------------------------------------------------------------


def _json(description: str, schema: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, answers.ErrorSchema)


def _kustom_refusal(description: str) -> dict[str, Any]:
    return _json(description, answers.KustomRefusalSchema)


REDIS_DOWN = "`redis_unavailable`: the state store does not answer; retry."
BAD_CART_ID = "`invalid_cart_id`: the cart id has characters or a length not allowed."
BAD_BODY = (
    "`invalid_json` (not a JSON object, too deep, not valid Unicode) or `validation_error`"
    " (`details.fields` names each bad field)."
)
TOO_LARGE = "`payload_too_large`: the body is over this endpoint's limit; nothing was read."
UNSIGNED = (
    f"`invalid_signature`: {INBOUND_SIGNATURE_HEADER} is missing, malformed, too old or "
    "wrong; nothing was stored."
)
NO_SECRET = "`commerce_not_configured` (COMMERCE_WEBHOOK_SECRET is not set), or " + REDIS_DOWN


def _callback_unauthorized() -> dict[str, Any]:
    return _json(
        "`invalid_token`: the callback's `cart`/`token` pair is missing or wrong; nothing "
        "was read or changed.",
        answers.KustomUnauthorizedSchema,
    )


def _kustom_redis_down() -> dict[str, Any]:
    return _json(
        REDIS_DOWN,
        {"anyOf": [_ref("Error"), _ref("KustomRefusal")]},
    )


# -- parameters -------------------------------------------------------------------------------


CART_ID_SCHEMA = {"type": "string", "pattern": CART_ID_JSON_PATTERN}
CART_ID_PATH = {
    "name": "cartId",
    "in": "path",
    "required": True,
    "description": "The commerce backend's cart id.",
    "schema": CART_ID_SCHEMA,
}
CALLBACK_QUERY = [
    {
        "name": "cart",
        "in": "query",
        "required": True,
        "description": "The cart the order belongs to (written into every merchant URL).",
        "schema": CART_ID_SCHEMA,
    },
    {
        "name": "token",
        "in": "query",
        "required": True,
        "description": "HMAC of the cart id under CALLBACK_SECRET: proves Kustom got the URL "
        "from this service. Never logged.",
        "schema": {"type": "string"},
    },
]
ORDER_ID_QUERY = {
    "name": "order_id",
    "in": "query",
    "required": True,
    "description": "Kustom's order id (Kustom fills `{checkout.order.id}` in).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ORDER_ID},
}


def _body(schema: Any, description: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"required": True, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


# -- the paths --------------------------------------------------------------------------------


def _storefront_paths() -> dict[str, dict[str, Any]]:
    preflight = {
        "summary": "CORS preflight",
        "tags": ["storefront"],
        "description": "Answered for the storefront origins in CORS_ALLOWED_ORIGINS.",
        "responses": {
            "200": {"description": "Preflight answered (Flask's automatic OPTIONS)."},
            "204": {"description": "Preflight answered."},
        },
    }
    cart_not_found = "`cart_not_found`: nothing is known about the cart."
    return {
        "/carts/{cartId}/kustom": {
            "parameters": [CART_ID_PATH],
            "post": {
                "operationId": "openCheckout",
                "summary": "The cart's Kustom checkout (creates the order once)",
                "tags": ["storefront"],
                "description": "Idempotent: while the cart's Kustom order is usable every "
                "call returns that order. The cart is the last render received, else "
                "GET <COMMERCE_API_URL>/carts/<cartId>.",
                "requestBody": _body(CheckoutRequestSchema),
                "responses": {
                    "200": _json("The checkout to mount.", answers.CheckoutSchema),
                    "400": _error(BAD_CART_ID + " Or " + BAD_BODY),
                    "404": _error(cart_not_found),
                    "409": _error("`cart_completed`: the cart is already paid for."),
                    "413": _error(TOO_LARGE),
                    "422": _error(
                        "`cart_not_payable`: empty cart, or amounts that do not add up "
                        "(the message names the line)."
                    ),
                    "502": _error(
                        "`kustom_unavailable` or `commerce_unavailable`: a call failed; retry."
                    ),
                    "503": _error(
                        "`kustom_not_configured` (no Kustom credentials), `checkout_busy` "
                        "(another call is creating the order; retry), or " + REDIS_DOWN
                    ),
                },
            },
            "options": {**preflight, "operationId": "preflightCheckout"},
        },
        "/carts/{cartId}/kustom/confirm": {
            "parameters": [CART_ID_PATH],
            "post": {
                "operationId": "confirmCheckout",
                "summary": "Complete the cart once Kustom has completed the order",
                "tags": ["storefront"],
                "description": "Called after Kustom redirects the shopper to the "
                "confirmation URL. No body is read.",
                "responses": {
                    "200": _json("The cart is completed.", answers.CheckoutCompleteSchema),
                    "202": _json(
                        "Kustom has not completed the order yet; ask again.",
                        answers.CheckoutIncompleteSchema,
                    ),
                    "400": _error(BAD_CART_ID),
                    "404": _error(
                        cart_not_found + " Or `kustom_order_not_found`: it has no order."
                    ),
                    "409": _error(
                        "`amount_mismatch`: Kustom's order does not match the cart; "
                        "nothing was completed."
                    ),
                    "502": _error(
                        "`kustom_unavailable` (Kustom did not answer, or refused to show the "
                        "order) or `commerce_rejected` (the commerce backend refused the "
                        "completion with a 4xx)."
                    ),
                    "503": _error(
                        "`commerce_not_configured` (no COMMERCE_API_URL), or " + REDIS_DOWN
                    ),
                },
            },
            "options": {**preflight, "operationId": "preflightConfirm"},
        },
        "/carts/{cartId}/kustom/status": {
            "parameters": [CART_ID_PATH],
            "get": {
                "operationId": "checkoutStatus",
                "summary": "The cart's sync status",
                "tags": ["storefront"],
                "responses": {
                    "200": _json("The status.", answers.CartStatusSchema),
                    "400": _error(BAD_CART_ID),
                    "404": _error(cart_not_found),
                    "503": _error(REDIS_DOWN),
                },
            },
            "options": {**preflight, "operationId": "preflightStatus"},
        },
        "/carts/{cartId}/kustom/events": {
            "parameters": [CART_ID_PATH],
            "get": {
                "operationId": "checkoutEvents",
                "summary": "The cart's status as Server-Sent Events",
                "tags": ["storefront"],
                "description": "One event carrying the status JSON (as /status) at connect "
                "and on every change of the hashes or the cart state; `: keepalive` "
                "comments in between. Ends after a few minutes; EventSource reconnects.",
                "responses": {
                    "200": {
                        "description": "The stream.",
                        "content": {
                            "text/event-stream": {
                                "schema": {
                                    "type": "string",
                                    "description": "`data:` lines carrying CartStatus JSON.",
                                }
                            }
                        },
                    },
                    "400": _error(BAD_CART_ID),
                    "404": _error(cart_not_found),
                    "503": _error(REDIS_DOWN),
                },
            },
            "options": {**preflight, "operationId": "preflightEvents"},
        },
        "/static/kustom-checkout.js": {
            "get": {
                "operationId": "storefrontSdk",
                "summary": "The storefront SDK (an ES module)",
                "tags": ["storefront"],
                "responses": {
                    "200": {
                        "description": "The script.",
                        "content": {"text/javascript": {"schema": {"type": "string"}}},
                    },
                    "304": {"description": "Not modified (conditional request)."},
                    "503": _error(REDIS_DOWN),
                },
            }
        },
    }


def _commerce_operation(
    operation_id: str,
    summary: str,
    description: str,
    body: dict[str, Any],
    accepted: Any,
    *,
    payment: bool,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": _json("Accepted.", accepted),
        "400": _error(BAD_BODY + (" Or " + BAD_CART_ID if not payment else "")),
        "401": _error(UNSIGNED),
        "413": _error(TOO_LARGE),
        "503": _error(NO_SECRET),
    }
    if payment:
        responses["400"] = _error(
            BAD_BODY + " Or the event's own refusals, such as `invalid_amount`, "
            "`amount_not_representable`, `invalid_lines`, `lines_do_not_match_amount`, "
            "`invalid_shipping_info`."
        )
        responses["404"] = _error("`cart_not_found`: nothing is known about the cart.")
        responses["409"] = _error(
            "`cart_not_completed` (no completed Kustom order to act on) or "
            "`idempotency_conflict` (the id was used before with other content)."
        )
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": ["commerce events"],
            "security": SIGNED,
            "requestBody": body,
            "responses": dict(sorted(responses.items())),
        }
    }


def _commerce_paths() -> dict[str, dict[str, Any]]:
    return {
        "/commerce/cart-mutation": _commerce_operation(
            "cartMutation",
            "OnCartMutation: the cart as it now is",
            "A render whose `version` is lower than one already received for the cart is "
            "ignored (202, state unchanged). The render is checked field by field here; "
            "its arithmetic when the checkout is opened (422 `cart_not_payable` there).",
            _body(_ref("CartRender")),
            answers.RenderAcceptedSchema,
            payment=False,
        ),
        "/commerce/payment-capture": _commerce_operation(
            "paymentCapture",
            "OnPaymentCapture: capture (part of) the authorization",
            "Recorded once per captureId (a repeat answers the status it has); the result "
            "goes to POST <COMMERCE_API_URL>/captures/<captureId>/result.",
            _body(_ref("PaymentCapture")),
            answers.CaptureAcceptedSchema,
            payment=True,
        ),
        "/commerce/payment-refund": _commerce_operation(
            "paymentRefund",
            "Refund (part of) what was captured",
            "Recorded once per refundId; the result goes to "
            "POST <COMMERCE_API_URL>/refunds/<refundId>/result.",
            _body(_ref("PaymentRefund")),
            answers.RefundAcceptedSchema,
            payment=True,
        ),
        "/commerce/order-cancel": _commerce_operation(
            "orderCancel",
            "Cancel the order, or release what is left of it",
            "Cancels the Kustom order when nothing was captured, else releases the "
            "remaining authorization. Once per cart.",
            _body(_ref("OrderCancel")),
            answers.CancelAcceptedSchema,
            payment=True,
        ),
    }


def _kustom_reads(
    operation_id: str, summary: str, description: str, body: type[Schema], ok: dict[str, Any]
) -> dict[str, Any]:
    """A callback whose answer Kustom reads (200 goes on, 400 shows error_text)."""
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": ["Kustom callbacks"],
            "parameters": CALLBACK_QUERY,
            "requestBody": _body(body, "Kustom's body; fields not named are allowed."),
            "responses": {
                "200": ok,
                "400": _kustom_refusal(
                    "Refused: Kustom shows error_text and keeps the shopper in the checkout. "
                    "Any body the service cannot read is refused so, with approval_failed."
                ),
                "401": _callback_unauthorized(),
                "503": _kustom_redis_down(),
            },
        }
    }


def _callback_paths() -> dict[str, dict[str, Any]]:
    forwarded = (
        "Forwarded to the commerce backend (POST <COMMERCE_API_URL>/carts/<cartId>/%s); "
        "the answer, built from its new render, is applied by Kustom to its order."
    )
    shipping_answer = _json(
        "The order's new amounts and lines.", answers.ShippingServiceAnswerSchema
    )
    validate = _kustom_reads(
        "kustomValidate",
        "Kustom's validation callback, before it places the order",
        "Approves (200 {}) or rejects. Rejects with approval_failed when Kustom's order "
        "differs from the current cart render or a sync is in flight; else runs the "
        "OnKustomValidation rules. Answers within 3 s.",
        ValidationOrderSchema,
        _json("Approved.", answers.ApprovedSchema),
    )
    validate["post"]["responses"]["303"] = {
        "description": "Rejected when KUSTOM_VALIDATION_REJECT=303: Kustom sends the "
        "shopper to Location, the order's checkout URL with `?kustom_error=CODE`.",
        "headers": {"Location": {"required": True, "schema": {"type": "string", "format": "uri"}}},
    }
    validate["post"]["responses"] = dict(sorted(validate["post"]["responses"].items()))
    return {
        "/kustom/push": {
            "post": {
                "operationId": "kustomPush",
                "summary": "Kustom's push: the order was placed",
                "description": "Answers at once; a completeKustomOrder task completes the "
                "cart if the confirm path has not, then acknowledges the order. No body.",
                "tags": ["Kustom callbacks"],
                "parameters": [ORDER_ID_QUERY, *CALLBACK_QUERY],
                "responses": {
                    "200": _json("Accepted.", answers.CallbackAcceptedSchema),
                    "400": _error("`missing_order_id`: order_id is missing or malformed."),
                    "401": _error("`invalid_token`: the cart/token pair is missing or wrong."),
                    "503": _error(REDIS_DOWN),
                },
            }
        },
        "/kustom/validate": validate,
        "/kustom/address-update": _kustom_reads(
            "kustomAddressUpdate",
            "The shopper changed an address",
            forwarded % "address",
            ShippingServiceRequestSchema,
            shipping_answer,
        ),
        "/kustom/country-change": _kustom_reads(
            "kustomCountryChange",
            "The shopper changed the country",
            forwarded % "address",
            ShippingServiceRequestSchema,
            shipping_answer,
        ),
        "/kustom/shipping-option-update": _kustom_reads(
            "kustomShippingOptionUpdate",
            "The shopper chose another shipping option",
            forwarded % "shipping-option",
            ShippingOptionUpdateSchema,
            shipping_answer,
        ),
        "/kustom/notification": {
            "post": {
                "operationId": "kustomNotification",
                "summary": "A fraud decision on a pending order",
                "description": "FRAUD_RISK_ACCEPTED, _REJECTED and _STOPPED are recorded "
                "and forwarded to the commerce backend by a task; any other event_type is "
                "answered `ignored`.",
                "tags": ["Kustom callbacks"],
                "parameters": CALLBACK_QUERY,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["event_type"],
                        "properties": {
                            "event_type": {"type": "string", "minLength": 1},
                            "order_id": {"type": "string", "maxLength": MAX_ORDER_ID},
                        },
                    }
                ),
                "responses": {
                    "200": _json("Accepted or ignored.", answers.NotificationAcceptedSchema),
                    "400": _error("`invalid_json`, `invalid_event_type` or `missing_order_id`."),
                    "401": _error("`invalid_token`: the cart/token pair is missing or wrong."),
                    "413": _error(TOO_LARGE),
                    "503": _error(REDIS_DOWN),
                },
            }
        },
    }


def _service_paths() -> dict[str, dict[str, Any]]:
    def get(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "tags": ["service"],
                "responses": {**responses, "503": responses.get("503", _error(REDIS_DOWN))},
            }
        }

    def text(media_type: str, description: str) -> dict[str, Any]:
        return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}

    return {
        "/": get("home", "What this service is, with links", {"200": text("text/html", "A page.")}),
        "/openapi.json": get(
            "openapi",
            "This document",
            {"200": _json("OpenAPI 3.1.", {"type": "object"})},
        ),
        "/healthz": get(
            "healthz", "The process is up", {"200": _json("Up.", answers.HealthSchema)}
        ),
        "/readyz": get(
            "readyz",
            "Ready to serve: Redis answers",
            {
                "200": _json("Ready.", answers.ReadySchema),
                "503": _error("`redis_unavailable`: Redis does not answer."),
            },
        ),
        "/metrics": get(
            "metrics",
            "Prometheus metrics of every web and worker process of this node",
            {"200": text("text/plain", "The text exposition format.")},
        ),
    }


# -- the document -----------------------------------------------------------------------------


@cache
def openapi_document() -> dict[str, Any]:
    """The whole description, built once per process (it only depends on the code)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="kustom-app",
        version=app_version(),
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION},
        tags=[
            {"name": "storefront", "description": "Called from the shopper's browser."},
            {"name": "commerce events", "description": "Signed events of the commerce backend."},
            {"name": "Kustom callbacks", "description": "Kustom's calls, with a cart token."},
            {"name": "service", "description": "The page, this document, health, metrics."},
        ],
    )
    plugin.map_to_openapi_type(fields.Url, "string", "uri")  # apispec says "url"
    spec.components.security_scheme(
        "commerceSignature",
        {
            "type": "apiKey",
            "in": "header",
            "name": INBOUND_SIGNATURE_HEADER,
            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256(COMMERCE_WEBHOOK_SECRET, "
            '"<t>.<raw body>")>',
        },
    )
    for name, file_name in EVENT_SCHEMAS.items():
        for component, schema in event_components(name, load_event_schema(file_name)).items():
            spec.components.schema(component, schema)
    spec.components.schema("CartStatus", schema=answers.CartStatusSchema)
    for paths in (_storefront_paths, _commerce_paths, _callback_paths, _service_paths):
        for path, operations in paths().items():
            parameters = operations.pop("parameters", None)
            spec.path(path=path, operations=operations, parameters=parameters)
    return spec.to_dict()


def openapi_json() -> str:
    """The document as docs/openapi.json holds it (`make openapi` writes it)."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
