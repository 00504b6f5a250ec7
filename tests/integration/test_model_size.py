"""The live records a match model's prior follows (CachedModels): counted in the
caller's transaction the first time only, then again on a connection of their own
while the writes go on with the count in hand. At a million records the count is
a 0.3 s scan that every write queued behind the one counting would wait for."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from mdm.adapters.matching import CachedModels, MatchStore
from mdm.adapters.unit_of_work import SqlUnits
from mdm.bootstrap import load_rules, make_engine
from mdm.services.context import RequestContext
from mdm.services.ingest import ingest_records
from mdm.services.ingest.prepare import IncomingRecord
from tests.support import scratch_database


class CountingStore(MatchStore):
    """A unit of work's match index that tells how often it was asked to count."""

    counts = 0

    async def live_records(self, entity: str, received_after: object = None) -> int:
        self.counts += 1
        return await super().live_records(entity)


@pytest.fixture
async def units(server_database_url: str) -> AsyncIterator[SqlUnits]:
    async with scratch_database(server_database_url) as url:
        engine = make_engine(url)
        yield SqlUnits(engine)
        await engine.dispose()


async def add_customers(units: SqlUnits, *names: str) -> None:
    rules = load_rules()  # its own model cache: the one under test sees only its calls
    async with units.transaction() as uow:
        records = [IncomingRecord(source_id=name, attributes={"name": name}) for name in names]
        await ingest_records(uow, rules, "customer", "crm", records, RequestContext())
    await rules.models.close()


async def current(units: SqlUnits, models: CachedModels) -> CountingStore:
    async with units.engine.connect() as conn:
        store = CountingStore(conn)
        await models.current(store, "customer")
    return store


async def test_the_count_runs_beside_the_writes_once_there_is_one(units: SqlUnits) -> None:
    await add_customers(units, "Alder Ltd", "Birch plc", "Cedar GmbH")
    # Every count is stale at once (however long it took), so each call counts again.
    models = CachedModels(ttl=0.0, size_ttl=0.0, count_share=math.inf)
    try:
        first = await current(units, models)
        assert first.counts == 1  # no count in hand yet: the caller's transaction counts
        assert models.counted("customer") == 3

        await add_customers(units, "Dogwood AB", "Elm SA")
        later = await current(units, models)
        assert later.counts == 0  # stale, so counted again, but not by the caller
        assert models.counted("customer") == 3  # the caller went on with the count in hand
        for _ in range(200):
            if models.counted("customer") == 5:
                break
            await asyncio.sleep(0.02)
        assert models.counted("customer") == 5
    finally:
        await models.close()


async def test_close_stops_a_count_in_flight(units: SqlUnits) -> None:
    await add_customers(units, "Alder Ltd")
    models = CachedModels(ttl=0.0, size_ttl=0.0, count_share=math.inf)
    await current(units, models)
    await current(units, models)  # starts a count beside
    await models.close()
    assert models.counted("customer") == 1
    assert not [t for t in asyncio.all_tasks() if "_recount" in repr(t.get_coro())]
