"""The service's own pages (CONTRACT section 6b): ``GET /`` and ``GET /openapi.json``.

``/`` is what the printed ``web`` URL of ``make run`` opens: a page that says what this
is and links what a newcomer looks for next. It shows no setting but the public ones
(no secret, no credential, no Redis URL).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from markupsafe import Markup, escape

from webhooks import extension
from webhooks.openapi import app_version, openapi_json

bp = Blueprint("home", __name__)

# The repository's docs, named rather than linked: the service does not serve them.
DOCS = (
    ("docs/integration.md", "connecting a commerce backend and a storefront, step by step"),
    ("docs/api.md", "this API's OpenAPI document and JSON Schemas, and validating against them"),
    ("docs/endpoints.md", "every endpoint, with its answers"),
    ("docs/running.md", "running it locally and in production"),
    ("docs/configuration.md", "the settings"),
    ("docs/operations.md", "operating it: metrics, dead letters, the operator console"),
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kustom-app</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto;
  padding: 0 1rem; color: #1d1d1f; }}
code {{ background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }}
li {{ margin: .25rem 0; }}
</style>
</head>
<body>
<h1>kustom-app <small>{version}</small></h1>
<p>This service connects a commerce backend to <strong>Kustom Checkout</strong>: it keeps
each cart's Kustom order in sync with the cart, answers Kustom's callbacks, completes the
cart at the commerce backend once the shopper has paid, and captures, refunds and cancels
on the backend's events. There is nothing to buy here; the shop is elsewhere.</p>
<h2>Links</h2>
<ul>
{links}
</ul>
<h2>Documentation</h2>
<p>In the repository (a clean clone has them all):</p>
<ul>
{docs}
<li><code>schemas/</code>: JSON Schemas of the cart render and the payment events</li>
</ul>
</body>
</html>
"""


_HOST_NAME = re.compile(r"[A-Za-z0-9.-]{1,253}\Z")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}\Z")


def _flower_url(port: int) -> str:
    """Flower on this host: the host the browser used (when it is a plain host name or
    address, else localhost), on FLOWER_PORT."""
    try:
        host = urlsplit("//" + request.host).hostname or ""
    except ValueError:
        host = ""
    if _IPV6.match(host) and ":" in host:
        host = f"[{host}]"
    elif not _HOST_NAME.match(host):
        host = "localhost"
    return f"http://{host}:{port}/"


def _links() -> list[tuple[str, str]]:
    settings = extension.settings()
    links = []
    if settings.shop_url:
        links.append((settings.shop_url, "the demo shop: add products, check out, pay"))
    links += [
        (_flower_url(settings.flower_port), "Flower: the Celery tasks (when flower runs)"),
        ("/metrics", "Prometheus metrics"),
        ("/openapi.json", "the OpenAPI 3.1 description of this API"),
        ("/healthz", "health"),
        ("/readyz", "readiness (Redis reachable)"),
    ]
    return links


@bp.get("/")
def home() -> Response:
    links = "\n".join(
        Markup('<li><a href="{0}">{0}</a>: {1}</li>').format(url, text) for url, text in _links()
    )
    docs = "\n".join(
        Markup("<li><code>{0}</code>: {1}</li>").format(path, text) for path, text in DOCS
    )
    page = PAGE.format(version=escape(app_version()), links=links, docs=docs)
    return Response(page, mimetype="text/html")


@bp.get("/openapi.json")
def openapi() -> Response:
    return current_app.response_class(openapi_json(), mimetype="application/json")
