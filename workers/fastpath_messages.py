"""Fast path: syncKustomOrder jobs as hand-built Celery messages, queued by the render's
Lua script (``kustom_app/lua/record_render.lua``).

What it shortcuts: ``apply_async`` through kombu. A cart event needs a sync job only when
the cart's Lua script says so; queueing it through Celery afterwards is a second Redis round
trip and kombu's whole publish path in the web process. When the broker is the Redis that
holds the cart state, the web instead hands the script a message and the script ``LPUSH``es
it onto the queue in the same atomic call that marks the cart "queued": the job and the mark
exist together or not at all.

What it copies: the message ``apply_async`` would put on a Redis broker. Celery task
protocol 2 (its headers built once by Celery itself, ``app.amqp.as_task_v2``) in kombu's
Redis envelope (``delivery_info`` for the anonymous exchange, routed by queue name), with one
difference: the body is JSON text in the envelope rather than base64 (kombu reads a body
without ``body_encoding`` as it is). That lets the web leave the payload out: where it goes
in the body, the message has `JOB_PAYLOAD_MARKER`, and the script, which is sent the payload
anyway to store it, puts it there (JSON-escaped by Redis's cjson). So the payload travels
to Redis once per cart event, not twice.

Relies on: celery 5.7.0 and kombu 5.7.0 as installed (pyproject: ``celery[redis]>=5.5,<6``;
kombu is not pinned by pyproject, celery 5.7.0 requires kombu>=5.7.0): task protocol 2 and
``app.amqp.as_task_v2``, kombu's Redis message envelope and its reading of a body without
``body_encoding``; and on Redis's Lua ``cjson`` escaping the payload as Python's ``json``
reads it back (redis-server 7.0.15 here).

Guarded by: ``tests/integration/test_fastpath_messages.py``
(``test_the_scripts_message_is_the_one_celery_would_publish`` compares the script's message
with one Celery published; the others run it on a real worker), so a Celery or kombu upgrade
that changes either fails there.

Off (``KUSTOM_FAST_PATHS=off``): `workers.enqueue.CeleryJobs` builds no message, the script
asks the web to queue the job, and the web queues it with ``apply_async``.
"""

from __future__ import annotations

import json
import os

from celery import Celery
from celery.utils.nodenames import anon_nodename

from kustom_app.state import JOB_PAYLOAD_MARKER
from workers.celery_app import SYNC_QUEUE, KustomTask

# Celery's embedded options of a task without callbacks, in kombu's JSON spelling.
_EMBED = '{"callbacks": null, "errbacks": null, "chain": null, "chord": null}'
# Markers for the per-job values in the serialised envelope (none can occur elsewhere in it).
_ID, _TAG, _BODY = "@@task-id@@", "@@delivery-tag@@", "@@body@@"
_ARGSREPR, _ORIGIN = "@@argsrepr@@", "@@origin@@"


class SyncJobMessages:
    """Builds syncKustomOrder messages for the ``kustom.sync`` list of the broker.

    The envelope is serialised once, with markers where the per-job values go; a message
    is then a handful of string replacements (it is built for every cart event, queued or
    not, since only the script knows whether a job is needed).
    """

    queue = SYNC_QUEUE

    def __init__(self, task: KustomTask) -> None:
        # What Flower shows of the job's arguments, as `KustomTask.enqueue` would show them.
        self._shown_as = task.shown_as
        app = task.app
        conf = app.conf
        headers, properties, _body, _sent = app.amqp.as_task_v2(
            _ID, task.name, args=(), kwargs={},
            time_limit=task.time_limit if task.time_limit is not None else conf.task_time_limit,
            soft_time_limit=(
                task.soft_time_limit
                if task.soft_time_limit is not None
                else conf.task_soft_time_limit
            ),
            ignore_result=task.ignore_result, root_id=_ID, argsrepr=_ARGSREPR,
            kwargsrepr="{}", origin=_ORIGIN, reply_to=app.thread_oid,
        )  # fmt: skip
        properties = {
            **properties,
            "argsrepr": _ARGSREPR,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": self.queue},
            "priority": 0,
            "delivery_tag": _TAG,
        }
        template = json.dumps(
            {
                "body": _BODY,
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            }
        )
        # Cut at the markers once: a message is then one join of the pieces and the values.
        self._pieces, self._slots = _cut(template, (_BODY, _ID, _TAG, _ORIGIN, _ARGSREPR))
        self._origin_pid = -1
        self._origin = ""

    @staticmethod
    def usable_with(app: Celery, state_redis_url: str) -> bool:
        """True when the script can queue jobs: the broker is that very Redis database,
        reached through a plain Redis transport without key prefixes or priorities."""
        conf = app.conf
        options = conf.broker_transport_options or {}
        broker = conf.broker_url
        return (
            isinstance(broker, str)
            and broker == state_redis_url
            and broker.startswith(("redis://", "rediss://", "unix://"))
            and not options.get("global_keyprefix")
            and not conf.task_queue_max_priority
            and not conf.task_default_priority
        )

    def build(self, cart_id: str, payload_hash: str) -> str:
        """The job's message, with `JOB_PAYLOAD_MARKER` where the script puts the payload."""
        arguments = f"[{json.dumps(cart_id)}, {json.dumps(payload_hash)}, {JOB_PAYLOAD_MARKER}]"
        body = f"[{arguments}, {{}}, {_EMBED}]"
        if self._origin_pid != os.getpid():  # a forked web worker names itself
            self._origin_pid, self._origin = os.getpid(), json.dumps(anon_nodename())[1:-1]
        values = {
            _BODY: json.dumps(body)[1:-1],  # JSON text inside the envelope's JSON
            _ID: _uuid4_text(),
            _TAG: _uuid4_text(),
            _ORIGIN: self._origin,
            _ARGSREPR: json.dumps(self._shown_as.format(cart_id, payload_hash))[1:-1],
        }
        pieces = self._pieces
        out = [pieces[0]]
        for slot, piece in zip(self._slots, pieces[1:], strict=True):
            out.append(values[slot])
            out.append(piece)
        return "".join(out)


def _cut(template: str, markers: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``template`` split at every occurrence of the markers: the text between them, and
    which marker stood at each cut (in order)."""
    pieces: list[str] = []
    slots: list[str] = []
    rest = template
    while True:
        found = [(rest.find(m), m) for m in markers if m in rest]
        if not found:
            pieces.append(rest)
            return pieces, slots
        at, marker = min(found)
        pieces.append(rest[:at])
        slots.append(marker)
        rest = rest[at + len(marker) :]


def _uuid4_text() -> str:
    """A random (version 4, RFC 4122 variant) UUID as text, like ``str(uuid.uuid4())``
    (Celery's task ids), formatted from the hex digits directly (no `uuid.UUID` object)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# The RFC 4122 variant: the top two bits of the 17th hex digit are 10.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}

__all__ = ["SyncJobMessages"]
