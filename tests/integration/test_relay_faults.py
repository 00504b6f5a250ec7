"""Fault: NATS goes away while the hub keeps ingesting, then comes back.

Runs a nats-server of its own (the machine's one is shared and must not be
stopped) and the whole hub app with its relay, on a database of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.api.app import create_app
from mdm.settings import AuthSettings, DatabaseSettings, NatsSettings, RelaySettings, Settings
from schemas.events import Event
from tests.support import NatsServer, read_stream, scratch_database, wait_for

RECORDS = 10_000
UPDATES = 2_000
BATCH = 1_000


@pytest.fixture
async def own_database(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


def _batch(start: int, stop: int, revision: int) -> list[dict[str, object]]:
    return [
        {"source_id": f"ACC-{i}", "attributes": {"name": f"Customer {i} rev {revision}"}}
        for i in range(start, stop)
    ]


async def test_nats_down_while_ingesting_loses_nothing_and_keeps_order(
    own_database: str, own_nats: NatsServer
) -> None:
    settings = Settings(
        database=DatabaseSettings(url=own_database),
        nats=NatsSettings(url=own_nats.url),
        relay=RelaySettings(max_backoff=1.0),
        auth=AuthSettings(admin_key="mdm_faults-test-admin"),
    )
    engine = create_async_engine(own_database)

    async def counts() -> tuple[int, int]:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
                    )
                )
            ).one()
        return int(row[0]), int(row[1])

    async def all_published() -> bool:
        total, pending = await counts()
        return total > 0 and pending == 0

    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["X-API-Key"] = "mdm_faults-test-admin"
        first = await client.put(
            "/v1/sources/crm/customer/ACC-first", json={"attributes": {"name": "Before"}}
        )
        assert first.status_code == 200
        await wait_for(all_published)  # stream made, relay running

        own_nats.stop()
        assert (await client.get("/health")).status_code == 503  # NATS is really gone
        for start in range(0, RECORDS, BATCH):
            response = await client.post(
                "/v1/sources/crm/customer/batch", json=_batch(start, start + BATCH, 0)
            )
            assert response.status_code == 200
            assert response.json()["accepted"] == BATCH
        for start in range(0, UPDATES, BATCH):  # second versions of some golden records
            response = await client.post(
                "/v1/sources/crm/customer/batch", json=_batch(start, start + BATCH, 1)
            )
            assert response.status_code == 200
            assert response.json()["accepted"] == BATCH
        total, pending = await counts()
        assert total == 1 + RECORDS + UPDATES
        assert pending == RECORDS + UPDATES  # nothing published, nothing lost

        own_nats.start()
        await wait_for(all_published, timeout=60)
    await engine.dispose()

    client_nc = await nats.connect(own_nats.url)
    try:
        msgs = await read_stream(client_nc.jetstream(), "MDM", "mdm.>", total, timeout=60)
    finally:
        await client_nc.close()
    events = [msgspec.json.decode(m.data, type=Event) for m in msgs]
    assert len(events) == total
    assert len({e.event_id for e in events}) == total
    last: dict[str, int] = {}
    for event in events:
        assert event.version == last.get(event.golden_id, 0) + 1, event
        last[event.golden_id] = event.version
    assert sum(1 for v in last.values() if v == 2) == UPDATES
