"""Set-based reads and writes of the hub's tables, on one connection in a transaction.

Every method works on many rows at once so that a batch of a thousand records
costs a handful of round trips, not thousands.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import (
    Table,
    Text,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger

from mdm.adapters.tables import (
    golden_record,
    golden_record_history,
    idempotency_key,
    match_key,
    source_record,
)
from mdm.domain.golden import GoldenRecord
from mdm.domain.stored import SourceRecordWrite, StoredSourceRecord, StoredXref
from mdm.domain.survivorship import Contribution

_LOCK_SQL = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT DISTINCT unnest(:keys) AS k ORDER BY k) AS ordered"
).bindparams(bindparam("keys", type_=ARRAY(BigInteger)))


_NEXT_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('source_record', 'id')) FROM generate_series(1, :n)"
)


_json = msgspec.json.Encoder()
#: Fewer rows than this go as one INSERT: COPY costs a few more round trips
#: (asyncpg reads the columns' types first), which only many rows repay.
COPY_FROM = 50


async def copy_rows(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) with COPY, in the open transaction.

    COPY is PostgreSQL's bulk path: one stream of binary rows instead of a
    statement with thousands of parameters (SQLAlchemy renders an executemany
    INSERT as multi-row VALUES, whose parameter processing was a tenth of a bulk
    load's time). JSONB values go as JSON text (the asyncpg codec SQLAlchemy
    installs takes text); columns missing from the dicts take their defaults,
    identities included, assigned in row order.
    """
    if not rows:
        return
    if len(rows) < COPY_FROM:
        await conn.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    await copy_records(conn, table, columns, [tuple(row[c] for c in columns) for row in rows])


async def copy_records(
    conn: AsyncConnection, table: Table, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """`copy_rows` for rows given as tuples of `columns`' values (no dicts to build)."""
    if not records:
        return
    if len(records) < COPY_FROM:
        await conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in records])
        return
    jsonb = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSONB)]
    if jsonb:
        encode = _json.encode
        encoded = []
        for record in records:
            values = list(record)
            for i in jsonb:
                if values[i] is not None:
                    values[i] = encode(values[i]).decode()
            encoded.append(tuple(values))
        records = encoded
    if not conn.in_transaction():
        raise RuntimeError("copy_rows needs an open transaction")
    driver = await _driver(conn)
    statement = f"COPY {table.name} ({', '.join(columns)})"
    try:
        await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
    except _DRIVER_ERRORS as exc:
        raise _as_statement_error(statement, exc) from exc


#: What asyncpg raises when a statement fails or its connection is gone; a connection
#: killed mid-operation can also be left in a state it refuses (InternalClientError).
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions._base.InternalClientError,
    OSError,
)


async def fetch_rows(conn: AsyncConnection, statement: str, *args: Any) -> list[asyncpg.Record]:
    """A read on asyncpg's own connection under `conn` (in its transaction, if open).

    For the reads of matching, which return tens of thousands of rows a batch:
    asyncpg's records as they come (JSONB decoded by the codec SQLAlchemy installs),
    without SQLAlchemy's row processing (a batch's candidate read measured 1.6 s
    against 2.2 s through SQLAlchemy). `statement` takes $1, $2... parameters;
    asyncpg prepares and caches it. Errors are raised as SQLAlchemy raises its own
    statements' errors.
    """
    driver = await _driver(conn)
    try:
        return await driver.fetch(statement, *args)
    except _DRIVER_ERRORS as exc:
        raise _as_statement_error(statement, exc) from exc


async def _driver(conn: AsyncConnection) -> Any:
    """asyncpg's connection under `conn`, with `conn`'s transaction begun on it."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if conn.in_transaction() and not driver.is_in_transaction():  # type: ignore[union-attr]
        await conn.execute(text("SELECT 1"))  # SQLAlchemy begins it lazily
    return driver


def _as_statement_error(statement: str, exc: Exception) -> DBAPIError:
    """An asyncpg error as SQLAlchemy raises its statements' errors, so that callers
    and the API's error mapping (503 when the database is gone) treat both alike."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(statement, None, exc)
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, asyncpg.PostgresConnectionError
    ):
        return DBAPIError(statement, None, exc)
    return OperationalError(statement, None, exc)


@functools.lru_cache(maxsize=65536)
def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock id for a lock name."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- locking ----------------------------------------------------------------

    async def lock(self, names: Iterable[str]) -> None:
        """Take transaction-scoped advisory locks, in one global order (no deadlocks).

        Locking a record's strong identifiers before looking for matches is what
        keeps two concurrent near-duplicates, even in two hub processes, from
        creating two golden records.
        """
        ids = sorted({lock_id(n) for n in names})
        if ids:
            await self.conn.execute(_LOCK_SQL, {"keys": ids})

    # -- source records -----------------------------------------------------------

    async def source_records(
        self, entity: str, source: str, source_ids: Sequence[str]
    ) -> dict[str, StoredSourceRecord]:
        sr = source_record.c
        rows = await self.conn.execute(
            select(
                sr.id, sr.source_id, sr.golden_id, sr.content_hash, sr.version, sr.deleted_at
            ).where(
                sr.entity == entity,
                sr.source == source,
                sr.source_id == any_(bindparam("ids", list(source_ids), type_=ARRAY(Text))),
            )
        )
        return {r.source_id: StoredSourceRecord(*r) for r in rows}

    async def key_owners(self, entity: str, keys: Sequence[str]) -> dict[str, set[str]]:
        """The golden ids whose live source records carry each of `keys`."""
        if not keys:
            return {}
        mk, sr = match_key.c, source_record.c
        rows = await self.conn.execute(
            select(mk.key, sr.golden_id)
            .join_from(match_key, source_record, sr.id == mk.source_record_id)
            .where(
                mk.entity == entity,
                # one array parameter: a statement PostgreSQL plans once, not one
                # with thousands of parameters planned every time
                mk.key == any_(bindparam("keys", list(keys), type_=ARRAY(Text))),
                sr.deleted_at.is_(None),
            )
        )
        owners: dict[str, set[str]] = defaultdict(set)
        for key, golden_id in rows:
            owners[key].add(golden_id)
        return owners

    async def write_source_records(self, writes: Sequence[SourceRecordWrite]) -> dict[str, int]:
        """Insert new and update existing source records; answer source_id -> row id."""
        ids: dict[str, int] = {}
        fresh = [_row(w) for w in writes if w.id is None]
        if len(fresh) == 1:  # one new record (a PUT): its id comes back, no draw first
            row = fresh[0]
            ids[row["source_id"]] = (
                await self.conn.execute(insert(source_record).returning(source_record.c.id), row)
            ).scalar_one()
        elif fresh:
            # Ids drawn first (ascending, in write order, as the inserts would have
            # taken them) so that the rows can go by COPY, which returns nothing.
            drawn = await self.conn.execute(_NEXT_IDS, {"n": len(fresh)})
            for row, record_id in zip(fresh, sorted(drawn.scalars()), strict=True):
                row["id"] = record_id
                ids[row["source_id"]] = record_id
            await copy_rows(self.conn, source_record, fresh)
        known = [{"b_id": w.id, **_row(w)} for w in writes if w.id is not None]
        if known:
            sr = source_record.c
            await self.conn.execute(
                update(source_record)
                .where(sr.id == bindparam("b_id"))
                .values(
                    golden_id=bindparam("golden_id"),
                    raw=bindparam("raw"),
                    standardized=bindparam("standardized"),
                    warnings=bindparam("warnings"),
                    content_hash=bindparam("content_hash"),
                    version=bindparam("version"),
                    source_updated_at=bindparam("source_updated_at"),
                    received_at=bindparam("received_at"),
                    link_rule=bindparam("link_rule"),
                    match_features=bindparam("match_features"),
                    link_weight=func.coalesce(bindparam("link_weight"), sr.link_weight),
                    link_probability=func.coalesce(
                        bindparam("link_probability"), sr.link_probability
                    ),
                    link_model_version=func.coalesce(
                        bindparam("link_model_version"), sr.link_model_version
                    ),
                    link_explanation=func.coalesce(
                        bindparam("link_explanation", type_=JSONB), sr.link_explanation
                    ),
                    deleted_at=None,
                ),
                known,
            )
            ids.update({w.source_id: w.id for w in writes if w.id is not None})
        return ids

    async def mark_deleted(self, record_id: int, at: dt.datetime) -> None:
        sr = source_record.c
        await self.conn.execute(
            update(source_record)
            .where(sr.id == record_id)
            .values(deleted_at=at, version=sr.version + 1)
        )
        await self.conn.execute(delete(match_key).where(match_key.c.source_record_id == record_id))

    async def replace_match_keys(
        self, entity: str, keys_by_record: dict[int, list[str]], new: Collection[int] = ()
    ) -> None:
        """Set the match keys of these source records: one DELETE and one COPY.

        `new` are records inserted in this transaction, which have no keys to delete
        (ids come from a sequence and are never reused).
        """
        if not keys_by_record:
            return
        known = [record_id for record_id in keys_by_record if record_id not in new]
        if known:
            await self.conn.execute(
                delete(match_key).where(
                    match_key.c.source_record_id == any_(bindparam("ids", known, ARRAY(BigInteger)))
                )
            )
        await copy_records(
            self.conn,
            match_key,
            ("entity", "key", "source_record_id"),
            [
                (entity, key, record_id)
                for record_id, keys in keys_by_record.items()
                for key in keys
            ],
        )

    async def contributions(self, golden_ids: Sequence[str]) -> dict[str, list[Contribution]]:
        """The live source records of each golden record, as survivorship inputs."""
        if not golden_ids:  # a unit of work that only made new golden records
            return {}
        sr = source_record.c
        rows = await self.conn.execute(
            select(
                sr.golden_id,
                sr.id,
                sr.source,
                sr.source_id,
                sr.standardized,
                sr.source_updated_at,
                sr.received_at,
            )
            .where(sr.golden_id.in_(golden_ids), sr.deleted_at.is_(None))
            .order_by(sr.id)
        )
        out: dict[str, list[Contribution]] = {g: [] for g in golden_ids}
        for r in rows:
            out[r.golden_id].append(
                Contribution(
                    r.id, r.source, r.source_id, r.standardized, r.source_updated_at, r.received_at
                )
            )
        return out

    # -- golden records -----------------------------------------------------------

    async def lock_goldens(self, golden_ids: Sequence[str]) -> dict[str, GoldenRecord]:
        """Lock golden records FOR UPDATE, in id order so that lockers never deadlock."""
        if not golden_ids:
            return {}
        gr = golden_record.c
        rows = await self.conn.execute(
            select(golden_record)
            .where(gr.golden_id.in_(golden_ids))
            .order_by(gr.golden_id)
            .with_for_update()
        )
        return {r.golden_id: _golden(r) for r in rows}

    async def golden_versions(self, golden_ids: Sequence[str]) -> dict[str, int]:
        if not golden_ids:
            return {}
        gr = golden_record.c
        rows = await self.conn.execute(
            select(gr.golden_id, gr.version).where(gr.golden_id.in_(golden_ids))
        )
        return {golden_id: value for golden_id, value in rows}

    async def save_goldens(
        self,
        goldens: Sequence[GoldenRecord],
        history: Sequence[dict[str, Any]],
        at: dt.datetime,
    ) -> None:
        """Persist new golden versions with their history rows (their events go
        to the outbox through the unit of work's Outbox).

        Golden records at version 1 are new and inserted whole; the source
        records pointing at them were written earlier in this transaction (the
        foreign key is deferred to commit).
        """
        if not goldens:
            return
        fresh = [g for g in goldens if g.version == 1]
        if fresh:
            await copy_rows(
                self.conn,
                golden_record,
                [
                    {
                        "golden_id": g.golden_id,
                        "entity": g.entity,
                        "status": g.status,
                        "version": g.version,
                        "attributes": g.attributes,
                        "provenance": g.provenance,
                        "created_at": at,
                        "updated_at": at,
                    }
                    for g in fresh
                ],
            )
        known = [g for g in goldens if g.version > 1]
        if known:
            gr = golden_record.c
            await self.conn.execute(
                update(golden_record)
                .where(gr.golden_id == bindparam("b_id"))
                .values(
                    status=bindparam("status"),
                    merged_into=bindparam("merged_into"),
                    version=bindparam("version"),
                    attributes=bindparam("attributes"),
                    provenance=bindparam("provenance"),
                    updated_at=bindparam("updated_at"),
                ),
                [
                    {
                        "b_id": g.golden_id,
                        "status": g.status,
                        "merged_into": g.merged_into,
                        "version": g.version,
                        "attributes": g.attributes,
                        "provenance": g.provenance,
                        "updated_at": at,
                    }
                    for g in known
                ],
            )
        await copy_rows(self.conn, golden_record_history, history)

    # -- reads for the API ---------------------------------------------------------

    async def golden(self, golden_id: str) -> GoldenRecord | None:
        row = (
            await self.conn.execute(
                select(golden_record).where(golden_record.c.golden_id == golden_id)
            )
        ).one_or_none()
        return _golden(row) if row else None

    async def history(
        self,
        golden_id: str,
        limit: int,
        before_version: int | None = None,
        as_of: dt.datetime | None = None,
    ) -> list[Any]:
        """Versions of a golden record, newest first; `as_of` keeps those changed by then."""
        h = golden_record_history.c
        query = select(golden_record_history).where(h.golden_id == golden_id)
        if before_version is not None:
            query = query.where(h.version < before_version)
        if as_of is not None:
            query = query.where(h.changed_at <= as_of)
        rows = await self.conn.execute(query.order_by(h.version.desc()).limit(limit))
        return list(rows)

    async def xrefs(self, golden_ids: Sequence[str]) -> dict[str, list[StoredXref]]:
        """Live cross-references (source, source_id) of each golden record."""
        sr = source_record.c
        rows = await self.conn.execute(
            select(sr.golden_id, sr.source, sr.source_id, sr.received_at)
            .where(sr.golden_id.in_(golden_ids), sr.deleted_at.is_(None))
            .order_by(sr.source, sr.source_id)
        )
        out: dict[str, list[StoredXref]] = {g: [] for g in golden_ids}
        for r in rows:
            out[r.golden_id].append(StoredXref(r.source, r.source_id, r.received_at))
        return out

    async def golden_ids_for(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], str]:
        """(entity, source, source_id) -> golden id, for live source records."""
        if not keys:
            return {}
        sr = source_record.c
        rows = await self.conn.execute(
            select(sr.entity, sr.source, sr.source_id, sr.golden_id).where(
                tuple_(sr.entity, sr.source, sr.source_id).in_(list(keys)),
                sr.deleted_at.is_(None),
            )
        )
        return {(r.entity, r.source, r.source_id): r.golden_id for r in rows}

    async def goldens_status(self, golden_ids: Sequence[str]) -> dict[str, str]:
        gr = golden_record.c
        rows = await self.conn.execute(
            select(gr.golden_id, gr.status).where(gr.golden_id.in_(golden_ids))
        )
        return {golden_id: value for golden_id, value in rows}

    # -- idempotency ---------------------------------------------------------------

    async def claim_idempotency_key(
        self, scope: str, key: str, request_hash: bytes
    ) -> tuple[bytes, int | None, bytes | None] | None:
        """Claim `key`; None if it is new, else what the first request stored.

        A concurrent request with the same key blocks on the primary key until
        the first one commits or rolls back, so exactly one of them does the work.
        """
        ik = idempotency_key.c
        claimed = await self.conn.execute(
            text(
                "INSERT INTO idempotency_key (scope, key, request_hash) VALUES (:s, :k, :h) "
                "ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"s": scope, "k": key, "h": request_hash},
        )
        if claimed.first() is not None:
            return None
        row = (
            await self.conn.execute(
                select(ik.request_hash, ik.status_code, ik.response).where(
                    ik.scope == scope, ik.key == key
                )
            )
        ).one()
        return row.request_hash, row.status_code, row.response

    async def store_idempotent_response(
        self, scope: str, key: str, status_code: int, response: bytes
    ) -> None:
        ik = idempotency_key.c
        await self.conn.execute(
            update(idempotency_key)
            .where(ik.scope == scope, ik.key == key)
            .values(status_code=status_code, response=response)
        )

    async def release_idempotency_key(self, scope: str, key: str) -> None:
        ik = idempotency_key.c
        await self.conn.execute(delete(idempotency_key).where(ik.scope == scope, ik.key == key))


def _row(w: SourceRecordWrite) -> dict[str, Any]:
    return {
        "entity": w.entity,
        "source": w.source,
        "source_id": w.source_id,
        "golden_id": w.golden_id,
        "raw": w.raw,
        "standardized": w.standardized,
        "warnings": w.warnings,
        "content_hash": w.content_hash,
        "version": w.version,
        "source_updated_at": w.source_updated_at,
        "received_at": w.received_at,
        "link_rule": w.link_rule,
        "match_features": w.match_features,
        "link_weight": w.link_weight,
        "link_probability": w.link_probability,
        "link_model_version": w.link_model_version,
        "link_explanation": w.link_explanation,
    }


def _golden(r: Any) -> GoldenRecord:
    return GoldenRecord(
        golden_id=r.golden_id,
        entity=r.entity,
        status=r.status,
        version=r.version,
        attributes=r.attributes,
        provenance=r.provenance,
        created_at=r.created_at,
        updated_at=r.updated_at,
        merged_into=r.merged_into,
    )
