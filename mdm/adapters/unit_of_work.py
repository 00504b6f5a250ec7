"""The unit of work on PostgreSQL: every store of mdm.domain.ports on one connection.

The composition root (mdm/bootstrap.py) opens the connection's transaction,
hands this to a use case and commits when it returns; a use case reaches every
store through it (`uow.records`, `uow.matches`, ...) and writes events only
through `uow.outbox`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mdm.adapters.history import TallyStore
from mdm.adapters.matching import MatchStore
from mdm.adapters.merges import MergeStore
from mdm.adapters.overrides import OverrideStore
from mdm.adapters.relationships import RelationshipStore
from mdm.adapters.rematch import RematchStore
from mdm.adapters.repository import Repository, copy_rows
from mdm.adapters.retry import run_again_if_aborted
from mdm.adapters.reviews import ReviewStore
from mdm.adapters.tables import outbox
from schemas.events import Event, ReviewEvent

T = TypeVar("T")

# The ids whose lookups a transaction changed (migration 0012's triggers).
_TOUCHED = text("SELECT current_setting('mdm.lookup_touched', true)")


def outbox_row(event: Event | ReviewEvent) -> dict[str, Any]:
    """An event as its outbox row. The row's golden_id is the event's ordering key:
    the golden record's id for a golden-record event, the task's (`review:ID`) for a
    review event; the relay publishes the rows of one key in version order."""
    key = event.golden_id if isinstance(event, Event) else event.ordering_key
    return {
        "event_id": event.event_id,
        "entity": event.entity,
        "golden_id": key,
        "version": event.version,
        "type": event.type,
        "subject": event.subject,
        "envelope": msgspec.to_builtins(event),
        "occurred_at": event.occurred_at,
    }


class OutboxStore:
    """The Outbox port: the one writer of outbox rows."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def append(self, events: Sequence[Event | ReviewEvent]) -> None:
        await copy_rows(self.conn, outbox, [outbox_row(e) for e in events])


class SqlUnitOfWork:
    """The stores of one transaction on `conn` (mdm.domain.ports.UnitOfWork)."""

    __slots__ = (
        "conn",
        "matches",
        "merges",
        "outbox",
        "overrides",
        "records",
        "relationships",
        "reviews",
        "runs",
        "tallies",
    )

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.records = Repository(conn)
        self.matches = MatchStore(conn)
        self.merges = MergeStore(conn)
        self.overrides = OverrideStore(conn)
        self.relationships = RelationshipStore(conn)
        self.reviews = ReviewStore(conn)
        self.runs = RematchStore(conn)
        self.outbox = OutboxStore(conn)
        self.tallies = TallyStore(conn)

    async def lock(self, names: Iterable[str]) -> None:
        await self.records.lock(names)


class SessionLock:
    """An entity's run lock, held by a database session of its own across the
    transactions of a run (pg_locks shows whether the run is alive)."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def release(self) -> None:
        """Close the session itself (not back to the pool), which ends its lock."""
        if not self.conn.closed:
            await self.conn.invalidate()
            await self.conn.close()


class SqlUnits:
    """Opens units of work on `engine` (mdm.domain.ports.Units).

    `committed` is told, after each commit, the ids whose lookups the transaction
    changed, so that this process reads its own writes (the lookup caches evict
    them; the other processes do on the commit's NOTIFY)."""

    def __init__(
        self, engine: AsyncEngine, committed: Callable[[str | None], None] | None = None
    ) -> None:
        self.engine = engine
        self.committed = committed

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlUnitOfWork]:
        """One unit of work: commits when the block succeeds, rolls back otherwise."""
        async with self.engine.begin() as conn:
            yield SqlUnitOfWork(conn)
            touched = await conn.scalar(_TOUCHED) if self.committed is not None else None
        if self.committed is not None:
            self.committed(touched)

    async def run(self, work: Callable[[SqlUnitOfWork], Awaitable[T]]) -> T:
        """`work` in one transaction, run again from its start when PostgreSQL aborted
        it to break a deadlock (mdm.adapters.retry)."""
        return await run_again_if_aborted(self.transaction, work)

    async def session_lock(self, entity: str) -> SessionLock | None:
        """The entity's re-matching run lock, or None when another session holds it."""
        conn = await self.engine.connect()
        lock = SessionLock(conn)
        try:
            if not await RematchStore(conn).try_lock(entity):
                await lock.release()
                return None
            await conn.commit()  # the session lock outlives this transaction
        except BaseException:
            await lock.release()
            raise
        return lock
