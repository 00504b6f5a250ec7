"""Reads and writes of merges, unmerges and not-a-match pairs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.repository import fetch_rows
from mdm.adapters.tables import golden_record, merge_event, not_a_match, source_record
from mdm.domain.stored import MemberRecord, MovedRecord

# The golden ids of both sides of each not-a-match decision with a side among $1
# (either column: each branch uses its index).
APART_SQL = """
SELECT a.golden_id, b.golden_id
FROM source_record a JOIN not_a_match n ON n.record_a = a.id
JOIN source_record b ON b.id = n.record_b
WHERE a.golden_id = ANY($1::text[])
UNION
SELECT a.golden_id, b.golden_id
FROM source_record b JOIN not_a_match n ON n.record_b = b.id
JOIN source_record a ON a.id = n.record_a
WHERE b.golden_id = ANY($1::text[])
"""


class MergeStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def move_all(self, from_goldens: Sequence[str], to_golden: str) -> list[MovedRecord]:
        """Move every source record (deleted ones too) of `from_goldens` to `to_golden`."""
        rows = await self.conn.execute(
            text(
                "WITH moving AS ("
                "  SELECT id, golden_id AS from_golden FROM source_record"
                "  WHERE golden_id = ANY(:losers) FOR UPDATE) "
                "UPDATE source_record s SET golden_id = :survivor FROM moving "
                "WHERE s.id = moving.id "
                "RETURNING s.id, s.source, s.source_id, moving.from_golden, "
                "s.deleted_at IS NOT NULL AS deleted"
            ),
            {"losers": list(from_goldens), "survivor": to_golden},
        )
        return sorted((MovedRecord(*r) for r in rows), key=lambda m: m.record_id)

    async def repoint_redirects(self, from_goldens: Sequence[str], to_golden: str) -> None:
        """Records merged into a loser earlier now redirect to the survivor in one hop."""
        gr = golden_record.c
        await self.conn.execute(
            update(golden_record)
            .where(gr.merged_into.in_(list(from_goldens)))
            .values(merged_into=to_golden)
        )

    async def members(self, golden_id: str) -> list[MemberRecord]:
        sr = source_record.c
        rows = await self.conn.execute(
            select(sr.id, sr.source, sr.source_id, sr.deleted_at.is_not(None))
            .where(sr.golden_id == golden_id)
            .order_by(sr.id)
        )
        return [MemberRecord(*r) for r in rows]

    async def move(self, record_ids: Sequence[int], to_golden: str) -> None:
        sr = source_record.c
        await self.conn.execute(
            update(source_record).where(sr.id.in_(list(record_ids))).values(golden_id=to_golden)
        )

    async def record_merge(
        self,
        entity: str,
        survivor: str,
        losers: Sequence[str],
        moved: Sequence[MovedRecord],
        actor: str,
        reason: str | None,
        at: dt.datetime,
    ) -> int:
        result = await self.conn.execute(
            insert(merge_event).returning(merge_event.c.id),
            {
                "entity": entity,
                "survivor_id": survivor,
                "loser_ids": list(losers),
                "moved": [{"record_id": m.record_id, "from": m.from_golden} for m in moved],
                "actor": actor,
                "reason": reason,
                "created_at": at,
            },
        )
        return int(result.scalar_one())

    async def origins(self, golden_id: str, record_ids: Iterable[int]) -> dict[int, str]:
        """Where each record was before the latest merge that brought it into `golden_id`."""
        wanted = set(record_ids)
        rows = await self.conn.execute(
            select(merge_event.c.moved)
            .where(merge_event.c.survivor_id == golden_id)
            .order_by(merge_event.c.id.desc())
        )
        found: dict[int, str] = {}
        for (moved,) in rows:
            for item in moved:
                record_id = int(item["record_id"])
                if record_id in wanted and record_id not in found:
                    found[record_id] = item["from"]
        return found

    async def add_not_a_match(
        self, pairs: Iterable[tuple[int, int]], actor: str, reason: str | None, at: dt.datetime
    ) -> None:
        rows = [
            {
                "record_a": min(a, b),
                "record_b": max(a, b),
                "actor": actor,
                "reason": reason,
                "created_at": at,
            }
            for a, b in pairs
            if a != b
        ]
        if rows:
            await self.conn.execute(pg_insert(not_a_match).on_conflict_do_nothing(), rows)

    async def clear_not_a_match(self, left: Sequence[int], right: Sequence[int]) -> int:
        """A steward merged these records after all: forget that they were kept apart."""
        pairs = [(min(a, b), max(a, b)) for a in left for b in right if a != b]
        if not pairs:
            return 0
        nm = not_a_match.c
        result = await self.conn.execute(
            delete(not_a_match).where(tuple_(nm.record_a, nm.record_b).in_(pairs))
        )
        return int(result.rowcount or 0)

    async def not_a_match_pairs(self, record_ids: Sequence[int]) -> set[tuple[int, int]]:
        nm = not_a_match.c
        ids = list(record_ids)
        rows = await self.conn.execute(
            select(nm.record_a, nm.record_b).where(nm.record_a.in_(ids) | nm.record_b.in_(ids))
        )
        return {(a, b) for a, b in rows}

    async def apart_pairs(self, golden_ids: Sequence[str]) -> set[frozenset[str]]:
        """Every pair of golden records, one of them among `golden_ids`, that a steward
        kept apart (as `apart` answers for one pair), in one read."""
        if not golden_ids:
            return set()
        rows = await fetch_rows(self.conn, APART_SQL, sorted(set(golden_ids)))
        return {frozenset((a, b)) for a, b in rows if a != b}

    async def apart(self, golden_a: str, golden_b: str) -> bool:
        """Whether a steward said some record of one is not a match of some record of the other."""
        row = await self.conn.execute(
            text(
                "SELECT 1 FROM not_a_match n "
                "JOIN source_record a ON a.id = n.record_a "
                "JOIN source_record b ON b.id = n.record_b "
                "WHERE (a.golden_id = :x AND b.golden_id = :y) "
                "   OR (a.golden_id = :y AND b.golden_id = :x) LIMIT 1"
            ),
            {"x": golden_a, "y": golden_b},
        )
        return row.first() is not None
