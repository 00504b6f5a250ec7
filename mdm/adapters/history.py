"""The dashboard's history: hourly values in metric_hour, small and bounded.

Who writes what:

- every ingesting unit of work inserts its records' outcome counts into
  ingest_tally (`TallyStore.ingested`): one INSERT of a few rows, never an UPDATE
  of a shared counter, so units of work in any number of processes never wait on
  each other for it;
- the sampler (`sample`, run by mdm/api/history.py in `mdm serve`) moves those rows
  into the hourly `ingested` series, samples the gauges (open review tasks per
  entity, the outbox's lag and backlog, and once an hour the data-quality exceptions
  per rule), counts the recent hours' review decisions from review_decision, and
  deletes the hours older than the retention. It runs in one transaction that only
  one process at a time may run (a transaction-level advisory try-lock): with
  several hub processes on one database, whichever samples first does it, and the
  others skip their turn.

The dashboard reads the last hours of metric_hour together with the ingest_tally
rows not yet moved, in one statement (one snapshot), so it shows the current hour's
ingestion even between two samples.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.data_quality import find_exceptions
from mdm.adapters.tables import ingest_tally
from publishers.outbox import lag

#: The second key of the sampler's advisory lock is 0; the first names the sampler.
HISTORY_LOCK_CLASS = 0x4D444D48  # "MDMH"

#: The ingestion outcomes counted, in the order the dashboard stacks them.
OUTCOMES = ("created", "linked", "review", "unchanged", "rejected")

#: Match-probability bins are one unit of match weight wide (log2 of the odds), from
#: WEIGHT_LOW to WEIGHT_HIGH (a probability of about 0.001 to 0.999999); a probability
#: beyond either end counts in the end bin.
WEIGHT_LOW, WEIGHT_HIGH = -10, 20

_HOUR = "date_trunc('hour', now(), 'UTC')"
_UPSERT = "ON CONFLICT (hour, series, entity, source, label) DO UPDATE SET value = "

_FOLD = text(
    """
    WITH moved AS (DELETE FROM ingest_tally RETURNING at, entity, source, outcome, records)
    INSERT INTO metric_hour (hour, series, entity, source, label, value)
    SELECT date_trunc('hour', at, 'UTC'), 'ingested', entity, source, outcome, sum(records)
    FROM moved GROUP BY 1, 3, 4, 5 ORDER BY 1, 3, 4, 5
    """
    + _UPSERT
    + "metric_hour.value + EXCLUDED.value"
)

_OPEN_REVIEWS = text(
    f"""
    INSERT INTO metric_hour (hour, series, entity, source, label, value)
    SELECT {_HOUR}, 'open_reviews', e.entity, '', '', count(t.id)
    FROM unnest(CAST(:entities AS text[])) AS e(entity)
    LEFT JOIN review_task t ON t.entity = e.entity AND t.status IN ('open', 'deferred')
    GROUP BY e.entity ORDER BY e.entity
    """
    + _UPSERT
    + "EXCLUDED.value"
)

# A gauge whose hour keeps the highest sample (the outbox's lag and backlog).
_PEAK = text(
    f"INSERT INTO metric_hour (hour, series, entity, source, label, value)"
    f" VALUES ({_HOUR}, :series, '', '', '', :value) "
    + _UPSERT
    + "greatest(metric_hour.value, EXCLUDED.value)"
)

# A gauge whose hour keeps the last sample (exceptions per rule).
_LAST = text(
    f"INSERT INTO metric_hour (hour, series, entity, source, label, value)"
    f" VALUES ({_HOUR}, :series, '', '', :label, :value) " + _UPSERT + "EXCLUDED.value"
)

_SAMPLED_THIS_HOUR = text(
    f"SELECT EXISTS (SELECT 1 FROM metric_hour WHERE hour = {_HOUR} AND series = :series)"
)

# The decisions that took effect (a task found superseded did not), recounted for the
# hours since `hours` before this one: a decision is counted in the hour it was made,
# whenever it committed.
_DECISIONS = text(
    f"""
    INSERT INTO metric_hour (hour, series, entity, source, label, value)
    SELECT date_trunc('hour', created_at, 'UTC'), 'decisions', entity, '', decision, count(*)
    FROM review_decision
    WHERE created_at >= {_HOUR} - make_interval(hours => :hours) AND status <> 'superseded'
    GROUP BY 1, 3, 5 ORDER BY 1, 3, 5
    """
    + _UPSERT
    + "EXCLUDED.value"
)

_PRUNE = text(f"DELETE FROM metric_hour WHERE hour < {_HOUR} - make_interval(secs => :keep)")

_SINCE = f"{_HOUR} - make_interval(hours => :hours - 1)"

_SERIES = text(
    f"""
    SELECT hour, series, entity, source, label, value FROM metric_hour
    WHERE hour >= {_SINCE} AND series <> 'decisions'
    UNION ALL
    SELECT date_trunc('hour', at, 'UTC'), 'ingested', entity, source, outcome, sum(records)
    FROM ingest_tally WHERE at >= {_SINCE} GROUP BY 1, 3, 4, 5
    """
)

_DECISIONS_PER_DAY = text(
    """
    SELECT date_trunc('day', hour, 'UTC') AS day, entity, label, sum(value) AS value
    FROM metric_hour
    WHERE series = 'decisions'
      AND hour >= date_trunc('day', now(), 'UTC') - make_interval(days => :days - 1)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """
)

# The probabilities the hub keeps: of live source records linked by the model, and of
# review tasks (not those withdrawn), binned by match weight (log2 of the odds).
_HISTOGRAM = text(
    """
    WITH kept(entity, kind, p) AS (
        SELECT entity, 'linked', link_probability FROM source_record
        WHERE deleted_at IS NULL AND link_probability IS NOT NULL
        UNION ALL
        SELECT entity, CASE WHEN status IN ('open', 'deferred') THEN 'undecided' ELSE status END,
               probability
        FROM review_task WHERE status <> 'superseded'
    ), clamped AS (
        SELECT entity, kind, least(greatest(p, 1e-15), 1 - 1e-15) AS p FROM kept
    )
    SELECT entity,
           CAST(least(greatest(floor(ln(p / (1 - p)) / ln(2)), :low), :high - 1) AS integer)
             AS weight,
           kind, count(*) AS n
    FROM clamped GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """
)


class TallyStore:
    """The Tallies port (mdm.domain.ports) on a unit of work's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def ingested(
        self, entity: str, source: str, at: dt.datetime, outcomes: Mapping[str, int]
    ) -> None:
        rows = [
            {"at": at, "entity": entity, "source": source, "outcome": o, "records": n}
            for o, n in sorted(outcomes.items())
            if n
        ]
        if rows:
            await self.conn.execute(ingest_tally.insert().values(rows))


async def sample(
    conn: AsyncConnection, entities: Sequence[str], retention: float, recount_hours: int = 1
) -> bool:
    """Take one sample into metric_hour, in the caller's transaction: fold the
    ingestion counts, sample the gauges, recount the decisions of the last
    `recount_hours` hours and this one, prune what is older than `retention`
    seconds. False (and nothing done) when another process is sampling."""
    locked = await conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:k1, 0)"), {"k1": HISTORY_LOCK_CLASS}
    )
    if not locked.scalar_one():
        return False
    await conn.execute(_FOLD)
    await conn.execute(_OPEN_REVIEWS, {"entities": list(entities)})
    pending, lag_seconds = await lag(conn)
    for series, value in (("outbox_pending", pending), ("outbox_lag_seconds", lag_seconds)):
        await conn.execute(_PEAK, {"series": series, "value": float(value)})
    # The data-quality rules read every golden record: once an hour is enough.
    if not (await conn.execute(_SAMPLED_THIS_HOUR, {"series": "exceptions"})).scalar_one():
        _, _, counts = await find_exceptions(conn, None, None, None, 1, 0)
        await conn.execute(
            _LAST,
            [{"series": "exceptions", "label": r, "value": float(n)} for r, n in counts.items()],
        )
    await conn.execute(_DECISIONS, {"hours": recount_hours})
    await conn.execute(_PRUNE, {"keep": retention})
    return True


@dataclass(frozen=True, slots=True)
class Point:
    at: dt.datetime
    series: str
    entity: str
    source: str
    label: str
    value: float


@dataclass(frozen=True, slots=True)
class Bin:
    entity: str
    weight: int  # the bin is [weight, weight + 1) in match weight
    kind: str  # linked | undecided | merged | not_a_match
    count: int


def probability_of(weight: float) -> float:
    """The match probability of a match weight (log2 of the odds)."""
    return 1.0 / (1.0 + math.pow(2.0, -weight))


class HistoryStore:
    """The dashboard's reads of its history and of the probabilities kept."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def first_hour(self, hours: int) -> dt.datetime:
        """The first hour of a window of the last `hours` (this one included)."""
        at: dt.datetime = (
            await self.conn.execute(text(f"SELECT {_SINCE}"), {"hours": hours})
        ).scalar_one()
        return at

    async def series(self, hours: int) -> list[Point]:
        """Every series' points of the last `hours` hours (this one included), the
        ingestion counts not yet folded added to their hour's."""
        points: dict[tuple[Any, ...], float] = {}
        for r in await self.conn.execute(_SERIES, {"hours": hours}):
            key = (r.hour, r.series, r.entity, r.source, r.label)
            points[key] = points.get(key, 0.0) + float(r.value)
        return [
            Point(at, series, entity, source, label, value)
            for (at, series, entity, source, label), value in sorted(points.items())
        ]

    async def decisions_per_day(self, days: int) -> list[Point]:
        """Review decisions per UTC day, entity and decision, of the last `days` days."""
        rows = await self.conn.execute(_DECISIONS_PER_DAY, {"days": days})
        return [Point(r.day, "decisions", r.entity, "", r.label, float(r.value)) for r in rows]

    async def probability_bins(self) -> list[Bin]:
        rows = await self.conn.execute(_HISTOGRAM, {"low": WEIGHT_LOW, "high": WEIGHT_HIGH})
        return [Bin(r.entity, int(r.weight), r.kind, int(r.n)) for r in rows]
