"""Reads and writes of probabilistic matching: models, candidates, links, review tasks."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from matching.model import MatchModel, default_model, rounded_size
from matching.scoring import CountedFrequencies
from mdm.adapters.repository import fetch_rows
from mdm.adapters.tables import match_model, review_task, source_record
from mdm.domain.mastering import ActiveModel
from mdm.domain.ports import MatchIndex
from mdm.domain.stored import Member, StoredModel
from mdm.services.matcher import generic_key

log = logging.getLogger("mdm.models")

#: The most of its time a process spends counting an entity's live records for the
#: prior (CachedModels): the count is a scan, about 0.3 s at a million records, so
#: it is not repeated more often than every (its duration / COUNT_SHARE) seconds.
COUNT_SHARE = 0.02

# For each blocking key, at most $3 (the cap + 1) live records: a key with more
# than the cap is generic ("smith", a shared mailbox) and skipped by the caller, so
# one lookup touches at most (keys x (cap + 1)) rows whatever the number of golden
# records. $1 the keys, $2 the entity.
CANDIDATES_SQL = """
SELECT k.key, c.golden_id
FROM unnest($1::text[]) AS k(key)
CROSS JOIN LATERAL (
    SELECT s.golden_id
    FROM match_key m JOIN source_record s ON s.id = m.source_record_id
    WHERE m.entity = $2 AND m.key = k.key AND s.deleted_at IS NULL
    LIMIT $3
) AS c
"""

# The live records, with features, of the golden ids $1 (one array parameter: a
# batch of 1,000 can name up to 40,000 candidates, and a statement takes at most
# 32,767 parameters). A record registered through the xref API has no attributes and
# no features: its match_features is JSON null (not SQL NULL), hence jsonb_typeof.
MEMBERS_SQL = """
SELECT id, golden_id, source, source_id, match_features
FROM source_record
WHERE golden_id = ANY($1::text[]) AND deleted_at IS NULL
  AND jsonb_typeof(match_features) = 'object'
ORDER BY id
"""


class MatchStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- models -------------------------------------------------------------------

    async def current_version(self, entity: str) -> int | None:
        """The version in force: the newest adopted one."""
        mm = match_model.c
        return (
            await self.conn.execute(
                select(func.max(mm.version)).where(mm.entity == entity, mm.adopted)
            )
        ).scalar_one()

    async def live_records(self, entity: str, received_after: dt.datetime | None = None) -> int:
        """The live source records of `entity` (received after `received_after`, if given)."""
        sr = source_record.c
        query = (
            select(func.count())
            .select_from(source_record)
            .where(sr.entity == entity, sr.deleted_at.is_(None))
        )
        if received_after is not None:
            query = query.where(sr.received_at > received_after)
        return int((await self.conn.execute(query)).scalar_one())

    async def model(self, entity: str, version: int | None = None) -> StoredModel | None:
        mm = match_model.c
        query = select(match_model).where(mm.entity == entity)
        if version is None:
            query = query.where(mm.adopted).order_by(mm.version.desc()).limit(1)
        else:
            query = query.where(mm.version == version)
        row = (await self.conn.execute(query)).first()
        if row is None:
            return None
        return StoredModel(row.entity, row.version, row.model, row.term_frequencies)

    async def ensure_model(self, entity: str, version: int, model: dict[str, Any]) -> None:
        """Store `model` as `version` unless that version exists (a concurrent start wins)."""
        await self.conn.execute(
            pg_insert(match_model)
            .values(entity=entity, version=version, model=model)
            .on_conflict_do_nothing()
        )

    async def add_model(
        self,
        entity: str,
        model: dict[str, Any],
        term_frequencies: dict[str, Any],
        trained_on: int,
        *,
        adopted: bool = True,
        adoption: dict[str, Any] | None = None,
    ) -> int:
        """Store the next version of `entity`'s model; its version is in `model` too.

        A version not `adopted` keeps its number but is never in force; `adoption`
        is what the adoption check found (mdm/services/adoption.py)."""
        await self.conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('match_model:' || :entity))"),
            {"entity": entity},
        )
        mm = match_model.c
        newest = (
            await self.conn.execute(select(func.max(mm.version)).where(mm.entity == entity))
        ).scalar_one()
        version = (newest or 0) + 1
        model = {**model, "version": version}
        await self.conn.execute(
            insert(match_model).values(
                entity=entity,
                version=version,
                model=model,
                term_frequencies=term_frequencies,
                trained_on=trained_on,
                adopted=adopted,
                adoption=adoption,
            )
        )
        return version

    async def newest_fit(self, entity: str) -> dt.datetime | None:
        """When the newest version (adopted or not) was fitted; None when it is the
        packaged model or no version is stored."""
        mm = match_model.c
        row = (
            await self.conn.execute(
                select(mm.trained_on, mm.created_at)
                .where(mm.entity == entity)
                .order_by(mm.version.desc())
                .limit(1)
            )
        ).first()
        return row.created_at if row is not None and row.trained_on is not None else None

    async def adoption(self, entity: str, version: int) -> tuple[bool, dict[str, Any] | None]:
        """Whether `version` was adopted, and its adoption check."""
        mm = match_model.c
        row = (
            await self.conn.execute(
                select(mm.adopted, mm.adoption).where(mm.entity == entity, mm.version == version)
            )
        ).one()
        return bool(row.adopted), row.adoption

    # -- candidates ---------------------------------------------------------------

    async def candidate_owners(
        self, entity: str, keys: Sequence[str], cap: int
    ) -> tuple[dict[str, set[str]], set[str]]:
        """Per blocking key the golden ids of its live records; and the keys found generic."""
        if not keys:
            return {}, set()
        rows = await fetch_rows(self.conn, CANDIDATES_SQL, sorted(set(keys)), entity, cap + 1)
        by_key: dict[str, list[str]] = {}
        for key, golden_id in rows:
            found = by_key.get(key)
            if found is None:
                by_key[key] = [golden_id]
            else:
                found.append(golden_id)
        generic = {k for k, found in by_key.items() if generic_key(len(found), cap)}
        owners = {k: set(found) for k, found in by_key.items() if k not in generic}
        return owners, generic

    async def members(self, golden_ids: Iterable[str]) -> dict[str, list[Member]]:
        """The live source records (with features) of each golden record."""
        ids = sorted(set(golden_ids))
        if not ids:
            return {}
        out: dict[str, list[Member]] = {}
        for record_id, golden_id, source, source_id, features in await fetch_rows(
            self.conn, MEMBERS_SQL, ids
        ):
            member = Member(record_id, golden_id, source, source_id, features)
            found = out.get(golden_id)
            if found is None:
                out[golden_id] = [member]
            else:
                found.append(member)
        return out

    async def sample_features(self, entity: str, limit: int, seed: float) -> list[dict[str, Any]]:
        """Prepared features of up to `limit` live records, a repeatable random sample.

        Drawn and ordered by a hash of each record's key and `seed`: the same held
        records give the same sample in the same order (and so the same trained
        model), wherever merges and updates have moved their rows in the table.
        """
        return [m.features for m in await self.sample_members(entity, limit, seed)]

    async def sample_members(self, entity: str, limit: int, seed: float) -> list[Member]:
        """`sample_features`'s sample, each record with its id and golden record."""
        sr = source_record.c
        draw = func.md5(f"{seed!r}/" + sr.source + "/" + sr.source_id)
        rows = await self.conn.execute(
            select(sr.id, sr.golden_id, sr.source, sr.source_id, sr.match_features)
            .where(
                sr.entity == entity,
                sr.deleted_at.is_(None),
                func.jsonb_typeof(sr.match_features) == "object",  # see MEMBERS_SQL
            )
            .order_by(draw, sr.source, sr.source_id)
            .limit(limit)
        )
        return [Member(r.id, r.golden_id, r.source, r.source_id, r.match_features) for r in rows]

    # -- links and reviews ---------------------------------------------------------

    async def links(self, golden_id: str) -> list[dict[str, Any]]:
        sr = source_record.c
        rows = await self.conn.execute(
            select(
                sr.source,
                sr.source_id,
                sr.link_rule,
                sr.link_weight,
                sr.link_probability,
                sr.link_model_version,
                sr.link_explanation,
                sr.received_at,
            )
            .where(sr.golden_id == golden_id, sr.deleted_at.is_(None))
            .order_by(sr.id)
        )
        return [dict(r._mapping) for r in rows]

    async def add_review_tasks(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Store review tasks; their ids, in the order of `rows`."""
        if not rows:
            return []
        result = await self.conn.execute(
            insert(review_task).returning(review_task.c.id, sort_by_parameter_order=True),
            list(rows),
        )
        return [int(i) for i in result.scalars()]


class CachedModels:
    """The MatchModels port over the match_model table, cached per process.

    The version in force is checked again after `ttl` seconds, so a model that
    `mdm train` stored in another process is used within that time. An entity
    with no stored model gets the packaged default stored as its first version.

    A model that follows the store (`MatchModel.matches_per_record`) is handed out
    with the prior for the live records of its entity (`MatchModel.at_size`); or for
    the `records` a caller names (a bulk load: the records held once its file is in).

    The live records are counted in the caller's transaction the first time only.
    After `size_ttl` seconds (longer where the count is slow: `count_share`) they are
    counted again on a connection of their own while the callers go on with the
    count they have: at a million records the count is a 0.3 s scan, which a write
    would otherwise wait for, with every write queued behind it. The prior moves by
    steps of 9 % of the store (`rounded_size`), so a count a few seconds old gives
    the same model.
    """

    def __init__(
        self, ttl: float = 5.0, size_ttl: float = 5.0, count_share: float = COUNT_SHARE
    ) -> None:
        self.ttl = ttl
        self.size_ttl = size_ttl
        self.count_share = count_share
        self._by_entity: dict[str, tuple[float, ActiveModel]] = {}
        self._by_version: dict[tuple[str, int], ActiveModel] = {}
        self._sized: dict[tuple[str, int, int], ActiveModel] = {}
        #: entity -> (when to count again, live records)
        self._sizes: dict[str, tuple[float, int]] = {}
        self._counting: dict[str, asyncio.Task[None]] = {}

    def forget(self) -> None:
        self._by_entity.clear()
        self._by_version.clear()
        self._sized.clear()
        self._sizes.clear()

    async def current(
        self, index: MatchIndex, entity: str, records: int | None = None
    ) -> ActiveModel:
        now = time.monotonic()
        cached = self._by_entity.get(entity)
        if records is None and cached is not None and cached[0] > now:
            return cached[1]
        store = index
        version = await store.current_version(entity)
        # The packaged default stored just now is not kept as the version in force:
        # the transaction storing it may still roll back (a request that fails
        # afterwards), and a later caller must then store it again, not trust a
        # version that no committed row holds.
        stored_now = version is None
        if version is None:
            default = default_model(entity)
            await store.ensure_model(entity, default.version, default.to_dict())
            version = default.version
        active = self._by_version.get((entity, version))
        if active is None:
            stored = await store.model(entity, version)
            assert stored is not None  # versions are never deleted
            counts = stored.term_frequencies
            active = ActiveModel(
                MatchModel.validated(stored.model), CountedFrequencies(counts) if counts else None
            )
            self._by_version[(entity, version)] = active
        if active.model.matches_per_record is not None:
            if records is None:
                records = await self._size(store, entity, now)
            active = self._at_size(entity, version, active, records)
        if not stored_now and (records is None or active.model.matches_per_record is None):
            self._by_entity[entity] = (now + self.ttl, active)
        return active

    def counted(self, entity: str) -> int | None:
        """The live records of `entity` as last counted (None before the first count)."""
        known = self._sizes.get(entity)
        return None if known is None else known[1]

    async def close(self) -> None:
        """Stop the counts running beside the writes (before the engine goes)."""
        loop = asyncio.get_running_loop()
        counting = [t for t in self._counting.values() if t.get_loop() is loop]
        for task in counting:
            task.cancel()
        await asyncio.gather(*counting, return_exceptions=True)
        self._counting.clear()  # a count of another loop (gone) is forgotten

    async def _size(self, store: MatchIndex, entity: str, now: float) -> int:
        known = self._sizes.get(entity)
        if known is not None and known[0] > now:
            return known[1]
        if known is not None and isinstance(store, MatchStore):
            running = self._counting.get(entity)
            if running is None or running.get_loop() is not asyncio.get_running_loop():
                task = asyncio.create_task(self._recount(store.conn.engine, entity))
                self._counting[entity] = task
            return known[1]
        began = time.monotonic()
        records = await store.live_records(entity)
        self._counted(entity, records, time.monotonic() - began)
        return records

    async def _recount(self, engine: AsyncEngine, entity: str) -> None:
        try:
            began = time.monotonic()
            async with engine.connect() as conn:
                records = await MatchStore(conn).live_records(entity)
            self._counted(entity, records, time.monotonic() - began)
        except Exception:  # the count in hand stays; the next write past size_ttl retries
            log.warning("counting the live %s records failed", entity, exc_info=True)
            known = self._sizes.get(entity)
            if known is not None:
                self._sizes[entity] = (time.monotonic() + self.size_ttl, known[1])
        finally:
            if self._counting.get(entity) is asyncio.current_task():
                del self._counting[entity]

    def _counted(self, entity: str, records: int, took: float) -> None:
        wait = max(self.size_ttl, took / self.count_share)
        self._sizes[entity] = (time.monotonic() + wait, records)

    def _at_size(self, entity: str, version: int, active: ActiveModel, records: int) -> ActiveModel:
        size = rounded_size(records)
        sized = self._sized.get((entity, version, size))
        if sized is None:
            sized = ActiveModel(active.model.at_size(size), active.frequencies)
            self._sized[(entity, version, size)] = sized
        return sized
