"""The whole purchase in a real browser: Debian's chromium driven by Playwright.

Everything runs on 127.0.0.1 as it does under ``scripts/run``: a real redis-server, a real
Celery worker, the web app under gunicorn with the Procfile's worker class (gthread, so the
event streams run as in production), and the two local stand-ins (the Kustom playground and
the commerce playground with its shop) on threads of this process, where the test can look
at their state. Screenshots go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.celery_worker import CeleryWorker
from harness.redis_server import RedisServer, free_port
from playground.commerce import CommerceDoubleState
from playground.commerce import create_app as create_commerce
from playground.kustom import KustomDoubleState
from playground.kustom import create_app as create_kustom
from playground.server import ServerThread
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("KUSTOM_CHROMIUM") or "/usr/bin/chromium")  # Debian's
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PUSH_DELAY_SECONDS = 1.0


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run `scripts/setup --browser` (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing: run `scripts/setup --browser` (pip install '.[browser]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_browser()
    here = Path(__file__).parent
    browser_items = [i for i in items if here in Path(str(i.fspath)).parents]
    for item in browser_items:
        item.add_marker(pytest.mark.browser)
    if not reason:
        return
    only_browser = (config.getoption("-m") or "").strip() == "browser"  # make test-browser
    if browser_items and only_browser and os.environ.get("CI"):
        # CI set the browser up itself: a browser test skipped there would pass unseen.
        raise pytest.UsageError(f"browser tests selected in CI, but {reason}")
    for item in browser_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Stack:
    shop_url: str
    web_url: str
    kustom: KustomDoubleState
    commerce: CommerceDoubleState
    worker: CeleryWorker


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


class Gunicorn:
    """The Procfile's web process, on a loopback port."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = SCREENSHOTS.parent / "browser-web.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Gunicorn:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("gunicorn")),
                    "--bind", f"127.0.0.1:{self.port}",
                    "--worker-class", "gthread", "--workers", "1", "--threads", "16",
                    "--timeout", "60",
                    "webhooks.app:create_app()",
                ],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
            if _answers(f"{self.url}/healthz"):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if missing_browser():
        pytest.skip(missing_browser() or "")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    web_port = free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    kustom_app = create_kustom(push_delay_seconds=PUSH_DELAY_SECONDS)
    commerce_app = create_commerce(secret=COMMERCE_SECRET, service_url=web_url)
    with (
        RedisServer(appendonly=False) as redis_server,
        ServerThread(kustom_app, name="kustom-playground") as kustom,
        ServerThread(commerce_app, name="shop") as shop,
    ):
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "PORT": str(web_port),
            "PUBLIC_BASE_URL": web_url,
            "KUSTOM_API_URL": kustom.url,
            "KUSTOM_USERNAME": "playground",
            "KUSTOM_PASSWORD": "playground",
            "COMMERCE_API_URL": shop.url,
            "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
            "CALLBACK_SECRET": CALLBACK_SECRET,
            "CORS_ALLOWED_ORIGINS": shop.url,
            "CONFIRM_WAIT_SECONDS": "1",
            "TASK_RETRY_BASE_SECONDS": "0.2",
            "TASK_RETRY_MAX_SECONDS": "2",
            "CELERY_VISIBILITY_TIMEOUT": "60",  # above a busy sync's 20.5 s + the 25 s run
            "SYNC_LEASE_SECONDS": "20",
            "PAYMENT_LEASE_SECONDS": "20",
            "COMPLETION_LEASE_SECONDS": "20",
            "TASK_TIME_LIMIT_SECONDS": "25",
            "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
        }
        web = Gunicorn(env, web_port)
        with CeleryWorker(env, name="browser", concurrency=2) as worker:
            web.start()
            try:
                yield Stack(
                    shop_url=shop.url,
                    web_url=web_url,
                    kustom=kustom_app.extensions["kustom_double"],
                    commerce=commerce_app.extensions["commerce_double"],
                    worker=worker,
                )
            finally:
                web.stop()


@pytest.fixture
def page_problems() -> list[str]:
    """What went wrong in the browser: page errors, console errors, HTTP errors."""
    return []


@contextmanager
def browser_page(page_problems: list[str], viewport: dict[str, int] | None = None) -> Iterator[Any]:
    """A fresh headless chromium page (desktop-sized unless ``viewport``) that notes its
    problems in ``page_problems``."""
    from playwright.sync_api import sync_playwright

    def http_error(response: Any) -> None:
        if response.status >= 400:
            page_problems.append(f"HTTP {response.status}: {response.url}")

    def console_error(message: Any) -> None:
        if message.type == "error":
            page_problems.append(f"console: {message.text}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.on("pageerror", lambda error: page_problems.append(f"page error: {error}"))
        page.on("response", http_error)
        page.on("console", console_error)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def page(stack: Stack, page_problems: list[str]) -> Iterator[Any]:
    with browser_page(page_problems) as page:
        yield page
