"""What the views use, built once per app by `webhooks.app.create_app`, and fetched here.

The app holds its `Services` (every domain object, built from its settings), its `Jobs`
(the enqueue port) and its count of open event streams in ``app.extensions``; the
blueprints ask for them through the typed functions below, never by key.
"""

from __future__ import annotations

import threading
from typing import cast

from flask import Flask, current_app

from kustom_app.jobs import Jobs
from kustom_app.services import Services
from kustom_app.settings import Settings

SERVICES = "kustom"
JOBS = "kustom.enqueue"
STREAM_SLOTS = "kustom.events.slots"


class StreamSlots:
    """A per-process count of open event streams, so streams cannot take every web thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


def install(app: Flask, services: Services, jobs: Jobs) -> None:
    """Give ``app`` what its views use (`create_app` calls this once)."""
    app.extensions[SERVICES] = services
    app.extensions[JOBS] = jobs
    app.extensions[STREAM_SLOTS] = StreamSlots(services.settings.events_max_streams)


def services() -> Services:
    """The app's domain objects (its store, clients, completion, payment operations...)."""
    return cast(Services, current_app.extensions[SERVICES])


def settings() -> Settings:
    return services().settings


def jobs() -> Jobs:
    """Where the app queues the worker's tasks."""
    return cast(Jobs, current_app.extensions[JOBS])


def stream_slots() -> StreamSlots:
    return cast(StreamSlots, current_app.extensions[STREAM_SLOTS])
