"""The composition root: every domain object of one process (web, worker or beat), built
here from its `Settings` and nowhere else.

Built lazily, once per process, so gunicorn and Celery prefork children each get their
own connections after forking, and no request pays for client set-up. The web holds one
`Services` per app (`webhooks.app.create_app`, fetched through `webhooks.extension`); the
worker's and beat's tasks use `process_services`.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property

import redis
from redis import Redis

from kustom_app.checkout import CheckoutService
from kustom_app.commerce import CommerceClient
from kustom_app.completion import CompletionService
from kustom_app.fastpath_render import use_fast_render
from kustom_app.jobs import Jobs
from kustom_app.kustom import KustomClient
from kustom_app.ordermanagement import PaymentOperations, PaymentStore
from kustom_app.reconcile import ReconcilePolicy, Reconciler
from kustom_app.redis_connection import redis_from_url
from kustom_app.rule_loading import process_rules
from kustom_app.settings import Settings
from kustom_app.state import CartStore
from kustom_app.validation import OrderValidator


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class Services:
    """``redis_client`` replaces the connection to ``settings.redis_url`` (a test's
    fakeredis, say)."""

    def __init__(self, settings: Settings, redis_client: redis.Redis | None = None) -> None:
        self.settings = settings
        self._given_redis = redis_client
        use_fast_render(settings.fast_paths)

    @cached_property
    def redis(self) -> redis.Redis:
        if self._given_redis is not None:
            return self._given_redis
        return redis_from_url(
            self.settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=30,
        )

    @cached_property
    def broker_redis(self) -> Redis:
        """The broker's Redis (CELERY_BROKER_URL), for the queue-depth gauges: the state
        Redis when they are one."""
        s = self.settings
        if self._given_redis is not None or s.celery_broker_url == s.redis_url:
            return self.redis
        return redis_from_url(
            self.settings.celery_broker_url, socket_connect_timeout=2, socket_timeout=5
        )

    @cached_property
    def store(self) -> CartStore:
        s = self.settings
        return CartStore(
            self.redis,
            prefix=s.key_prefix,
            ttl_seconds=s.cart_ttl_seconds,
            order_record_ttl_seconds=s.order_record_ttl_seconds,
            sync_lease_ms=_ms(s.sync_lease_seconds),
            completion_lease_ms=_ms(s.completion_lease_seconds),
            open_order_check_ms=_ms(s.reconcile_open_order_after_seconds),
            fast_paths=s.fast_paths,
        )

    @cached_property
    def payments(self) -> PaymentStore:
        s = self.settings
        return PaymentStore(self.redis, prefix=s.key_prefix, ttl_seconds=s.order_record_ttl_seconds)

    @cached_property
    def kustom(self) -> KustomClient:
        s = self.settings
        return KustomClient(
            s.kustom_api_url,
            s.kustom_username or "",
            s.kustom_password or "",
            connect_timeout=s.kustom_connect_timeout,
            read_timeout=s.kustom_read_timeout,
            ca_bundle=s.ca_bundle,
            fast_paths=s.fast_paths,
        )

    @cached_property
    def commerce(self) -> CommerceClient | None:
        s = self.settings
        if not s.commerce_api_url:
            return None
        return CommerceClient(
            s.commerce_api_url,
            s.commerce_webhook_secret,
            connect_timeout=s.commerce_connect_timeout,
            read_timeout=s.commerce_read_timeout,
            ca_bundle=s.ca_bundle,
        )

    @cached_property
    def checkout(self) -> CheckoutService:
        s = self.settings
        return CheckoutService(
            self.store,
            self.kustom,
            self.commerce,
            public_base_url=s.public_base_url,
            callback_secret=s.callback_secret,
            kustom_api_url=s.kustom_api_url,
            order_max_age_seconds=s.order_max_age_seconds,
        )

    @cached_property
    def completion(self) -> CompletionService:
        return CompletionService(self.store, self.kustom, self.commerce)

    @cached_property
    def payment_operations(self) -> PaymentOperations:
        s = self.settings
        return PaymentOperations(
            self.store,
            self.payments,
            self.kustom,
            self.commerce,
            lease_ms=_ms(s.payment_lease_seconds),
            stuck_queued_ms=_ms(s.payment_requeue_after_seconds),
        )

    @cached_property
    def validator(self) -> OrderValidator:
        """The validation callback's rules, loaded on first use: the web asks at start, so
        a bad KUSTOM_VALIDATION_RULES (or a ready rule's setting) stops it there."""
        return OrderValidator(process_rules(self.settings.validation_rules))

    def reconciler(self, jobs: Jobs, policy: ReconcilePolicy | None = None) -> Reconciler:
        """The sweeper, queueing through ``jobs``, with thresholds from the settings unless
        ``policy`` is given."""
        return Reconciler(
            self.store,
            self.payments,
            self.kustom,
            jobs,
            policy or ReconcilePolicy.from_settings(self.settings),
        )


_lock = threading.Lock()
_services: tuple[int, Services] | None = None


def process_services() -> Services:
    """The `Services` of this process, built from the environment on first use."""
    global _services
    with _lock:
        if _services is None or _services[0] != os.getpid():
            _services = (os.getpid(), Services(Settings.from_env()))
        return _services[1]


def reset_process_services() -> None:
    """Forget the cached services (tests change the environment between apps)."""
    global _services
    with _lock:
        _services = None
