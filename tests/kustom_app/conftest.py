"""Fixtures shared by the kustom_app unit tests (fakeredis: `fake_redis` in tests/conftest.py).

A module that needs a store set up differently defines its own ``store``, which pytest
uses instead of this one (test_state.py, test_sync.py).
"""

from __future__ import annotations

import fakeredis
import pytest

from kustom_app.ordermanagement import PaymentStore
from kustom_app.state import CartStore
from tests.domain import cart_store


@pytest.fixture
def store(fake_redis: fakeredis.FakeRedis) -> CartStore:
    return cart_store(fake_redis)


@pytest.fixture
def payments(fake_redis: fakeredis.FakeRedis) -> PaymentStore:
    return PaymentStore(fake_redis, prefix="kustom", ttl_seconds=3600)
