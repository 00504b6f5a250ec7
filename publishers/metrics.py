"""The relay's Prometheus metrics, and how they reach the hub's /metrics.

They live in a registry of their own, `REGISTRY`, not in prometheus_client's
default one: the process that relays is often not the one that answers
/metrics. `mdm serve` runs the relay as a child process (`mdm relay`), which
answers every connection on the Unix socket `MDM_RELAY_METRICS_SOCKET` with
this registry's exposition text (`serve`); the hub reads it at each scrape
(`read`) and adds it to its own answer. A relay running inside the app
(MDM_RELAY=inline) is read from this registry directly instead, so a family
never appears twice. While no relay answers on the socket (the child down or
restarting) /metrics answers without these families; a restarted relay's
counters start again from zero, as Prometheus' counter resets expect.

The outbox gauges (unpublished events, lag) are not here: they describe the
database, not a relay, and the hub reads them from the database at each
scrape (mdm/api/metrics.py), whichever process relays.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry()

PUBLISHED = Counter(
    "mdm_relay_published_events",
    "Outbox events published to JetStream and marked, by entity",
    ["entity"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "mdm_relay_duplicate_publishes",
    "Publishes JetStream dropped as duplicates (a re-publish after a relay failed to mark)",
    registry=REGISTRY,
)
FAILURES = Counter("mdm_relay_publish_failures", "Publishes that got no PubAck", registry=REGISTRY)
FAILED_ROUNDS = Counter(
    "mdm_relay_failed_rounds",
    "Relay rounds that failed (NATS unreachable, the stream not set up, a PostgreSQL error) "
    "and were retried after a back-off; while NATS is unreachable nothing is published, "
    "so only these count the outage",
    registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "mdm_relay_publish_seconds",
    "From sending an event to its PubAck",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CLEANED = Counter(
    "mdm_outbox_cleaned_events",
    "Published outbox rows deleted after their retention",
    registry=REGISTRY,
)

#: Ends every answer on the socket, so that a reader can tell a whole one from one
#: cut short by the relay dying as it wrote (the text format has no end marker).
_END = b"# EOF\n"


async def serve(path: str) -> asyncio.Server:
    """Answer each connection on the Unix socket `path` with `REGISTRY`'s exposition
    text, then close it. A socket file left by a relay that died is replaced."""

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(generate_latest(REGISTRY) + _END)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_unix_server(answer, path)


async def read(path: str, timeout: float = 2.0) -> bytes | None:
    """The exposition text the relay serving `path` answers; None when none answers
    (no socket, nobody listening, no whole answer within `timeout` seconds)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                text = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    return text.removesuffix(_END) if text.endswith(_END) else None
