"""Business metrics, and the whole text the hub answers at /metrics.

/metrics is this process's default registry (HTTP, business, garbage collector,
lookup caches), then the outbox gauges, then the relay's metrics:

- The outbox gauges, `mdm_outbox_unpublished_events` and `mdm_outbox_lag_seconds`,
  are read from the database at each scrape (publishers.outbox.lag, one query on
  the partial index of unpublished rows), so they are true whichever process
  relays: the child `mdm serve` starts, an app's inline relay, a separate
  `mdm relay`, or none at all. Left out when the database does not answer.
- The relay's counters and histogram live in the process that relays
  (publishers/metrics.py): this process's relay registry when the app runs the
  relay inline, else what the relay answers on MDM_RELAY_METRICS_SOCKET (the
  child of `mdm serve`), else nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.settings import RelaySettings
from publishers import metrics as relay_metrics
from publishers import outbox

log = logging.getLogger("mdm.metrics")

RECORDS_INGESTED = Counter(
    "mdm_records_ingested_total",
    "Source records accepted, by entity, source and outcome",
    ["entity", "source", "outcome"],
)

WRITE_GROUPS = Histogram(
    "mdm_write_group_size",
    "Single-record writes (PUT, DELETE) run in one unit of work (group commit), by entity",
    ["entity"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)

#: How long a scrape waits for the database's outbox figures.
_OUTBOX_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class OutboxGauges:
    """The outbox's backlog as read at one scrape (a prometheus_client collector)."""

    pending: int
    lag: float

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "mdm_outbox_unpublished_events",
            "Outbox events committed but not yet acknowledged by NATS",
            value=self.pending,
        )
        yield GaugeMetricFamily(
            "mdm_outbox_lag_seconds",
            "Age of the oldest unpublished outbox event (0 when none is waiting)",
            value=self.lag,
        )


async def read_outbox(engine: AsyncEngine) -> OutboxGauges | None:
    """The outbox gauges now; None when the database does not answer in time."""
    try:
        async with asyncio.timeout(_OUTBOX_TIMEOUT), engine.connect() as conn:
            pending, lag = await outbox.lag(conn)
    except Exception as exc:  # the rest of /metrics is still worth answering
        log.warning("/metrics: outbox gauges left out, the database did not answer: %r", exc)
        return None
    return OutboxGauges(pending, lag)


async def read_relay(settings: RelaySettings) -> bytes:
    """The relay's metrics as exposition text, from wherever it runs (see above)."""
    if settings.inline:
        return generate_latest(relay_metrics.REGISTRY)
    if settings.metrics_socket:
        return await relay_metrics.read(settings.metrics_socket) or b""
    return b""


async def exposition(engine: AsyncEngine, relay: RelaySettings) -> bytes:
    """The text of /metrics (Prometheus text format 0.0.4)."""
    gauges, relayed = await asyncio.gather(read_outbox(engine), read_relay(relay))
    own = generate_latest(REGISTRY)
    return own + (generate_latest(gauges) if gauges is not None else b"") + relayed
