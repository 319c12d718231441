"""Wiring of the domain objects for one process (web or worker).

Built lazily, once per process, so gunicorn and Celery prefork children each get their
own connections after forking, and no request pays for client set-up.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property

import redis

from kustom_app.checkout import CheckoutService
from kustom_app.commerce import CommerceClient
from kustom_app.completion import CompletionService
from kustom_app.fastpath_render import use_fast_render
from kustom_app.kustom import KustomClient
from kustom_app.redis_connection import redis_from_url
from kustom_app.settings import Settings
from kustom_app.state import CartStore


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        use_fast_render(settings.fast_paths)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_from_url(
            self.settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=30,
        )

    @cached_property
    def store(self) -> CartStore:
        s = self.settings
        return CartStore(
            self.redis,
            prefix=s.key_prefix,
            ttl_seconds=s.cart_ttl_seconds,
            sync_lease_ms=int(s.sync_lease_seconds * 1000),
            open_order_check_ms=int(s.reconcile_open_order_after_seconds * 1000),
            fast_paths=s.fast_paths,
        )

    @cached_property
    def kustom(self) -> KustomClient:
        s = self.settings
        return KustomClient(
            s.kustom_api_url,
            s.kustom_username or "",
            s.kustom_password or "",
            connect_timeout=s.kustom_connect_timeout,
            read_timeout=s.kustom_read_timeout,
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
        return CompletionService(
            self.store,
            self.kustom,
            self.commerce,
            record_ttl_seconds=self.settings.order_record_ttl_seconds,
            lease_ms=int(self.settings.completion_lease_seconds * 1000),
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
