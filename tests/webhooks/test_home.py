"""GET /: the page the printed web URL opens (CONTRACT section 6b)."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser

from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET, RecordingQueue


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value or "" for name, value in attrs if name == "href"]


def links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


def make_client(settings, fake_redis):
    from webhooks.app import create_app

    app = create_app(
        {"SETTINGS": settings, "REDIS": fake_redis, "TASK_QUEUE": RecordingQueue(), "TESTING": True}
    )
    return app.test_client()


def test_home_is_an_html_page_saying_what_the_service_is(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<title>kustom-app</title>" in page
    assert "Kustom Checkout" in page and "commerce backend" in page
    for doc in ("docs/integration.md", "docs/api.md", "docs/endpoints.md", "schemas/"):
        assert doc in page


def test_home_links_metrics_the_api_description_and_flower(client, settings):
    hrefs = links(client.get("/", headers={"Host": "kustom.example:8000"}).get_data(as_text=True))
    assert "/metrics" in hrefs and "/openapi.json" in hrefs and "/healthz" in hrefs
    assert f"http://kustom.example:{settings.flower_port}/" in hrefs


def test_the_links_it_gives_answer(client):
    for href in links(client.get("/").get_data(as_text=True)):
        if href.startswith("/"):
            assert client.get(href).status_code == 200, href


def test_home_links_the_shop_only_when_one_is_known(settings, fake_redis):
    without = make_client(settings, fake_redis).get("/").get_data(as_text=True)
    assert not [h for h in links(without) if ":8080" in h]
    shop = make_client(replace(settings, shop_url="http://localhost:8080"), fake_redis)
    assert "http://localhost:8080" in links(shop.get("/").get_data(as_text=True))


def test_home_shows_no_secret(settings, fake_redis):
    settings = replace(
        settings,
        redis_url="redis://:redis-password@redis.internal:6379/0",
        shop_url="http://localhost:8080",
    )
    page = make_client(settings, fake_redis).get("/").get_data(as_text=True)
    for secret in (
        COMMERCE_SECRET,
        CALLBACK_SECRET,
        settings.kustom_password,
        settings.kustom_username,
        "redis-password",
        "redis.internal",
    ):
        assert secret not in page


def test_flower_is_linked_on_the_host_the_browser_used_if_it_is_a_plain_one(client, settings):
    def flower(host: str) -> str:
        hrefs = links(client.get("/", headers={"Host": host}).get_data(as_text=True))
        return next(h for h in hrefs if h.endswith(f":{settings.flower_port}/"))

    assert flower("[::1]:8000") == f"http://[::1]:{settings.flower_port}/"
    assert flower("127.0.0.1:8000") == f"http://127.0.0.1:{settings.flower_port}/"
    for hostile in ('x"><script>alert(1)</script>', "a'b.example", "a%22b"):
        assert flower(hostile) == f"http://localhost:{settings.flower_port}/"
