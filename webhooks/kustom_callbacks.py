"""Kustom checkout callbacks: validation, address, country and shipping-option updates (CONTRACT section 6)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("kustom_callbacks", __name__)
