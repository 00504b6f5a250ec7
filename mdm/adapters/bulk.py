"""Bulk load: a source's whole file of one entity, through the ingestion use case.

`mdm load --source S --entity E FILE` reads NDJSON (one batch item a line:
{source_id, attributes, source_updated_at?}), CSV or Parquet (one record a row,
nested attributes as dotted columns: address.city, cost_rate.amount; the readers
are mdm/adapters/bulk_files.py), and feeds it to the ingestion use case in
chunks, one transaction a chunk. This module is the orchestration: preparation
in worker processes, a chunk planned while the one before is written, the
planner's statistics kept fresh.

What differs from posting the same chunks to POST .../batch one after another is
only where the candidates come from: `MemoryIndex` (mdm/adapters/bulk_index.py)
keeps the blocking index of the entity in memory (primed from PostgreSQL at the
start, then grown with every committed chunk) and answers exactly what the
database's index would (the same cap of live records per key, generic keys
skipped, merged golden ids followed), so a load does not look up ~20 keys a
record in a table that grows with it.

Resumable: a record already stored with the same content is skipped before any
work (its content hash is compared), so a load killed half-way is simply run
again; a chunk is all or nothing.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import gc
import json
import multiprocessing
import time
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from mdm.adapters.bulk_files import Row
from mdm.adapters.bulk_index import MemoryIndex
from mdm.adapters.matching import MatchStore
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.domain.errors import FieldProblem
from mdm.domain.mastering import ActiveModel, MasteringRules
from mdm.services.context import RequestContext
from mdm.services.ingest.apply import apply_plan
from mdm.services.ingest.plan import Accepted, Plan, plan_records
from mdm.services.ingest.prepare import (
    IncomingRecord,
    PreparedRecord,
    Rejected,
    content_hash,
    decode_item,
    prepare_records,
)
from mdm.services.matcher import Features as MatchFeatures

DEFAULT_CHUNK = 1000
#: Refresh the planner's statistics after this many records, or a fifth of the table.
ANALYZE_EVERY = 20_000


# -- reading files -------------------------------------------------------------------


def _decode(entity: str, row: Row) -> IncomingRecord | Rejected:
    if row.item is None:
        return Rejected([FieldProblem("$", row.error or "unreadable")])
    # CSV cells are text: "42.5" is taken for 42.5 where the schema asks for a number.
    found = decode_item(entity, 0, row.item, strict=row.typed)
    if isinstance(found, Rejected):  # "$[0].attributes.x" -> "$.attributes.x"
        return Rejected([FieldProblem("$" + p.path[4:], p.message) for p in found.errors])
    return found


# -- the load -------------------------------------------------------------------------


@dataclass
class LoadReport:
    read: int = 0
    skipped: int = 0  # already stored with the same content
    rejected: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    primed: int = 0  # records already stored, read into the in-memory index first
    primed_seconds: float = 0.0

    @property
    def written(self) -> int:
        return sum(self.outcomes.values())


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- preparing chunks in another process ------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(entity: str, active: ActiveModel) -> None:
    _worker["entity"], _worker["active"] = entity, active


def _prepare_rows(rows: list[Row]) -> bytes:
    """In the preparing process: `_prepare_here` with the model's features, packed.

    The results go back as MessagePack (`_unpack`), a quarter of pickle's cost
    for these nested dicts, which the loading process pays per record.
    """
    out: list[Any] = []
    for _, found, p in _prepare_here(_worker["entity"], rows, _worker["active"]):
        if isinstance(found, Rejected):
            out.append((0, [(e.path, e.message) for e in found.errors]))
            continue
        record = (
            found.source_id,
            found.attributes,
            found.source_updated_at.isoformat() if found.source_updated_at else None,
        )
        if isinstance(p, Rejected):
            out.append((1, [(e.path, e.message) for e in p.errors], *record))
            continue
        assert p.features is not None
        out.append(
            (
                2,
                p.values,
                p.warnings,
                p.keys,
                p.content_hash,
                p.features.prepared,
                p.features.blocking,
                p.model_version,
                *record,
            )
        )
    return _packer.encode(out)


_packer = msgspec.msgpack.Encoder()


def _unpack(rows: list[Row], packed: bytes) -> list[tuple[Row, IncomingRecord | Rejected, Any]]:
    out: list[tuple[Row, IncomingRecord | Rejected, Any]] = []
    for row, item in zip(rows, msgspec.msgpack.decode(packed), strict=True):
        kind = item[0]
        if kind == 0:
            out.append((row, Rejected([FieldProblem(p, m) for p, m in item[1]]), None))
            continue
        sid, attributes, updated = item[-3:]
        record = IncomingRecord(
            sid, attributes, dt.datetime.fromisoformat(updated) if updated else None
        )
        if kind == 1:
            out.append((row, record, Rejected([FieldProblem(p, m) for p, m in item[1]])))
            continue
        _, values, warnings, keys, digest, prepared, blocking, version = item[:8]
        out.append(
            (
                row,
                record,
                PreparedRecord(
                    0,
                    record,
                    values,
                    warnings,
                    keys,
                    digest,
                    MatchFeatures(prepared, blocking),
                    version,
                ),
            )
        )
    return out


def _prepare_here(
    entity: str, rows: list[Row], active: ActiveModel | None = None
) -> list[tuple[Row, IncomingRecord | Rejected, Any]]:
    """Decode and prepare (features too, given the model) each row: (row, record or
    its problems, prepared record or its problems)."""
    out: list[tuple[Row, IncomingRecord | Rejected, Any]] = []
    for row in rows:
        found = _decode(entity, row)
        prepared = (
            None if isinstance(found, Rejected) else prepare_records(entity, [found], active)[0]
        )
        out.append((row, found, prepared))
    return out


async def _prepared_chunks(
    entity: str, active: ActiveModel, rows: Iterable[Row], size: int, processes: int
) -> AsyncIterator[list[tuple[Row, IncomingRecord | Rejected, Any]]]:
    """Chunks of rows, decoded and prepared: by `processes` other processes, a few
    chunks ahead of the chunk being matched and written (0: in this process)."""
    if processes <= 0:
        for chunk in _chunks(rows, size):
            yield _prepare_here(entity, chunk)
        return
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(entity, active),
    ) as pool:
        ahead: collections.deque[tuple[list[Row], asyncio.Future[bytes]]] = collections.deque()
        for chunk in _chunks(rows, size):
            ahead.append((chunk, loop.run_in_executor(pool, _prepare_rows, chunk)))
            if len(ahead) > processes + 1:
                done, packed = ahead.popleft()
                yield _unpack(done, await packed)
        while ahead:
            done, packed = ahead.popleft()
            yield _unpack(done, await packed)


async def bulk_load(
    engine: AsyncEngine,
    rules: MasteringRules,
    entity: str,
    source: str,
    rows: Iterable[Row],
    chunk_size: int = DEFAULT_CHUNK,
    rejects: IO[str] | None = None,
    progress: Any = None,
    processes: int = 1,
    incoming: Collection[str] | None = None,
) -> LoadReport:
    """Load `rows` of `source` for `entity`; `progress(n)` is called with each chunk's size.

    `processes` other processes decode, standardize and prepare the match features
    of the next chunks while this one matches and writes (0: all in this one).
    `incoming`: the source ids of `rows` (`incoming_ids`). The whole load is then
    matched with the prior of the store it leaves (the records held and those of
    `incoming` not held yet), as a re-match after it would be, and a load resumed
    after a kill decides as one that was never killed; without them, with the prior
    of the store it starts from.
    """
    rules.authorize_write(source, entity)
    report = LoadReport()
    index = MemoryIndex()
    enabled = gc.isenabled()
    gc.disable()
    began = time.perf_counter()
    try:
        async with engine.begin() as conn:
            report.primed = await index.prime(conn, entity)
            report.primed_seconds = time.perf_counter() - began
            leaves = None
            if incoming is not None:
                leaves = report.primed + sum(
                    1 for i in incoming if f"{source}\x1f{i}" not in index.golden_of
                )
            active = await rules.models.current(MatchStore(conn), entity, leaves)
    except BaseException:
        if enabled:
            gc.enable()
        raise
    # The index holds tens of millions of objects for a million records: without this,
    # every full collection of the cyclic GC walks all of them, and the load slows
    # down as it grows (47% of the time at 100,000 records). Frozen objects are
    # still freed by reference counting; the index itself has no cycles. The
    # automatic collections are off too: a chunk allocates some millions of objects,
    # most freed by reference counting, and the collector's passes over the young
    # ones were an eighth of the loading process's time; `_settle` collects once a
    # chunk instead (after the priming, which leaves no cycles, only a freeze: a
    # collection would walk every object of the index once more).
    gc.freeze()
    try:
        chunks = _prepared_chunks(entity, active, rows, chunk_size, processes)
        await _load_chunks(
            engine, rules, entity, source, chunks, rejects, progress, index, report, active
        )
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
    return report


#: Chunks between two collections of the young objects (`_settle`).
SETTLE_EVERY = 8


def _settle(chunks: int) -> None:
    """After every SETTLE_EVERY-th chunk: collect the cycles the last chunks left
    (young objects only), and freeze the rest.

    A collection walks every young object alive. Right after a chunk, that is the
    next chunk's whole plan (its records, plans and golden records) besides what
    the index took in. Every eighth chunk instead
    of every one, the plans of the seven before are already freed and walked by no
    collection: at 100,000 workers the collections took 1.5 s instead of 3.8 s.
    Meanwhile the cycles wait (some thousand small objects a chunk).
    """
    if chunks % SETTLE_EVERY == 0:
        gc.collect(0)
        gc.freeze()


async def _load_chunks(
    engine: AsyncEngine,
    rules: MasteringRules,
    entity: str,
    source: str,
    chunks: AsyncIterator[list[tuple[Row, IncomingRecord | Rejected, Any]]],
    rejects: IO[str] | None,
    progress: Any,
    index: MemoryIndex,
    report: LoadReport,
    active: ActiveModel,
) -> None:
    """Plan each chunk (reads and matching) while the previous one is being written.

    A chunk is planned on its own connection and transaction while the previous
    chunk's writes and commit run on theirs: PostgreSQL writes one chunk while
    this process matches the next. The plan needs nothing of the previous chunk
    that the database does not show yet, except what it is given: its candidates
    come from the in-memory index (which holds the previous chunk's records), the
    previous chunk's strong identifiers are added to the database's, and golden
    ids it merged away are followed through the index. Where that is not enough
    (the previous chunk updated or restored records, or this chunk holds a
    record of the previous one), the chunk waits for the previous commit first.
    Its writes always start after the previous commit, with the usual locks.
    """
    writing: _Writing | None = None  # the chunk being written
    planned: _Writing | None = None  # the chunk planned while it is
    analyzed = 0  # records written when the planner's statistics were last refreshed
    analyzing: asyncio.Task[None] | None = None  # the refresh running beside the load

    async def finish(chunk: _Writing) -> None:
        """Wait for the chunk's commit, count it, refresh statistics when due.

        The refresh runs beside the next chunks instead of before them, so the
        load never stands still for one; a refresh falls due only once the one
        before has finished.
        """
        nonlocal analyzed, analyzing
        written = report.written + len(chunk.rows)
        await chunk.finish(report, rejects)
        if analyzing is not None and analyzing.done():
            done, analyzing = analyzing, None
            done.result()  # its error, if any, is the load's
        if analyzing is None and written - analyzed >= max(
            ANALYZE_EVERY, (report.primed + written) // 5
        ):
            analyzing = asyncio.create_task(_analyze(engine))
            analyzed = written

    try:
        async for chunk in chunks:
            report.read += len(chunk)
            decoded: list[tuple[Row, IncomingRecord, Any]] = []
            for row, found, prepared in chunk:
                if isinstance(found, Rejected):
                    _reject(report, rejects, row, found.errors)
                else:
                    decoded.append((row, found, prepared))
            if decoded:
                sids = {r.source_id for _, r, _ in decoded}
                if writing is not None and not writing.may_plan_beside(sids):
                    await finish(writing)
                    writing = None
                planned = await _plan_chunk(
                    engine, rules, entity, source, decoded, index, report, writing, active
                )
                index.commit(source)
                _settle(report.chunks)
                if writing is not None:
                    await finish(writing)
                planned.start(rules)
                writing, planned = planned, None
            if progress is not None:
                progress(len(chunk))
        if writing is not None:
            await finish(writing)
            writing = None
        if analyzing is not None:
            await analyzing
    except BaseException:
        index.rollback()
        for unfinished in (writing, planned):
            if unfinished is not None:
                await unfinished.abandon()
        if analyzing is not None:
            analyzing.cancel()
            await asyncio.gather(analyzing, return_exceptions=True)
        raise


async def _plan_chunk(
    engine: AsyncEngine,
    rules: MasteringRules,
    entity: str,
    source: str,
    decoded: list[tuple[Row, IncomingRecord, Any]],
    index: MemoryIndex,
    report: LoadReport,
    previous: _Writing | None,
    active: ActiveModel,
) -> _Writing:
    """Open the chunk's transaction, skip what is stored already, plan the rest."""
    conn = await engine.connect()
    try:
        await conn.begin()
        # A chunk lost in a crash is simply loaded again (resumable), so the
        # load need not wait for each commit's WAL flush.
        await conn.execute(text("SET LOCAL synchronous_commit = off"))
        uow = SqlUnitOfWork(conn)
        stored = await uow.records.source_records(
            entity, source, [r.source_id for _, r, _ in decoded]
        )
        todo = [
            (row, r, p)
            for row, r, p in decoded
            if not (
                (s := stored.get(r.source_id))
                and s.deleted_at is None
                and s.content_hash
                == (p.content_hash if isinstance(p, PreparedRecord) else content_hash(r))
            )
        ]
        report.skipped += len(decoded) - len(todo)
        for i, (_, _, p) in enumerate(todo):
            if isinstance(p, PreparedRecord):
                p.index = i
        ctx = RequestContext()
        plan = await plan_records(
            uow,
            rules,
            entity,
            source,
            [r for _, r, _ in todo],
            ctx,
            candidates=index,
            prepared_records=[p for _, _, p in todo],
            lock=False,
            owners_known=previous.strong_owners() if previous is not None else None,
            resolve=index.resolve,
            active=active,
        )
    except BaseException:
        await conn.close()
        raise
    return _Writing(
        conn, uow, ctx, plan, [row for row, _, _ in todo], {r.source_id for _, r, _ in decoded}
    )


class _Writing:
    """A planned chunk: its open transaction, and the task writing and committing it."""

    def __init__(
        self,
        conn: AsyncConnection,
        uow: SqlUnitOfWork,
        ctx: RequestContext,
        plan: Plan,
        rows: list[Row],
        source_ids: set[str],
    ) -> None:
        self.conn, self.uow, self.ctx, self.plan = conn, uow, ctx, plan
        self.rows, self.source_ids = rows, source_ids
        self.task: asyncio.Task[list[Accepted | Rejected]] | None = None

    def may_plan_beside(self, source_ids: set[str]) -> bool:
        """Whether the next chunk (these source ids) may be planned before this commits."""
        return self.plan.only_new and self.source_ids.isdisjoint(source_ids)

    def strong_owners(self) -> dict[str, set[str]]:
        owners: dict[str, set[str]] = {}
        for sid, keys in self.plan.strong_keys.items():
            golden_id = self.plan.writes[sid].golden_id
            for key in keys:
                owners.setdefault(key, set()).add(golden_id)
        return owners

    def start(self, rules: MasteringRules) -> None:
        self.task = asyncio.create_task(self._apply(rules))

    async def _apply(self, rules: MasteringRules) -> list[Accepted | Rejected]:
        results = await apply_plan(self.uow, rules, self.plan, self.ctx)
        await self.conn.commit()
        return results

    async def finish(self, report: LoadReport, rejects: IO[str] | None) -> None:
        """Wait for the commit and count the outcomes."""
        assert self.task is not None
        try:
            results = await self.task
        finally:
            await self.conn.close()
        report.chunks += 1
        for row, result in zip(self.rows, results, strict=True):
            if isinstance(result, Accepted):
                report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
            else:
                _reject(report, rejects, row, result.errors)

    async def abandon(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.task is not None:
            try:
                await self.task
            except BaseException:
                pass
        await self.conn.close()


# The columns the load's own statements filter and join on. The JSONB documents'
# statistics plan none of the load's statements, and sorting a sample of them is
# most of an ANALYZE's time; autovacuum keeps them as usual.
ANALYZED = {
    "match_key": "entity, key, source_record_id",
    "source_record": "id, entity, source, source_id, golden_id, deleted_at",
    "golden_record": "golden_id, entity, status, merged_into",
}


async def _analyze(engine: AsyncEngine) -> None:
    """Fresh planner statistics for the tables a load grows. Where autovacuum is off
    (or behind), the planner keeps believing match_key is as small as it was and turns
    the strong-key lookup into a scan of the whole table, and the load slows as it grows.

    On a connection of its own, outside the load's pool: the load keeps two of
    the pool's connections busy (one chunk planned, one written), and a refresh
    waiting for one of them would wait behind every next chunk.
    """
    own = create_async_engine(engine.url, poolclass=NullPool)
    try:
        async with own.begin() as conn:
            for table, columns in ANALYZED.items():
                await conn.execute(text(f"ANALYZE {table} ({columns})"))
    finally:
        await own.dispose()


def _reject(
    report: LoadReport, out: IO[str] | None, row: Row, problems: Sequence[FieldProblem]
) -> None:
    report.rejected += 1
    if out is not None:
        source_id = row.item.get("source_id") if isinstance(row.item, dict) else None
        out.write(
            json.dumps(
                {
                    "line": row.line,
                    "source_id": source_id,
                    "errors": [{"path": p.path, "message": p.message} for p in problems],
                }
            )
            + "\n"
        )
