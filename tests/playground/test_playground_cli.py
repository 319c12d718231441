"""``kustom-playground serve`` as a backend team's CI runs it: a process of its own.

The console script is started as a subprocess on a port of our choosing and polled until it
answers; its Basic auth is the one given on the command line; with ``--state-file`` its
orders survive the process being killed (SIGKILL: no goodbye) and started again; ``--help``
names every flag and event that docs/playground.md documents.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.waiting import wait_until
from playground.catalogue import ShopCart, render_cart
from playground.cli import build_parser
from tests.playground.test_shop import kustom_order

ROOT = Path(__file__).resolve().parents[2]
SERVE_FLAGS = (
    "--host",
    "--port",
    "--state-file",
    "--username",
    "--password",
    "--base-url",
    "--latency",
    "--push-delay",
    "--update-delay",
    "--order-lifetime",
)
EVENTS = (
    "pay",
    "push",
    "validation",
    "address-update",
    "shipping-option-update",
    "country-change",
    "expire",
    "fraud",
    "slow",
    "fail",
    "recover",
)


def console_script() -> str:
    """The installed ``kustom-playground`` (pyproject [project.scripts]) beside this Python."""
    found = Path(sys.executable).with_name("kustom-playground")
    if found.exists():
        return str(found)
    which = shutil.which("kustom-playground")
    assert which, "kustom-playground is not installed: run scripts/setup"
    return which


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(*args: str, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``kustom-playground serve`` on a free port until it answers; yields (url, process)."""
    port = port or free_port()
    # A file, not a pipe: werkzeug logs every request, and a full pipe would stall the server.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [console_script(), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            log.seek(0)
            output = log.read()
            raise AssertionError(f"kustom-playground serve exited {process.returncode}: {output}")
        try:
            return requests.get(f"{url}/_playground/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(ready, timeout=30)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()


def new_order(url: str, auth: tuple[str, str] = ("playground", "playground")) -> dict[str, Any]:
    render = render_cart(ShopCart("shop-cli", 1, {"TSHIRT-RED-M": 2}, "postnord"))
    created = requests.post(
        f"{url}/checkout/v3/orders", json=kustom_order(render), auth=auth, timeout=10
    )
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    return order


def test_help_names_every_flag_and_event() -> None:
    parser = build_parser()
    top = parser.format_help()
    assert all(name in top for name in ("serve", "trigger", "orders"))
    serve = subprocess.run(
        [console_script(), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert serve.returncode == 0
    assert [flag for flag in SERVE_FLAGS if flag not in serve.stdout] == []
    trigger = subprocess.run(
        [console_script(), "trigger", "--help"], capture_output=True, text=True, timeout=60
    )
    assert [event for event in EVENTS if event not in trigger.stdout] == []
    for event in EVENTS:
        with pytest.raises(SystemExit) as done:
            parser.parse_args(["trigger", event, "--help"])
        assert done.value.code == 0


def test_help_of_each_event_shows_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "pay": ("--no-validation", "--no-push", "--pending", "--address", "--url", "--json"),
        "fraud": ("--decision", "ACCEPTED", "REJECTED", "STOPPED"),
        "fail": ("--status", "--for", "--count", "--operation"),
        "slow": ("--seconds", "--for", "--count"),
        "country-change": ("--country",),
        "shipping-option-update": ("--option",),
    }
    for event, flags in expected.items():
        with pytest.raises(SystemExit):
            build_parser().parse_args(["trigger", event, "--help"])
        shown = capsys.readouterr().out
        assert [flag for flag in flags if flag not in shown] == [], event


def test_serve_answers_on_its_port_with_the_given_basic_auth() -> None:
    with serving("--username", "ci-user", "--password", "ci-secret") as (url, _):
        assert requests.get(f"{url}/checkout/v3/orders/x", timeout=5).status_code == 401
        wrong = requests.get(
            f"{url}/checkout/v3/orders/x", auth=("playground", "playground"), timeout=5
        )
        assert wrong.status_code == 401
        assert wrong.json()["error_code"] == "UNAUTHORIZED"
        order = new_order(url, auth=("ci-user", "ci-secret"))
        read = requests.get(
            f"{url}/checkout/v3/orders/{order['order_id']}",
            auth=("ci-user", "ci-secret"),
            timeout=5,
        )
        assert read.status_code == 200
        assert read.json()["status"] == "checkout_incomplete"
        # The iframe URL in the snippet is this playground's own.
        assert f"{url}/playground/checkout/{order['order_id']}" in order["html_snippet"]


def test_orders_survive_a_killed_playground(tmp_path: Path) -> None:
    state_file = tmp_path / "kustom.json"
    port = free_port()
    with serving("--state-file", str(state_file), port=port) as (url, process):
        kept = new_order(url)
        paid = new_order(url)
        cli = subprocess.run(
            [console_script(), "trigger", "pay", paid["order_id"], "--url", url, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["completed"] is True
        process.send_signal(signal.SIGKILL)  # no chance to write anything on the way out
        process.wait(10)
    with serving("--state-file", str(state_file), port=port) as (url, _):
        auth = ("playground", "playground")
        again = requests.get(f"{url}/checkout/v3/orders/{kept['order_id']}", auth=auth, timeout=5)
        assert again.status_code == 200
        assert again.json()["order_lines"] == kept["order_lines"]
        om = requests.get(
            f"{url}/ordermanagement/v1/orders/{paid['order_id']}", auth=auth, timeout=5
        )
        assert om.status_code == 200
        assert om.json()["status"] == "AUTHORIZED"
        # And it goes on from there: the kept order can still be updated and paid.
        assert (
            requests.post(
                f"{url}/checkout/v3/orders/{kept['order_id']}",
                json={"merchant_reference2": "after-restart"},
                auth=auth,
                timeout=5,
            ).status_code
            == 200
        )
        listed = subprocess.run(
            [console_script(), "orders", "--url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert kept["order_id"] in listed.stdout and paid["order_id"] in listed.stdout


def test_an_unreadable_state_file_stops_serve_with_a_clear_error(tmp_path: Path) -> None:
    state_file = tmp_path / "kustom.json"
    state_file.write_text("{not json")
    started = subprocess.run(
        [console_script(), "serve", "--port", str(free_port()), "--state-file", str(state_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 1
    assert "is not JSON" in started.stderr and str(state_file) in started.stderr
    assert state_file.read_text() == "{not json"  # left for the user to look at


def test_a_trigger_without_a_playground_says_so() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [console_script(), "trigger", "push", "some-order", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUSTOM_PLAYGROUND_URL": "http://unused.invalid"},
    )
    assert result.returncode == 1
    assert f"cannot reach the playground at {url}" in result.stderr


def test_sigterm_ends_serve_cleanly() -> None:
    with serving() as (_, process):
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(15) == 0
        assert time.monotonic() - started < 15
