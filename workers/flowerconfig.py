"""Flower's configuration file (the Procfile's flower line: ``--conf=workers/flowerconfig.py``).

Flower reads its ``FLOWER_*`` variables itself (Flower 2.x ``apply_env_options``), among
them ``FLOWER_BASIC_AUTH`` (``user:password``, several separated by commas): with it set,
every page and API call asks for those credentials. This file picks where Flower listens:
on all interfaces only behind that basic auth, else on 127.0.0.1 alone (Flower can revoke
and terminate tasks). ``FLOWER_ADDRESS``, when set, is an operator's explicit choice and
wins (docker-compose sets 0.0.0.0 inside the container and publishes the port on the
host's 127.0.0.1 only).

Flower executes this file and takes each of its globals naming one of its options.
"""

import os

LISTEN_ALL = "0.0.0.0"  # noqa: S104 (only behind basic auth, or when asked for)
address = os.environ.get("FLOWER_ADDRESS") or (
    LISTEN_ALL if os.environ.get("FLOWER_BASIC_AUTH") else "127.0.0.1"
)
