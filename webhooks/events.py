"""Server-Sent Events of a cart's sync status (CONTRACT section 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("events", __name__)
