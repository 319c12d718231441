"""The Kustom double's state: one object, the parts of Kustom it plays, one lock.

:class:`KustomDoubleState` is ``app.extensions["kustom_double"]``; tests drive it over HTTP
(the API and ``/_double/...``) or call its methods directly. Its parts, each in its module:

* :class:`~playground.kustom.store.DoubleStore`: the orders, call and callback logs,
  faults and idempotent answers, and waiting for them;
* :class:`~playground.kustom.checkout.CheckoutOrders`: Checkout v3 orders;
* :class:`~playground.kustom.ordermanagement.OrderManagement`: captures, refunds, ...;
* :class:`~playground.kustom.purchase.Purchase`: the shopper, completion, fraud, expiry,
  with :class:`~playground.kustom.callbacks.MerchantCallbacks` (push, notification,
  validation, shipping option);
* :class:`~playground.kustom.triggers.Triggers`: ``kustom-playground trigger ...``.
"""

from __future__ import annotations

from playground.kustom.checkout import CheckoutOrders
from playground.kustom.ordermanagement import OrderManagement
from playground.kustom.triggers import Triggers


class KustomDoubleState(CheckoutOrders, OrderManagement, Triggers):
    """All of the double's state, in memory, behind one lock (``self.lock``).

    Kustom-API methods (``create_order``, ``capture``, ...) raise :class:`KustomError` like the
    API would answer; test-control methods (``complete_order``, ``expire_order``, ...) raise
    :class:`DoubleError`. The Python methods act directly: they neither log calls nor apply
    latency, faults or idempotency — only HTTP requests do.
    """
