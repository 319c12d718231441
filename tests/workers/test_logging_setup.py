"""The worker's lines name the cart of the task they are about."""

from __future__ import annotations

import json
import logging

from kustom_app.logs import current_context
from workers.logging_setup import ReceivedTaskCart, _task_cart, say_as_json
from workers.ordermanagement import capture_kustom_order
from workers.tasks import acknowledge_kustom_order, sync_kustom_order


def test_a_task_whose_first_argument_is_the_cart_is_about_it():
    assert _task_cart(sync_kustom_order, ("cart-1", "h", None)) == "cart-1"
    assert _task_cart(acknowledge_kustom_order, ["cart-2", "o-1"]) == "cart-2"
    assert _task_cart(capture_kustom_order, ("cap-1",)) is None, "its cart comes from its record"


def _received(argsrepr: str) -> logging.LogRecord:
    record = logging.LogRecord(
        "celery.worker.strategy",
        logging.INFO,
        __file__,
        1,
        "Task %(name)s[%(id)s] received",
        (),
        None,
    )
    record.data = {"id": "t-1", "name": "syncKustomOrder", "args": argsrepr}
    return record


def test_the_received_line_names_the_cart_from_the_ids_only_argsrepr():
    record = _received(sync_kustom_order.shown_as.format("cart-7", "hash-1"))
    assert ReceivedTaskCart().filter(record)
    assert record.kustom_context == {**current_context(), "cart": "cart-7"}
    other = _received(capture_kustom_order.shown_as.format("cap-1"))
    assert ReceivedTaskCart().filter(other)
    assert not hasattr(other, "kustom_context")


def test_celerys_shutdown_notice_is_a_json_line_in_json_mode(tmp_path):
    path = tmp_path / "out"
    with path.open("w") as out:
        say_as_json("worker: Warm shutdown (MainProcess) redis://:pw@r:6379", out)
    (line,) = path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["msg"] == "worker: Warm shutdown (MainProcess) redis://:***@r:6379"
    assert (entry["level"], entry["logger"]) == ("warning", "celery.apps.worker")
