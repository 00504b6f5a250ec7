"""The example ERP connector closes the cross-system id loop, end to end.

CRM sends a customer to the hub; the hub's relay publishes golden.created; the
connector creates the ERP customer in its own table and registers the ERP id
in the hub; an xref lookup of the CRM id then answers the ERP id.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import nats
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mdm.adapters.keys import KeyStore
from mdm.api.app import create_app
from mdm.settings import AuthSettings, DatabaseSettings, NatsSettings, RelaySettings, Settings
from publishers.examples.erp_connector import ErpCustomerConnector
from tests.support import KeyedClient, scratch_database, wait_for


@pytest.fixture
async def hub_db(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


@pytest.fixture
async def erp_engine(server_database_url: str) -> AsyncIterator[AsyncEngine]:
    async with scratch_database(server_database_url, migrate=False) as url:
        engine = create_async_engine(url)
        yield engine
        await engine.dispose()


async def _erp_rows(engine: AsyncEngine) -> list[tuple[str, str, str, int, bool]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT erp_id, golden_id, name, hub_version, registered "
                "FROM erp_customer ORDER BY erp_id"
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_the_erp_connector_registers_its_id_and_the_crm_lookup_answers_it(
    hub_db: str, erp_engine: AsyncEngine, nats_url: str
) -> None:
    token = secrets.token_hex(4)
    relay = RelaySettings(
        stream=f"MDMERP_{token}",
        subject_prefix=f"mdmerp{token}",
        stream_max_age=3600,
        duplicate_window=120,
        poll_interval=0.2,
    )
    admin = "mdm_connector-test-admin"
    settings = Settings(
        database=DatabaseSettings(url=hub_db),
        nats=NatsSettings(url=nats_url),
        relay=relay,
        auth=AuthSettings(admin_key=admin, read_rate=0, write_rate=0),
    )
    engine = create_async_engine(hub_db)
    async with engine.begin() as conn:  # the connector writes with an erp key, as in production
        _, erp_key = await KeyStore(conn).create("source", "erp connector", "erp")
    await engine.dispose()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        app = create_app(settings)
        # One client runs the app's lifespan; the erp one shares it.
        async with AsyncTestClient(app=app) as hub:
            hub.headers["X-API-Key"] = admin
            erp_hub = KeyedClient(hub, {"X-API-Key": erp_key})
            crm = await hub.put(
                "/v1/sources/crm/customer/ACC-1001",
                json={"attributes": {"name": "Acme Consulting GmbH", "tax_country": "DE"}},
            )
            assert crm.status_code == 200
            golden_id = crm.json()["golden_id"]
            # A customer the ERP sent itself keeps the ERP's own id.
            own = await hub.put(
                "/v1/sources/erp/customer/C-77", json={"attributes": {"name": "Globex"}}
            )
            assert own.status_code == 200
            await wait_for(lambda: _stream_has(js, relay.stream), timeout=10)

            connector = ErpCustomerConnector(
                erp_engine,
                js,
                erp_hub,  # type: ignore[arg-type]
                stream=relay.stream,
                subject_prefix=relay.subject_prefix,
                durable="erp-customers",
                fetch_timeout=0.2,
            )
            await connector.setup()  # (run() does it too; the checks below read its table)
            task = asyncio.create_task(connector.run())
            try:

                async def loop_closed() -> bool:
                    view = (await hub.get("/v1/xref/customer/crm/ACC-1001")).json()
                    rows = await _erp_rows(erp_engine)
                    return any(x["source"] == "erp" for x in view["xrefs"]) and (
                        len(rows) == 2 and all(r[4] for r in rows)  # both registered
                    )

                await wait_for(loop_closed, timeout=15)
                view = (await hub.get("/v1/xref/customer/crm/ACC-1001")).json()
                erp_ids = [x["source_id"] for x in view["xrefs"] if x["source"] == "erp"]
                rows = await _erp_rows(erp_engine)
                assert erp_ids == ["C-00001"]
                assert ("C-00001", golden_id, "Acme Consulting GmbH", 1, True) in rows
                assert any(r[0] == "C-77" and r[4] for r in rows)  # mirrored, not renumbered
                assert len(rows) == 2

                # A later CRM change updates the same ERP customer; no second ERP id.
                renamed = await hub.put(
                    "/v1/sources/crm/customer/ACC-1001",
                    json={"attributes": {"name": "Acme Consulting SE", "tax_country": "DE"}},
                )
                assert renamed.json()["version"] == 3  # 2 was the ERP's xref.linked

                async def renamed_in_erp() -> bool:
                    return any(r[2] == "Acme Consulting SE" for r in await _erp_rows(erp_engine))

                await wait_for(renamed_in_erp, timeout=15)
                rows = await _erp_rows(erp_engine)
                assert ("C-00001", golden_id, "Acme Consulting SE", 3, True) in rows
                assert len(rows) == 2
                view = (await hub.get("/v1/xref/customer/crm/ACC-1001")).json()
                assert [x["source_id"] for x in view["xrefs"] if x["source"] == "erp"] == [
                    "C-00001"
                ]
            finally:
                connector.request_stop()
                await asyncio.wait_for(task, 10)
    finally:
        for name in (relay.stream, f"{relay.stream}_DLQ"):
            try:
                await js.delete_stream(name)
            except Exception:
                pass
        await nc.close()


async def _stream_has(js: object, stream: str) -> bool:
    try:
        info = await js.stream_info(stream)  # type: ignore[attr-defined]
    except Exception:
        return False
    return bool(info.state.messages >= 2)


def test_the_connector_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "publishers.examples.erp_connector", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--hub-url" in result.stdout
