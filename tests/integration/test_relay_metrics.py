"""The hub's /metrics with the relay as `mdm serve` runs it by default, a child process.

The outbox gauges are the database's backlog whichever process relays, and the
relay's counters are the child's, in the hub's answer; with the child gone the
hub still answers, without them. A NATS server of this test's own is frozen
(SIGSTOP: connections stay open, publishes get no PubAck) while a record waits,
then stopped.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.hub_process import HubProcess, hub_env
from tests.integration.prometheus_text import samples
from tests.support import NatsServer, scratch_database, wait_for

ADMIN_KEY = "mdm_relay-metrics-" + secrets.token_hex(8)
PUBLISHED = 'mdm_relay_published_events_total{entity="customer"}'
FAILED_ROUNDS = "mdm_relay_failed_rounds_total"


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


@pytest.fixture
def hub(own_database: str, own_nats: NatsServer) -> Iterator[HubProcess]:
    env = hub_env(
        own_database,
        own_nats.url,
        ADMIN_KEY,
        MDM_RELAY_PUBLISH_TIMEOUT="0.5",
        MDM_RELAY_MAX_BACKOFF="1",
        MDM_RELAY_POLL_INTERVAL="0.5",
    )
    assert "MDM_RELAY" not in env  # the default: a child process
    proc = HubProcess(env)
    try:
        yield proc.start()
    finally:
        proc.stop()


async def _metrics(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return samples(response.text)


async def _put(client: httpx.AsyncClient, source_id: str) -> None:
    response = await client.put(
        f"/v1/sources/crm/customer/{source_id}", json={"attributes": {"name": source_id}}
    )
    assert response.status_code == 200, response.text


async def test_metrics_show_the_outbox_and_the_relay_child(
    hub: HubProcess, own_nats: NatsServer
) -> None:
    headers = {"X-API-Key": ADMIN_KEY}
    async with httpx.AsyncClient(base_url=hub.base, headers=headers, timeout=30) as client:
        await _put(client, "ACC-1")
        await wait_for(lambda: _published_is(client, 1), timeout=30)
        assert (await _metrics(client))["mdm_outbox_unpublished_events"] == 0

        own_nats.freeze()
        try:
            await _put(client, "ACC-2")

            async def stuck() -> bool:
                m = await _metrics(client)
                return (
                    m["mdm_outbox_unpublished_events"] >= 1
                    and m["mdm_outbox_lag_seconds"] > 0
                    and m.get("mdm_relay_publish_failures_total", 0) > 0
                )

            await wait_for(stuck, timeout=30)
            assert (await _metrics(client))[PUBLISHED] == 1
        finally:
            own_nats.thaw()

        await wait_for(lambda: _published_is(client, 2), timeout=30)
        after = await _metrics(client)
        assert after["mdm_outbox_unpublished_events"] == 0
        assert after["mdm_outbox_lag_seconds"] == 0

        # NATS gone: the relay publishes nothing (so no publish fails); its rounds fail.
        failed = after.get(FAILED_ROUNDS, 0)
        own_nats.stop()
        try:
            await _put(client, "ACC-3")
            await wait_for(lambda: _failed_rounds_above(client, failed), timeout=30)
        finally:
            own_nats.start()
        await wait_for(lambda: _published_is(client, 3), timeout=30)

        os.kill(hub.relay_pid(), signal.SIGKILL)
        await _put(client, "ACC-4")
        without = await _metrics(client)  # no relay answers: the rest of /metrics does
        assert not [name for name in without if name.startswith("mdm_relay_")]
        assert without["mdm_outbox_unpublished_events"] == 1


async def _published_is(client: httpx.AsyncClient, count: float) -> bool:
    return (await _metrics(client)).get(PUBLISHED) == count


async def _failed_rounds_above(client: httpx.AsyncClient, count: float) -> bool:
    return (await _metrics(client)).get(FAILED_ROUNDS, 0) > count
