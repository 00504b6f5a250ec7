"""Where a subscriber remembers what it applied: seen event ids, last version per golden record.

A store hands out one unit of work per event. The subscriber asks the unit
whether the event is new, runs the handler and records the event in the same
unit, so "applied" and "remembered" commit together. With the PostgreSQL store
the handler writes its own tables on the unit's connection: a crash anywhere
before the commit leaves nothing applied, and the redelivery applies it once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import Event


class Verdict(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # this event id was applied before
    STALE = "stale"  # a later version of the golden record was applied before


class StateUnit(Protocol):
    """One event's unit of work on the subscriber's state."""

    async def verdict(self, event: Event) -> Verdict: ...

    async def remember(self, event: Event) -> None: ...


class StateStore(Protocol):
    def unit(self) -> AbstractAsyncContextManager[Any]:
        """A StateUnit whose writes commit when the block exits without an exception."""
        ...


def _verdict(seen: bool, last_version: int | None, event: Event) -> Verdict:
    if seen:
        return Verdict.DUPLICATE
    if last_version is not None and event.version <= last_version:
        return Verdict.STALE
    return Verdict.NEW


class MemoryUnit:
    def __init__(self, store: MemoryStateStore) -> None:
        self._store = store
        self._remembered: list[Event] = []

    async def verdict(self, event: Event) -> Verdict:
        store = self._store
        return _verdict(event.event_id in store.seen, store.versions.get(event.golden_id), event)

    async def remember(self, event: Event) -> None:
        self._remembered.append(event)

    def _commit(self) -> None:
        for event in self._remembered:
            self._store.add(event)


class MemoryStateStore:
    """State in this process only: enough for tests and for handlers that are idempotent
    anyway. A restart forgets it, so redeliveries after a crash are applied again."""

    def __init__(self, max_seen: int = 100_000) -> None:
        self.max_seen = max_seen
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.versions: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def add(self, event: Event) -> None:
        self.seen[event.event_id] = None
        # Oldest ids go first; the version check still stops their golden records' replays.
        while len(self.seen) > self.max_seen:
            self.seen.popitem(last=False)
        self.versions[event.golden_id] = max(event.version, self.versions.get(event.golden_id, 0))

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[MemoryUnit]:
        async with self._lock:
            unit = MemoryUnit(self)
            yield unit
            unit._commit()


_DDL = (
    """CREATE TABLE IF NOT EXISTS mdm_subscriber_seen (
        consumer text NOT NULL,
        event_id text NOT NULL,
        golden_id text NOT NULL,
        version integer NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id))""",
    """CREATE INDEX IF NOT EXISTS ix_mdm_subscriber_seen_applied_at
        ON mdm_subscriber_seen (applied_at)""",
    """CREATE TABLE IF NOT EXISTS mdm_subscriber_version (
        consumer text NOT NULL,
        golden_id text NOT NULL,
        version integer NOT NULL,
        PRIMARY KEY (consumer, golden_id))""",
)


class PostgresUnit:
    """A transaction on the subscriber's database; handlers write on `connection`."""

    def __init__(self, connection: AsyncConnection, consumer: str) -> None:
        self.connection = connection
        self.consumer = consumer

    async def verdict(self, event: Event) -> Verdict:
        conn, consumer = self.connection, self.consumer
        # Serializes workers of one consumer on one golden record until commit, so
        # two of them cannot both find the same version new.
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"mdm-subscriber:{consumer}:{event.golden_id}"},
        )
        seen = await conn.scalar(
            text("SELECT 1 FROM mdm_subscriber_seen WHERE consumer = :c AND event_id = :e"),
            {"c": consumer, "e": event.event_id},
        )
        last = await conn.scalar(
            text(
                "SELECT version FROM mdm_subscriber_version WHERE consumer = :c AND golden_id = :g"
            ),
            {"c": consumer, "g": event.golden_id},
        )
        return _verdict(seen is not None, last, event)

    async def remember(self, event: Event) -> None:
        params = {
            "c": self.consumer,
            "e": event.event_id,
            "g": event.golden_id,
            "v": event.version,
        }
        await self.connection.execute(
            text(
                "INSERT INTO mdm_subscriber_seen (consumer, event_id, golden_id, version) "
                "VALUES (:c, :e, :g, :v) ON CONFLICT DO NOTHING"
            ),
            params,
        )
        await self.connection.execute(
            text(
                "INSERT INTO mdm_subscriber_version (consumer, golden_id, version) "
                "VALUES (:c, :g, :v) ON CONFLICT (consumer, golden_id) DO UPDATE "
                "SET version = greatest(mdm_subscriber_version.version, excluded.version)"
            ),
            params,
        )


class PostgresStateStore:
    """State in two tables of the subscriber's own database, keyed by consumer name."""

    def __init__(self, engine: AsyncEngine, consumer: str) -> None:
        self.engine = engine
        self.consumer = consumer

    async def setup(self) -> None:
        """Create the state tables if missing (safe with several workers starting at once)."""
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('mdm-subscriber-ddl'))"))
            for statement in _DDL:
                await conn.execute(text(statement))

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[PostgresUnit]:
        async with self.engine.begin() as conn:
            yield PostgresUnit(conn, self.consumer)

    async def prune(self, older_than: dt.timedelta) -> int:
        """Forget event ids applied before `older_than` ago (versions are kept: they are
        what drops a late replay of an old event)."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "DELETE FROM mdm_subscriber_seen WHERE consumer = :c AND applied_at <= :cutoff"
                ),
                {"c": self.consumer, "cutoff": cutoff},
            )
        return int(result.rowcount or 0)
