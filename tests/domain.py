"""Domain objects built as the service builds them (`kustom_app.services.Services`), for the
tests that build one directly: every tunable is `Settings`' default unless the test changes
it, so no test spells a default again."""

from __future__ import annotations

import dataclasses
from typing import Any

import redis

from kustom_app.commerce import CommerceClient
from kustom_app.kustom import KustomClient
from kustom_app.ordermanagement import PaymentOperations, PaymentStore
from kustom_app.reconcile import ReconcilePolicy
from kustom_app.services import Services
from kustom_app.settings import Settings
from kustom_app.state import CartStore

DEFAULTS = Settings()
# What the sync task passes `sync_cart` (KUSTOM_REQUEST_LIFETIME_SECONDS, in ms).
REQUEST_LIFETIME_MS = int(DEFAULTS.kustom_request_lifetime_seconds * 1000)


def services(redis_client: redis.Redis | None = None, **changes: Any) -> Services:
    """`Services` on ``redis_client`` with the default settings, bar ``changes``."""
    return Services(dataclasses.replace(DEFAULTS, **changes), redis_client)


def cart_store(redis_client: redis.Redis, **changes: Any) -> CartStore:
    return services(redis_client, **changes).store


def payment_store(redis_client: redis.Redis, **changes: Any) -> PaymentStore:
    return services(redis_client, **changes).payments


def kustom_client(
    base_url: str,
    username: str = "u",
    password: str = "p",  # noqa: S107 (a test's)
    **changes: Any,
) -> KustomClient:
    return services(
        kustom_api_url=base_url, kustom_username=username, kustom_password=password, **changes
    ).kustom


def commerce_client(base_url: str, secret: str | None, **changes: Any) -> CommerceClient:
    client = services(commerce_api_url=base_url, commerce_webhook_secret=secret, **changes).commerce
    assert client is not None
    return client


def payment_operations(
    store: CartStore,
    payments: PaymentStore,
    kustom: KustomClient,
    commerce: CommerceClient | None,
) -> PaymentOperations:
    """`PaymentOperations` on the given parts, with the default leases."""
    defaults = services(store.redis).payment_operations
    return PaymentOperations(
        store,
        payments,
        kustom,
        commerce,
        lease_ms=defaults.lease_ms,
        stuck_queued_ms=defaults.stuck_queued_ms,
    )


def reconcile_policy(**changes: Any) -> ReconcilePolicy:
    """The sweeper's thresholds from the default settings, bar ``changes``."""
    return dataclasses.replace(ReconcilePolicy.from_settings(DEFAULTS), **changes)
