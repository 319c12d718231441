"""An in-process double of Kustom's Checkout v3 and Order Management APIs.

It behaves like Kustom (the former Klarna Checkout v3 API) for the calls kustom-app makes:
HTTP Basic auth, Kustom-shaped error bodies and a ``Klarna-Correlation-Id`` header on every
response, Kustom's order arithmetic (``BAD_VALUE`` naming each bad field), empty-body 404s for
unknown or expired checkout orders, ``READ_ONLY_ORDER`` once completed, and the order
management rules, with ``Klarna-Idempotency-Key`` replay. Like every double here it never
imports kustom_app, webhooks or workers: it judges the service by Kustom's rules.

``rules``: Kustom's documented checks on a checkout order, each with its source. ``state``:
:class:`KustomDoubleState`, made of ``store``, ``checkout``, ``ordermanagement``,
``purchase``, ``callbacks`` and ``triggers``. ``api``: the HTTP API and the ``/_double/...``
test control; ``control``: the ``/_playground/...`` API that ``kustom-playground trigger``
calls (``playground.cli``). ``snippet`` and ``shopper_page`` (``templates/``): the checkout
the shopper sees. ``app``: :func:`create_app`. ``__main__``: ``python -m playground.kustom
--port 8710``, the same as ``kustom-playground serve``. With ``state_file`` the orders
survive a restart (``playground.statefile``).
"""

from playground.kustom.answers import DoubleError, KustomError
from playground.kustom.api import EXTENSION_KEY
from playground.kustom.app import create_app
from playground.kustom.rules import validate_order, validate_order_line
from playground.kustom.state import KustomDoubleState
from playground.kustom.store import OPERATIONS

__all__ = [
    "EXTENSION_KEY",
    "OPERATIONS",
    "DoubleError",
    "KustomDoubleState",
    "KustomError",
    "create_app",
    "validate_order",
    "validate_order_line",
]
