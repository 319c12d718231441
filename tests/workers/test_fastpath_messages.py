"""Sync job messages for the render script (the real-worker checks are in tests/integration)."""

from __future__ import annotations

import json
import uuid

from kustom_app.settings import Settings
from kustom_app.state import JOB_PAYLOAD_MARKER
from workers.celery_app import make_celery
from workers.fastpath_messages import SyncJobMessages
from workers.tasks import sync_kustom_order

STATE = "redis://10.0.0.5:6379/0"


def celery_for(broker: str, **transport: object):
    app = make_celery(Settings(redis_url=STATE, celery_broker_url=broker))
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **transport}
    return app


def test_the_script_queues_jobs_only_when_the_broker_is_the_state_database():
    assert SyncJobMessages.usable_with(celery_for(STATE), STATE)
    assert not SyncJobMessages.usable_with(celery_for("redis://10.0.0.5:6379/1"), STATE)
    assert not SyncJobMessages.usable_with(celery_for("redis://10.0.0.6:6379/0"), STATE)
    assert not SyncJobMessages.usable_with(celery_for(STATE, global_keyprefix="shop:"), STATE)
    sentinel = "sentinel://10.0.0.7:26379;sentinel://10.0.0.8:26379/0?master_name=main"
    assert not SyncJobMessages.usable_with(celery_for(sentinel), sentinel)


def test_a_job_message_carries_ids_in_flower_and_a_place_for_the_payload():
    messages = SyncJobMessages(sync_kustom_order)
    first = json.loads(messages.build('cart-"q"', "h1"))
    second = json.loads(messages.build("cart-2", "h2"))
    assert first["headers"]["task"] == "syncKustomOrder"
    assert first["headers"]["argsrepr"] == "(cart='cart-\"q\"', hash='h1')"
    assert first["headers"]["id"] != second["headers"]["id"], "every job its own id"
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
    for ids in (first, second):
        for text in (ids["headers"]["id"], ids["properties"]["delivery_tag"]):
            assert str(uuid.UUID(text)) == text, "a UUID in its usual spelling"
            assert uuid.UUID(text).version == 4 and uuid.UUID(text).variant == uuid.RFC_4122
    assert first["headers"]["root_id"] == first["headers"]["id"]
    assert first["properties"]["correlation_id"] == first["headers"]["id"]
    # The body is JSON text (no body_encoding): the script puts the payload at the marker.
    assert "body_encoding" not in first["properties"]
    assert first["body"].count(JOB_PAYLOAD_MARKER) == 1
    body = json.loads(first["body"].replace(JOB_PAYLOAD_MARKER, '{"order_amount":100}'))
    assert body[0] == ['cart-"q"', "h1", {"order_amount": 100}]


def test_with_the_fast_paths_off_the_web_builds_no_message_and_queues_through_celery():
    from workers.enqueue import CeleryJobs

    state = sync_kustom_order.app.conf.broker_url  # the broker is the state Redis
    assert CeleryJobs(state).sync_job("cart-1", "h1") is not None
    assert CeleryJobs(state, fast_paths=False).sync_job("cart-1", "h1") is None
