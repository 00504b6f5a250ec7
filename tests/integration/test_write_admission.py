"""A hub process admits at most `write_concurrency` units of work at once (Hub.transaction).

Against the real PostgreSQL: a unit of work past the bound waits before it holds a
connection or a lock, and goes on as soon as one ends; with no bound (0) they all run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mdm.bootstrap import Hub
from mdm.services.context import RequestContext
from mdm.services.ingest import IncomingRecord, ingest_records
from mdm.settings import DatabaseSettings, NatsSettings, Settings
from publishers.testing import scratch_database


@pytest.fixture(scope="module")
async def admission_db(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


def _hub(url: str, nats_url: str, bound: int) -> Hub:
    return Hub.from_settings(
        Settings(
            database=DatabaseSettings(url=url, write_concurrency=bound),
            nats=NatsSettings(url=nats_url),
        )
    )


async def _started(events: list[str], name: str, hub: Hub, release: asyncio.Event) -> None:
    async with hub.transaction() as repo:
        await repo.conn.execute(text("SELECT 1"))
        events.append(f"{name} in")
        await release.wait()
    events.append(f"{name} out")


async def test_a_unit_of_work_past_the_bound_waits_without_a_connection(
    admission_db: str, nats_url: str
) -> None:
    hub = _hub(admission_db, nats_url, 2)
    try:
        events: list[str] = []
        releases = {name: asyncio.Event() for name in "abc"}
        tasks = {
            name: asyncio.create_task(_started(events, name, hub, releases[name])) for name in "abc"
        }
        for _ in range(200):  # until the first two are inside
            await asyncio.sleep(0.01)
            if len(events) == 2:
                break
        await asyncio.sleep(0.1)  # time for the third, were it admitted
        assert sorted(events) == ["a in", "b in"]
        assert hub.engine.pool.checkedout() == 2  # type: ignore[attr-defined]

        releases["a"].set()
        await tasks["a"]
        for _ in range(200):
            await asyncio.sleep(0.01)
            if "c in" in events:
                break
        assert events[2:] == ["a out", "c in"]

        releases["b"].set()
        releases["c"].set()
        await asyncio.gather(*tasks.values())
        assert hub.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await hub.engine.dispose()


async def test_no_bound_admits_every_unit_of_work(admission_db: str, nats_url: str) -> None:
    hub = _hub(admission_db, nats_url, 0)
    assert hub.writers is None
    try:
        events: list[str] = []
        release = asyncio.Event()
        tasks = [asyncio.create_task(_started(events, name, hub, release)) for name in "abcdef"]
        for _ in range(300):
            await asyncio.sleep(0.01)
            if len(events) == 6:
                break
        assert sorted(events) == [f"{n} in" for n in "abcdef"]
        release.set()
        await asyncio.gather(*tasks)
    finally:
        await hub.engine.dispose()


async def test_concurrent_ingestion_under_the_bound_masters_every_record(
    admission_db: str, nats_url: str
) -> None:
    """Thirty single-record units of work at once through a bound of 2: all commit,
    and the three records of each D-U-N-S number share one golden record (no
    deadlock, nothing lost)."""
    hub = _hub(admission_db, nats_url, 2)
    try:

        async def one(i: int) -> None:
            async with hub.transaction() as repo:
                await ingest_records(
                    repo,
                    hub.rules,
                    "customer",
                    "crm",
                    [
                        IncomingRecord(
                            source_id=f"adm-{i}",
                            attributes={
                                "name": f"Admission Co {i % 10}",
                                "duns": f"{150_000_000 + i % 10}",
                            },
                        )
                    ],
                    RequestContext(),
                )

        await asyncio.gather(*(one(i) for i in range(30)))
        async with hub.reader() as repo:
            stored = await repo.conn.scalar(
                text("SELECT count(*) FROM source_record WHERE source_id LIKE 'adm-%'")
            )
            goldens = await repo.conn.scalar(
                text(
                    "SELECT count(DISTINCT golden_id) FROM source_record "
                    "WHERE source_id LIKE 'adm-%'"
                )
            )
        assert stored == 30
        assert goldens == 10
    finally:
        await hub.engine.dispose()
