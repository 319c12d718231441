"""One setting, KUSTOM_FAST_PATHS, turns every fast path off, from the environment to the
component (docs/architecture.md, "Fast paths").

Each component's own off behaviour is tested beside its guard test
(tests/*/test_fastpath_*.py); this holds the wiring: the web's app factory, the worker's
Celery app and the process's services all take the switch from the settings. The pinned
scripts' wiring needs a real Redis: tests/integration/test_fastpath_scripts.py. The whole
stack with the switch off: tests/integration/test_fastpath_off.py.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from kustom_app.fastpath_render import fast_render_enabled, use_fast_render
from kustom_app.render import _SCHEMA, load_render
from kustom_app.settings import Settings
from tests.conftest import CONTRACT_RENDER
from webhooks.app import create_app
from workers import broker, fastpath_broker
from workers.celery_app import make_celery
from workers.tasks import sync_kustom_order


@pytest.fixture(autouse=True)
def fast_render_restored():
    was = fast_render_enabled()
    yield
    use_fast_render(was)


def settings_with(switch: str) -> Settings:
    # The broker is the state Redis, as by default: the render script could queue jobs.
    state = sync_kustom_order.app.conf.broker_url
    return Settings.from_env({"REDIS_URL": state, "KUSTOM_FAST_PATHS": switch})


class Answering(requests.adapters.BaseAdapter):
    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        response = requests.Response()
        response.status_code, response._content, response.url = 200, b"{}", request.url
        return response

    def close(self) -> None:
        pass


def hooks_see_the_answer(session: requests.Session, call: Any) -> bool:
    """Whether a call through the session is dispatched to its response hooks, as
    ``session.request`` does and the adapter shortcut does not."""
    seen: list[int] = []
    session.hooks["response"].append(lambda response, **_: seen.append(response.status_code))
    session.mount("https://", Answering())
    call()
    return seen == [200]


def what_a_render_loads_as(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``load_render``'s answer when the fast path would answer something of its own."""
    monkeypatch.setattr("kustom_app.render.fast_load", lambda data: {"fast path": True})
    data = json.loads(json.dumps(CONTRACT_RENDER), parse_float=Decimal)
    return load_render(copy.deepcopy(data))


@pytest.mark.parametrize("switch", ["on", "off"])
def test_the_one_setting_reaches_every_fast_path(switch, monkeypatch):
    on = switch == "on"
    settings = settings_with(switch)
    web = create_app({"SETTINGS": settings})
    services = web.extensions["kustom"]
    # The web's sync jobs: built for the render script, or left to apply_async.
    assert (web.extensions["kustom.enqueue"].sync_job("cart-1", "h1") is not None) is on
    # The worker's broker transport.
    with make_celery(settings).connection_for_write() as connection:
        expected = fastpath_broker.Transport if on else broker.Transport
        assert type(connection.transport) is expected
    # The Kustom client: the adapter shortcut, or session.request.
    kustom = services.kustom
    assert hooks_see_the_answer(kustom.session, lambda: kustom.get_order("o-1")) is not on
    # Renders: the fast loader, or the schema alone.
    loaded = what_a_render_loads_as(monkeypatch)
    data = json.loads(json.dumps(CONTRACT_RENDER), parse_float=Decimal)
    assert loaded == ({"fast path": True} if on else _SCHEMA.load(data))
