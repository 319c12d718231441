"""Payment events from the commerce backend: capture, refund, cancel (CONTRACT section 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("payments", __name__)
