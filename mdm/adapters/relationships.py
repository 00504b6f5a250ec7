"""Reads and writes of golden-to-golden references (the golden_reference table)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.tables import golden_record, golden_reference, source_record
from mdm.domain.relationships import Reference, TargetKey
from mdm.domain.stored import PendingReference, Referrer, Related


class RelationshipStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lookup(self, keys: Iterable[TargetKey], lock: bool = False) -> dict[TargetKey, str]:
        """(entity, source, source_id) -> the golden id of that live source record.

        Merges and unmerges move source records, so the answer is the record's
        current golden id, never a merged-away one. With `lock`, the rows are
        locked FOR SHARE until commit: a merge or unmerge moving one of them
        waits for this unit of work (and then sees its references), or this one
        waits for the merge and reads where it moved the record.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        sr = source_record.c
        query = (
            select(sr.entity, sr.source, sr.source_id, sr.golden_id)
            .where(tuple_(sr.entity, sr.source, sr.source_id).in_(wanted), sr.deleted_at.is_(None))
            .order_by(sr.id)
        )
        if lock:
            query = query.with_for_update(read=True)
        rows = await self.conn.execute(query)
        return {(r.entity, r.source, r.source_id): r.golden_id for r in rows}

    async def current_ids(self, golden_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """golden id -> (entity, the id it answers as now: itself, or its merge survivor)."""
        wanted = sorted(set(golden_ids))
        if not wanted:
            return {}
        g = golden_record.c
        rows = await self.conn.execute(
            select(g.golden_id, g.entity, func.coalesce(g.merged_into, g.golden_id)).where(
                g.golden_id.in_(wanted)
            )
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def replace(
        self,
        golden_ids: Sequence[str],
        references: Mapping[str, Mapping[str, Reference]],
        at: dt.datetime,
        created: Collection[str] = (),
    ) -> None:
        """Set the references of `golden_ids` (those without an entry get none).

        `created`: those of them made in this transaction, so without stored
        references (nothing to delete: one statement less for a new record).
        """
        if not golden_ids:
            return
        gr = golden_reference.c
        stored = [g for g in golden_ids if g not in created]
        if stored:
            await self.conn.execute(delete(golden_reference).where(gr.golden_id.in_(stored)))
        rows = [
            {
                "golden_id": golden_id,
                "field": r.field,
                "target_entity": r.entity,
                "source": r.source,
                "source_id": r.source_id,
                "target_golden_id": r.golden_id,
                "updated_at": at,
            }
            for golden_id in golden_ids
            for r in references.get(golden_id, {}).values()
        ]
        if rows:
            await self.conn.execute(insert(golden_reference), rows)

    async def referrers(
        self, keys: Iterable[TargetKey], golden_ids: Iterable[str]
    ) -> list[Referrer]:
        """Active golden records whose references name one of `keys` or `golden_ids`."""
        wanted, targets = sorted(set(keys)), sorted(set(golden_ids))
        if not wanted and not targets:
            return []
        gr, g = golden_reference.c, golden_record.c
        conditions = []
        if wanted:
            conditions.append(tuple_(gr.target_entity, gr.source, gr.source_id).in_(wanted))
        if targets:
            conditions.append(gr.target_golden_id.in_(targets))
        rows = await self.conn.execute(
            select(
                g.golden_id,
                g.entity,
                gr.target_entity,
                gr.source,
                gr.source_id,
                gr.target_golden_id,
            )
            .join_from(golden_reference, golden_record, g.golden_id == gr.golden_id)
            .where(g.status == "active", or_(*conditions))
            .order_by(g.golden_id, gr.field)
        )
        return [Referrer(r[0], r[1], (r[2], r[3], r[4]), r[5]) for r in rows]

    async def in_cycles(self, field: str, golden_ids: Sequence[str]) -> list[str]:
        """Those of `golden_ids` that are their own ancestor along `field`."""
        if not golden_ids:
            return []
        rows = await self.conn.execute(
            text(
                "WITH RECURSIVE up(start, at, path) AS ("
                "  SELECT r.golden_id, r.target_golden_id, ARRAY[r.golden_id]"
                "  FROM golden_reference r"
                "  WHERE r.field = :field AND r.golden_id = ANY(:ids)"
                "    AND r.target_golden_id IS NOT NULL"
                "  UNION ALL"
                "  SELECT up.start, r.target_golden_id, up.path || up.at FROM up"
                "  JOIN golden_reference r ON r.golden_id = up.at AND r.field = :field"
                "  WHERE r.target_golden_id IS NOT NULL AND NOT (up.at = ANY(up.path))"
                ") SELECT DISTINCT start FROM up WHERE at = start ORDER BY start"
            ),
            {"field": field, "ids": list(golden_ids)},
        )
        return [r[0] for r in rows]

    async def pending(
        self, entity: str | None, limit: int, offset: int
    ) -> tuple[list[PendingReference], int]:
        """References waiting for the record they name, oldest first, and how many in all."""
        where = "r.target_golden_id IS NULL AND g.status = 'active'"
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if entity is not None:
            where += " AND r.target_entity = :entity"
            params["entity"] = entity
        rows = await self.conn.execute(
            text(
                "SELECT r.golden_id, g.entity AS referring_entity, r.field, r.target_entity, "
                "r.source, r.source_id, r.updated_at, count(*) OVER () AS total "
                "FROM golden_reference r JOIN golden_record g ON g.golden_id = r.golden_id "
                f"WHERE {where} ORDER BY r.updated_at, r.golden_id, r.field "
                "LIMIT :limit OFFSET :offset"
            ),
            params,
        )
        found = list(rows)
        total = int(found[0].total) if found else await self._count_pending(where, params)
        return [PendingReference(*r[:7]) for r in found], total

    async def _count_pending(self, where: str, params: dict[str, Any]) -> int:
        row = await self.conn.execute(
            text(
                "SELECT count(*) FROM golden_reference r "
                f"JOIN golden_record g ON g.golden_id = r.golden_id WHERE {where}"
            ),
            params,
        )
        return int(row.scalar_one())

    async def related(
        self, golden_id: str, field: str, direction: str, depth: int, limit: int = 10_000
    ) -> list[Related]:
        """Golden records reached from `golden_id` along `field`, up or down, to `depth`."""
        if direction == "up":
            step = (
                "SELECT r.target_golden_id, w.depth + 1, w.golden_id, w.path || r.target_golden_id "
                "FROM walk w JOIN golden_reference r ON r.golden_id = w.golden_id "
                "AND r.field = :field AND r.target_golden_id IS NOT NULL"
            )
            first = (
                "SELECT r.target_golden_id, 1, r.golden_id, ARRAY[r.golden_id, "
                "r.target_golden_id] FROM golden_reference r WHERE r.golden_id = :id "
                "AND r.field = :field AND r.target_golden_id IS NOT NULL"
            )
        else:
            step = (
                "SELECT r.golden_id, w.depth + 1, w.golden_id, w.path || r.golden_id "
                "FROM walk w JOIN golden_reference r ON r.target_golden_id = w.golden_id "
                "AND r.field = :field"
            )
            first = (
                "SELECT r.golden_id, 1, r.target_golden_id, ARRAY[r.target_golden_id, "
                "r.golden_id] FROM golden_reference r WHERE r.target_golden_id = :id "
                "AND r.field = :field"
            )
        # `path` guards against a loop the ingestion checks somehow missed.
        rows = await self.conn.execute(
            text(
                "WITH RECURSIVE walk(golden_id, depth, via, path) AS ("
                f"  {first} UNION ALL {step}"
                "  WHERE w.depth < :depth AND NOT (" + _next(direction) + " = ANY(w.path))"
                ") SELECT g.golden_id, g.entity, g.status, min(w.depth) AS depth, "
                "min(w.via) AS via, g.attributes FROM walk w "
                "JOIN golden_record g ON g.golden_id = w.golden_id "
                "WHERE g.status = 'active' "
                "GROUP BY g.golden_id, g.entity, g.status, g.attributes "
                "ORDER BY depth, g.golden_id LIMIT :limit"
            ),
            {"id": golden_id, "field": field, "depth": depth, "limit": limit},
        )
        return [Related(*r) for r in rows]


def _next(direction: str) -> str:
    return "r.target_golden_id" if direction == "up" else "r.golden_id"
