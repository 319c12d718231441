"""Serve any WSGI app on 127.0.0.1 from a daemon thread.

Used by tests and local tools to run in-process doubles (the Kustom double, a fake commerce
backend, ...) behind a real socket, so that other processes (a Celery worker, a browser) can
talk to them over HTTP::

    with ServerThread(create_app()) as server:
        requests.get(f"{server.url}/checkout/v3/orders/x", auth=("playground", "playground"))
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietRequestHandler(WSGIRequestHandler):
    """Does not log one line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ServerThread:
    """A threaded werkzeug server for ``app`` on ``host`` (a free port unless ``port`` given).

    ``start()`` binds the socket before returning, so ``url`` is usable immediately;
    ``stop()`` shuts the server down and closes the socket. Also a context manager.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = True,
        name: str | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._quiet = quiet
        self._name = name or f"server-thread-{type(app).__name__}"
        self._poll_interval = poll_interval
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ServerThread is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ServerThread:
        if self._server is not None:
            raise RuntimeError("ServerThread already started")
        self._server = make_server(
            self.host,
            self._requested_port,
            self.app,
            threaded=True,
            request_handler=_QuietRequestHandler if self._quiet else None,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<ServerThread {self._name} {where}>"


def serve_until_interrupted(server: BaseWSGIServer) -> int:
    """Serve in the foreground until Ctrl-C (a playground's own process); exit status 0."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
