#!/usr/bin/env python3
"""The image's HEALTHCHECK: `kustom-healthcheck [web|worker|beat|flower]`, exit 0 if healthy.

Each process answers on its own port (the settings' defaults when unset):

- web: ``GET /healthz`` on ``PORT`` (8000);
- worker: ``GET /healthz`` on ``WORKER_METRICS_PORT`` (9540), 200 while it reaches its
  broker, 503 otherwise;
- beat: the same on ``WORKER_METRICS_PORT`` + 1;
- flower: ``GET /healthcheck`` on ``FLOWER_PORT`` (5555), which Flower answers without
  authentication.

With no name (the Dockerfile's HEALTHCHECK, one command for every process of the image),
the first of those ports that takes a connection tells: a container runs one process, so
only its own port is open. Nothing listening at all is unhealthy. Standard library only;
nothing of the service is imported.
"""

from __future__ import annotations

import http.client
import os
import sys

TIMEOUT_SECONDS = 3.0
PROCESSES = ("web", "worker", "beat", "flower")


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name) or ""
    return int(raw) if raw.isdigit() else default


def probe_for(process: str) -> tuple[int, str]:
    """The port and path that tell whether ``process`` is healthy."""
    metrics_port = _port("WORKER_METRICS_PORT", 9540)
    return {
        "web": (_port("PORT", 8000), "/healthz"),
        "worker": (metrics_port, "/healthz"),
        "beat": (metrics_port + 1, "/healthz"),
        "flower": (_port("FLOWER_PORT", 5555), "/healthcheck"),
    }[process]


def status_of(port: int, path: str) -> int | None:
    """The HTTP status ``GET path`` gets on this host's ``port``; None if nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except ConnectionRefusedError:
        return None
    except (OSError, http.client.HTTPException):
        return 0  # something listens, but does not answer in time or in HTTP
    finally:
        connection.close()


def check(processes: tuple[str, ...]) -> tuple[bool, str]:
    for process in processes:
        port, path = probe_for(process)
        status = status_of(port, path)
        if status is None:
            continue
        return status == 200, f"{process}: GET {path} on port {port} answered {status or 'nothing'}"
    ports = ", ".join(f"{p} ({probe_for(p)[0]})" for p in processes)
    return False, f"nothing listens for {ports}"


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1] not in PROCESSES):
        print(f"usage: kustom-healthcheck [{'|'.join(PROCESSES)}]", file=sys.stderr)
        return 2
    healthy, said = check(tuple(argv[1:]) or PROCESSES)
    print(said)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
