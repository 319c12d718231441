"""Which failed Kustom calls leave it open whether the request takes effect at Kustom
(`KustomOutcomeUnknown`), against real sockets: how requests really fails, not a stand-in."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from harness.redis_server import free_port
from kustom_app.kustom import KustomClient, KustomOutcomeUnknown, KustomUnavailable
from tests.domain import kustom_client


class Listener:
    """A TCP server on 127.0.0.1 that reads each request and then does ``behaviour``."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(65536))
                if self.behaviour == "hang":
                    self.release.wait(10)
                elif self.behaviour == "html-502":
                    conn.sendall(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 5\r\nConnection: close\r\n\r\n<p/>\n"
                    )
                # "drop": close without a word

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@pytest.fixture
def listener(request) -> Iterator[Listener]:
    server = Listener(request.param)
    yield server
    server.close()


def client_for(port: int) -> KustomClient:
    return kustom_client(
        f"http://127.0.0.1:{port}", "m", "p", kustom_connect_timeout=1, kustom_read_timeout=0.3
    )


@pytest.mark.parametrize("listener", ["hang", "drop", "html-502"], indirect=True)
def test_a_request_kustom_may_have_got_without_answering_is_an_unknown_outcome(listener):
    with pytest.raises(KustomOutcomeUnknown):
        client_for(listener.port).update_order("o-1", {"order_amount": 1})
    assert listener.requests and listener.requests[0].startswith(b"POST /checkout/v3/orders/o-1")


def test_a_connection_never_made_is_a_plain_outage():
    port = free_port()  # nothing listens there
    with pytest.raises(KustomUnavailable) as raised:
        client_for(port).update_order("o-1", {"order_amount": 1})
    assert not isinstance(raised.value, KustomOutcomeUnknown)
