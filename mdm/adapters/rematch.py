"""Reads and writes of re-matching runs (mdm/services/rematch.py): the run table, its
lock, the golden records in id order and their blocking keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.matching import MatchStore
from mdm.adapters.repository import fetch_rows
from mdm.adapters.tables import golden_record, match_model, rematch_run, source_record
from mdm.domain.sources import ENTITIES
from mdm.domain.stored import ModelInfo, Run

#: The first half of the advisory lock a run holds for its entity (the second: the
#: entity's position in ENTITIES), so pg_locks shows whether a run is alive.
_LOCK_CLASS = 0x4D444D52  # "MDMR"

# The blocking keys (and strong identifiers) of the live records of golden ids $1.
KEYS_SQL = """
SELECT s.golden_id, m.key
FROM source_record s JOIN match_key m ON m.source_record_id = s.id
WHERE s.golden_id = ANY($1::text[]) AND s.deleted_at IS NULL
"""

# Those of golden ids $1 that are active.
ACTIVE_SQL = """
SELECT golden_id FROM golden_record WHERE golden_id = ANY($1::text[]) AND status = 'active'
"""


def _lock_args(entity: str, lock_class: int | None = None) -> dict[str, int]:
    return {"k1": _LOCK_CLASS if lock_class is None else lock_class, "k2": ENTITIES.index(entity)}


class RematchStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- the run's lock: held on the runner's own connection for the whole run -------

    async def try_lock(self, entity: str) -> bool:
        """Take the entity's run lock (session-level: a killed runner's dies with it)."""
        found = await self.conn.execute(
            text("SELECT pg_try_advisory_lock(:k1, :k2)"), _lock_args(entity)
        )
        return bool(found.scalar_one())

    async def unlock(self, entity: str) -> None:
        await self.conn.execute(text("SELECT pg_advisory_unlock(:k1, :k2)"), _lock_args(entity))

    async def locked(self, entity: str, lock_class: int | None = None) -> bool:
        """Whether some session holds the entity's run lock: a run is alive (with
        `TRAINING_LOCK_CLASS`: its automatic training)."""
        found = await self.conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = CAST(:k1 AS oid) AND objid = CAST(:k2 AS oid) AND objsubid = 2"
                # Advisory locks are per database; pg_locks lists the whole server's.
                " AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database()))"
            ),
            _lock_args(entity, lock_class),
        )
        return bool(found.scalar_one())

    # -- runs ------------------------------------------------------------------------

    async def latest(self, entity: str) -> Run | None:
        rr = rematch_run.c
        row = (
            await self.conn.execute(
                select(rematch_run).where(rr.entity == entity).order_by(rr.id.desc()).limit(1)
            )
        ).first()
        return Run(**row._mapping) if row is not None else None

    async def latest_finished(self, entity: str) -> Run | None:
        rr = rematch_run.c
        row = (
            await self.conn.execute(
                select(rematch_run)
                .where(rr.entity == entity, rr.status == "finished")
                .order_by(rr.id.desc())
                .limit(1)
            )
        ).first()
        return Run(**row._mapping) if row is not None else None

    async def start(self, entity: str, model_version: int, total: int) -> Run:
        row = (
            await self.conn.execute(
                insert(rematch_run)
                .values(entity=entity, model_version=model_version, total=total)
                .returning(rematch_run)
            )
        ).one()
        return Run(**row._mapping)

    async def abandon(self, run_id: int) -> None:
        await self.conn.execute(
            update(rematch_run)
            .where(rematch_run.c.id == run_id)
            .values(status="abandoned", updated_at=func.now())
        )

    async def advance(
        self, run_id: int, cursor: str, done: int, merged: int, reviews: int, withdrawn: int = 0
    ) -> None:
        """A chunk is done (in its transaction): the cursor moves past it."""
        rr = rematch_run.c
        await self.conn.execute(
            update(rematch_run)
            .where(rr.id == run_id)
            .values(
                cursor=cursor,
                done=rr.done + done,
                merged=rr.merged + merged,
                reviews=rr.reviews + reviews,
                withdrawn=rr.withdrawn + withdrawn,
                updated_at=func.now(),
            )
        )

    async def finish(self, run_id: int) -> None:
        rr = rematch_run.c
        await self.conn.execute(
            update(rematch_run)
            .where(rr.id == run_id)
            .values(status="finished", done=rr.total, finished_at=func.now(), updated_at=func.now())
        )

    # -- what is held ----------------------------------------------------------------

    async def count_active(self, entity: str) -> int:
        gr = golden_record.c
        found = await self.conn.execute(
            select(func.count())
            .select_from(golden_record)
            .where(gr.entity == entity, gr.status == "active")
        )
        return int(found.scalar_one())

    async def next_goldens(self, entity: str, after: str | None, limit: int) -> list[str]:
        """Up to `limit` active golden ids of `entity` after `after`, in id order."""
        gr = golden_record.c
        query = select(gr.golden_id).where(gr.entity == entity, gr.status == "active")
        if after is not None:
            query = query.where(gr.golden_id > after)
        rows = await self.conn.execute(query.order_by(gr.golden_id).limit(limit))
        return [r.golden_id for r in rows]

    async def keys(self, golden_ids: Sequence[str]) -> dict[str, list[str]]:
        """The match keys of each golden record's live source records."""
        out: dict[str, set[str]] = {}
        for golden_id, key in await fetch_rows(self.conn, KEYS_SQL, list(golden_ids)):
            out.setdefault(golden_id, set()).add(key)
        return {g: sorted(keys) for g, keys in out.items()}

    async def active_among(self, golden_ids: Sequence[str]) -> set[str]:
        """Those of `golden_ids` that are active golden records."""
        rows = await fetch_rows(self.conn, ACTIVE_SQL, sorted(set(golden_ids)))
        return {r[0] for r in rows}

    # -- the status --------------------------------------------------------------------

    async def model_info(self, entity: str) -> ModelInfo | None:
        mm = match_model.c
        row = (
            await self.conn.execute(
                select(mm.version, mm.created_at, mm.trained_on)
                .where(mm.entity == entity, mm.adopted)
                .order_by(mm.version.desc())
                .limit(1)
            )
        ).first()
        return ModelInfo(row.version, row.created_at, row.trained_on) if row else None

    async def live_records(self, entity: str, received_after: dt.datetime | None = None) -> int:
        return await MatchStore(self.conn).live_records(entity, received_after)

    async def any_before(self, entity: str, at: dt.datetime) -> bool:
        """Whether a live record of `entity` was received before `at`."""
        sr = source_record.c
        query = select(
            select(sr.id)
            .where(sr.entity == entity, sr.deleted_at.is_(None), sr.received_at < at)
            .exists()
        )
        return bool((await self.conn.execute(query)).scalar_one())
