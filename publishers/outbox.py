"""The relay's reads and writes of the outbox table.

Claiming is where per-golden-record order is decided, so it is spelled out in
SQL here rather than hidden behind a query builder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger, Integer, Text

#: The channel the outbox insert trigger (migration 0004) notifies on commit.
NOTIFY_CHANNEL = "mdm_outbox"

_COLUMNS = (
    "o.id, o.event_id::text AS event_id, o.entity, o.type, o.golden_id, o.version, "
    "o.occurred_at, o.envelope::text AS body"
)

# Heads: the lowest unpublished version of each golden record, oldest rows
# first. A row whose golden record has an earlier unpublished version is never
# a head, and SKIP LOCKED passes over heads another relay holds, so two relays
# never hold events of the same golden record and never publish out of order.
#
# Written so that the plan cannot depend on table statistics (an outbox goes
# from empty to a large backlog faster than ANALYZE runs): the window of the
# oldest unpublished ids comes from the partial index as an array, each row's
# "am I the lowest unpublished version" is a per-row index probe, and the wide
# envelope is only read for the rows that qualify. Heads beyond the window
# wait for a later round.
_CLAIM_HEADS = text(
    f"""
    SELECT {_COLUMNS}
    FROM outbox o
    WHERE o.id = ANY(ARRAY(
        SELECT w.id FROM outbox w WHERE w.published_at IS NULL ORDER BY w.id LIMIT :window
      ))
      AND o.published_at IS NULL
      AND o.version = (
        SELECT min(e.version) FROM outbox e
        WHERE e.golden_id = o.golden_id AND e.published_at IS NULL
      )
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
    """
)

# Tails: later unpublished versions of golden records whose head this relay
# holds. No other relay can claim them (their head is unpublished), so taking
# them lets a burst of changes to one record go out in one round, not one round
# per version. Published strictly after their head, in version order.
_CLAIM_TAILS = text(
    f"""
    SELECT {_COLUMNS}
    FROM outbox o
    WHERE o.id = ANY(ARRAY(
        SELECT t.id
        FROM unnest(CAST(:golden_ids AS text[]), CAST(:versions AS integer[]))
          AS h(golden_id, version)
        CROSS JOIN LATERAL (
          SELECT e.id FROM outbox e
          WHERE e.golden_id = h.golden_id AND e.version > h.version AND e.published_at IS NULL
          ORDER BY e.version
          LIMIT :limit
        ) AS t
      ))
      AND o.published_at IS NULL
    ORDER BY o.golden_id, o.version
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
    """
).bindparams(
    bindparam("golden_ids", type_=ARRAY(Text)), bindparam("versions", type_=ARRAY(Integer))
)

#: How many of the oldest unpublished rows a claim looks at, per row it may take.
WINDOW_FACTOR = 4

_MARK = text("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BigInteger))
)

_LAG = text(
    "SELECT count(*) AS pending, "
    "coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0) AS lag "
    "FROM outbox WHERE published_at IS NULL"
)

# Bounded batches keep each delete's locks and WAL small on a large backlog.
_CLEANUP = text(
    """
    WITH doomed AS (
        SELECT id FROM outbox
        WHERE published_at IS NOT NULL AND published_at < :cutoff
        ORDER BY published_at
        LIMIT :limit
    )
    DELETE FROM outbox o USING doomed WHERE o.id = doomed.id
    """
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event to publish; `body` is the envelope as JSON text, ready to send."""

    id: int
    event_id: str
    entity: str
    type: str
    golden_id: str
    version: int
    occurred_at: dt.datetime
    body: str


async def claim(conn: AsyncConnection, limit: int) -> list[OutboxRow]:
    """Lock up to `limit` publishable rows in the caller's transaction.

    Answers every golden record's rows in version order. The locks hold until
    the transaction ends, so a relay that dies releases them at once.
    """
    params = {"limit": limit, "window": limit * WINDOW_FACTOR}
    heads = [OutboxRow(*r) for r in await conn.execute(_CLAIM_HEADS, params)]
    room = limit - len(heads)
    if not heads or room <= 0:
        return heads
    tails = [
        OutboxRow(*r)
        for r in await conn.execute(
            _CLAIM_TAILS,
            {
                "golden_ids": [h.golden_id for h in heads],
                "versions": [h.version for h in heads],
                "limit": room,
            },
        )
    ]
    return _contiguous(heads, tails)


def _contiguous(heads: Sequence[OutboxRow], tails: Sequence[OutboxRow]) -> list[OutboxRow]:
    """Heads followed by the tail versions that continue each head without a gap.

    A gap means a version this relay did not lock; everything after it waits
    for a later round so that order cannot break.
    """
    last = {h.golden_id: h.version for h in heads}
    rows = list(heads)
    for row in tails:
        if last.get(row.golden_id) == row.version - 1:
            rows.append(row)
            last[row.golden_id] = row.version
        else:
            last.pop(row.golden_id, None)
    return rows


async def mark_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(_MARK, {"ids": list(ids)})


async def lag(conn: AsyncConnection) -> tuple[int, float]:
    """(unpublished rows, seconds since the oldest of them occurred).

    The hub reads it at each /metrics scrape (mdm/api/metrics.py). Read through the
    partial index of unpublished rows whatever the statistics say: with statistics
    taken while a large backlog was pending (autovacuum off, or not yet run), the
    planner chose a parallel scan of the whole outbox, which, read once a second
    with a million published rows kept, took the cores ingestion needs.
    """
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    try:
        row = (await conn.execute(_LAG)).one()
    finally:
        await conn.execute(text("SET LOCAL enable_seqscan = on"))
    return int(row.pending), float(row.lag)


async def delete_published_before(
    conn: AsyncConnection, cutoff: dt.datetime, limit: int = 10_000
) -> int:
    """Delete up to `limit` rows published before `cutoff`; answer how many went."""
    result = await conn.execute(_CLEANUP, {"cutoff": cutoff, "limit": limit})
    return int(result.rowcount or 0)


async def published_since(
    conn: AsyncConnection,
    entity: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    golden_id: str | None = None,
) -> list[OutboxRow]:
    """Published rows of `entity` that occurred in [since, until), for replay, in id order.

    Per golden record id order is version order: a version's row is written
    under the golden record's lock, after the previous version committed.
    """
    where = ["o.entity = :entity", "o.occurred_at >= :since", "o.published_at IS NOT NULL"]
    params: dict[str, object] = {"entity": entity, "since": since}
    if until is not None:
        where.append("o.occurred_at < :until")
        params["until"] = until
    if golden_id is not None:
        where.append("o.golden_id = :golden_id")
        params["golden_id"] = golden_id
    query = text(f"SELECT {_COLUMNS} FROM outbox o WHERE {' AND '.join(where)} ORDER BY o.id")
    return [OutboxRow(*r) for r in await conn.execute(query, params)]
