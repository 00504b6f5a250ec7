"""The ID lookup's cache (mdm/adapters/lookup_cache.py) on a real PostgreSQL.

Two app instances share the test database: `client` (the suite's app, which
makes the changes) and `other` (a second hub with its own cache, as a second
`mdm serve` process would have). A cached answer must be byte-identical to the
answer read from the tables the way the handler did before the cache, and
every change (a PUT, a merge, an unmerge, a delete, a revoked key) must show
in both within a bounded wait: at once in the process that made it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from litestar.serialization import encode_json
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.keys import KeyStore
from mdm.adapters.lookup_cache import asyncpg_dsn
from mdm.adapters.repository import Repository
from mdm.api.app import create_app
from mdm.api.edge import Edge
from mdm.api.fast_lookup import XrefFastPath
from mdm.api.golden import _xref_entries
from mdm.bootstrap import Hub, make_engine
from mdm.settings import Settings
from schemas.api import XrefView
from tests.support import MakeClient

WAIT = 5.0  # seconds another process may take to see a committed change


@pytest.fixture
async def other(client: AsyncTestClient, settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """A second hub on the same database, with its own caches (another process's)."""
    async with AsyncTestClient(app=create_app(settings)) as second:
        second.headers["X-API-Key"] = settings.auth.admin_key or ""
        yield second


def hub_of(client: AsyncTestClient) -> Hub:
    hub: Hub = client.app.state.hub
    return hub


async def reference(hub: Hub, database_url: str, entity: str, source: str, sid: str) -> bytes:
    """The answer as the handler made it before the cache: ORM reads, litestar's encoding."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            repo = Repository(conn)
            golden_id = (await repo.golden_ids_for([(entity, source, sid)]))[(entity, source, sid)]
            golden = await repo.golden(golden_id)
            assert golden is not None
            xrefs = (await repo.xrefs([golden_id]))[golden_id]
    finally:
        await engine.dispose()
    view = XrefView(
        entity=entity,  # type: ignore[arg-type]
        golden_id=golden_id,
        status=golden.status,  # type: ignore[arg-type]
        xrefs=_xref_entries(hub, entity, xrefs),
    )
    return encode_json(view)


async def put(client: AsyncTestClient, source: str, sid: str, attrs: dict) -> dict:
    response = await client.put(f"/v1/sources/{source}/customer/{sid}", json={"attributes": attrs})
    assert response.status_code == 200, response.text
    return response.json()


async def eventually(check: Callable[[], Awaitable[bool]], wait: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + wait
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not seen within the bounded wait"
        await asyncio.sleep(0.02)


async def lookup(client: AsyncTestClient, source: str, sid: str) -> bytes:
    response = await client.get(f"/v1/xref/customer/{source}/{sid}")
    assert response.status_code == 200, response.text
    return response.content


async def warm(client: AsyncTestClient, source: str, sid: str) -> bytes:
    """Look it up until it is cached, then once more from the cache.

    A read is not stored when an invalidation of its golden id arrived while it
    ran (the notification of the write that created it may come late): retry.
    """
    first = await lookup(client, source, sid)

    async def cached() -> bool:
        if f"customer/{source}/{sid}" in hub_of(client).lookups.answers._entries:
            return True
        assert await lookup(client, source, sid) == first
        return False

    await eventually(cached)
    assert await lookup(client, source, sid) == first
    return first


async def both_show(
    client: AsyncTestClient, other: AsyncTestClient, database_url: str, source: str, sid: str
) -> bytes:
    """The writer's process answers the new state at once; the other one within WAIT."""
    expected = await reference(hub_of(client), database_url, "customer", source, sid)
    assert await lookup(client, source, sid) == expected  # read-your-writes, no wait

    async def seen() -> bool:
        return await lookup(other, source, sid) == expected

    await eventually(seen)
    assert await lookup(other, source, sid) == expected  # and now cached there too
    return expected


async def test_cached_answer_is_byte_identical_to_the_uncached_one(
    client: AsyncTestClient, other: AsyncTestClient, database_url: str, make_client: MakeClient
) -> None:
    a = await put(client, "crm", "ACC-1", {"name": "Acme GmbH", "email": "info@acme.example"})
    await put(client, "erp", "C-77", {"name": "Acme", "email": "info@acme.example"})
    expected = await reference(hub_of(client), database_url, "customer", "crm", "ACC-1")
    assert b'"golden_id":"' + a["golden_id"].encode() in expected

    uncached = await client.get("/v1/xref/customer/crm/ACC-1")
    await warm(client, "crm", "ACC-1")
    served = fast_path(client).served
    cached = await client.get("/v1/xref/customer/crm/ACC-1")
    assert fast_path(client).served == served + 1
    assert uncached.content == cached.content == expected
    assert uncached.headers["content-type"] == cached.headers["content-type"] == "application/json"
    assert cached.headers["content-length"] == str(len(expected))
    # Through litestar's route (a query string is never answered before routing).
    routed = await client.get("/v1/xref/customer/crm/ACC-1?via=route")
    assert routed.content == expected
    assert routed.headers["content-type"] == "application/json"
    # A caller without the sensitive grant reads the same bytes (no attribute in it).
    reader = await make_client("reader")
    assert (await reader.get("/v1/xref/customer/crm/ACC-1")).content == expected
    assert await lookup(other, "crm", "ACC-1") == expected


async def test_put_merge_unmerge_delete_show_in_both_processes(
    client: AsyncTestClient, other: AsyncTestClient, database_url: str, make_client: MakeClient
) -> None:
    a = await put(client, "crm", "A", {"name": "Acme GmbH", "phone": "+49 30 1234567"})
    b = await put(client, "psa", "B", {"name": "Globex Ltd", "email": "info@globex.example"})
    for c in (client, other):
        await warm(c, "crm", "A")
        await warm(c, "psa", "B")

    # A PUT that adds a cross-reference: ERP's record links to A's golden record.
    linked = await put(client, "erp", "C", {"name": "Acme GmbH", "phone": "+49 30 1234567"})
    assert linked["golden_id"] == a["golden_id"]
    after_put = await both_show(client, other, database_url, "crm", "A")
    assert b'"source":"erp","source_id":"C"' in after_put

    # A merge moves B's records into A; B's own lookup now names A.
    await warm(other, "psa", "B")
    steward = await make_client("steward")
    merged = await steward.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [b["golden_id"]], "reason": "same"},
    )
    assert merged.status_code == 200, merged.text
    after_merge = await both_show(client, other, database_url, "psa", "B")
    assert a["golden_id"].encode() in after_merge
    assert b'"source":"psa"' in await both_show(client, other, database_url, "crm", "A")

    # An unmerge gives B's record back its own golden record.
    await warm(other, "psa", "B")
    await warm(other, "crm", "A")
    unmerged = await steward.post(
        f"/v1/golden/customer/{a['golden_id']}/unmerge",
        json={"records": [{"source": "psa", "source_id": "B"}], "reason": "not the same"},
    )
    assert unmerged.status_code == 200, unmerged.text
    after_unmerge = await both_show(client, other, database_url, "psa", "B")
    assert a["golden_id"].encode() not in after_unmerge
    assert b'"source":"psa"' not in await both_show(client, other, database_url, "crm", "A")

    # A delete: ERP's record leaves A's cross-references, and its own lookup is a 404.
    await warm(other, "crm", "A")
    await warm(other, "erp", "C")
    deleted = await client.delete("/v1/sources/erp/customer/C")
    assert deleted.status_code == 200, deleted.text
    assert b'"source":"erp"' not in await both_show(client, other, database_url, "crm", "A")
    assert (await client.get("/v1/xref/customer/erp/C")).status_code == 404

    async def gone() -> bool:
        return (await other.get("/v1/xref/customer/erp/C")).status_code == 404

    await eventually(gone)


async def test_the_writing_process_reads_its_own_writes_without_the_notification(
    client: AsyncTestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await put(client, "crm", "R", {"name": "Acme GmbH", "phone": "+49 30 1234567"})
    lookups = hub_of(client).lookups
    applied = lookups._apply

    def local_only(ids: str, origin: str) -> None:
        if origin != "notify":  # this process ignores NOTIFY: only its own evictions count
            applied(ids, origin)

    monkeypatch.setattr(lookups, "_apply", local_only)
    await warm(client, "crm", "R")
    linked = await put(client, "erp", "R2", {"name": "Acme GmbH", "phone": "+49 30 1234567"})
    assert linked["golden_id"] == a["golden_id"]
    expected = await reference(hub_of(client), database_url, "customer", "crm", "R")
    assert b'"source":"erp"' in expected
    assert await lookup(client, "crm", "R") == expected


async def test_unknown_ids_are_404_and_found_once_they_arrive(
    client: AsyncTestClient, other: AsyncTestClient
) -> None:
    for c in (client, other):
        missing = await c.get("/v1/xref/customer/crm/LATER")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    created = await put(client, "crm", "LATER", {"name": "Initech"})
    for c in (client, other):  # 404s are not cached: no wait even in the other process
        found = await c.get("/v1/xref/customer/crm/LATER")
        assert found.status_code == 200 and found.json()["golden_id"] == created["golden_id"]


async def test_auth_is_still_checked_and_a_revocation_is_honoured_everywhere(
    client: AsyncTestClient, other: AsyncTestClient, database_url: str, make_client: MakeClient
) -> None:
    await put(client, "crm", "K", {"name": "Umbrella"})
    await warm(client, "crm", "K")
    anonymous = await client.get("/v1/xref/customer/crm/K", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401
    unknown = await client.get("/v1/xref/customer/crm/K", headers={"X-API-Key": "mdm_no"})
    assert unknown.status_code == 401

    reader = await make_client("reader")
    key = reader.headers["X-API-Key"]
    for c in (client, other):
        for _ in range(2):  # the second time from the key cache
            ok = await c.get("/v1/xref/customer/crm/K", headers={"X-API-Key": key})
            assert ok.status_code == 200
    assert len(hub_of(other).lookups.keys) == 1

    engine = create_async_engine(database_url)  # `mdm keys revoke`, from another process
    async with engine.begin() as conn:
        (stored,) = [k for k in await KeyStore(conn).list() if k.role == "reader"]
        assert await KeyStore(conn).revoke(stored.key_id)
    await engine.dispose()
    for c in (client, other):

        async def refused(c: AsyncTestClient = c) -> bool:
            answer = await c.get("/v1/xref/customer/crm/K", headers={"X-API-Key": key})
            return answer.status_code == 401

        await eventually(refused)


async def test_losing_the_listen_connection_empties_the_cache_until_it_is_back(
    client: AsyncTestClient, other: AsyncTestClient, database_url: str
) -> None:
    await put(client, "crm", "L", {"name": "Hooli"})
    lookups = hub_of(other).lookups
    await warm(other, "crm", "L")
    listen = lookups._listen_conn
    assert listen is not None
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", listen.get_server_pid())
    finally:
        await conn.close()

    async def dark() -> bool:
        return not lookups.live or lookups._listen_conn is not listen

    await eventually(dark)
    assert "customer/crm/L" not in lookups.answers._entries

    async def back() -> bool:
        return lookups.live and lookups._listen_conn is not None

    await eventually(back)
    await warm(other, "crm", "L")
    await put(client, "erp", "L2", {"name": "Hooli"})  # not a match: a write to evict by
    await client.delete("/v1/sources/crm/customer/L")
    assert (await client.get("/v1/xref/customer/crm/L")).status_code == 404

    async def evicted() -> bool:
        return (await other.get("/v1/xref/customer/crm/L")).status_code == 404

    await eventually(evicted)


async def test_notifications_are_chunked_under_the_payload_limit(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    writer = await asyncpg.connect(asyncpg_dsn(database_url))
    payloads: list[str] = []
    await conn.add_listener("mdm_lookup", lambda *args: payloads.append(args[3]))
    try:
        ids = [f"gr_{i:026d}" for i in range(1000)]
        async with writer.transaction():
            await writer.execute("SELECT mdm_lookup_touch($1::text[])", ids)
            touched = await writer.fetchval("SELECT current_setting('mdm.lookup_touched', true)")
        assert set(touched.split()) == set(ids)

        async def arrived() -> bool:
            return sum(len(p.split()) - 1 for p in payloads) >= len(ids)

        await eventually(arrived)
        assert len(payloads) > 1
        assert all(len(p.encode()) <= 8000 and p.startswith("x ") for p in payloads)
        assert {i for p in payloads for i in p[1:].split()} == set(ids)

        payloads.clear()
        async with writer.transaction():
            many = [f"g{i}" for i in range(5000)]
            await writer.execute("SELECT mdm_lookup_touch($1::text[])", many)

        async def flushed() -> bool:
            return payloads == ["x *"]

        await eventually(flushed)
    finally:
        await conn.close()
        await writer.close()


async def test_hit_and_miss_counters_are_in_metrics(client: AsyncTestClient) -> None:
    await put(client, "crm", "M", {"name": "Stark"})
    await warm(client, "crm", "M")
    metrics = (await client.get("/metrics")).text
    assert 'mdm_lookup_cache_total{cache="xref",result="hit"}' in metrics
    assert 'mdm_lookup_cache_total{cache="xref",result="miss"}' in metrics
    assert 'mdm_lookup_cache_total{cache="api_key",result="hit"}' in metrics


async def test_a_flush_from_truncate_empties_other_caches(
    client: AsyncTestClient, other: AsyncTestClient, database_url: str
) -> None:
    await put(client, "crm", "T", {"name": "Wayne"})
    await warm(other, "crm", "T")
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE source_record, golden_record CASCADE"))
    await engine.dispose()

    async def emptied() -> bool:
        return (await other.get("/v1/xref/customer/crm/T")).status_code == 404

    await eventually(emptied)


async def test_a_lost_lookup_connection_never_answers_500_and_recovers(
    client: AsyncTestClient, database_url: str
) -> None:
    """Killed lookup connections: 503 (if the request met the dead one) or 200 (if the
    pool had noticed and connected again), never a 500; and lookups work after."""
    await put(client, "crm", "D", {"name": "Soylent"})
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    killed = 0
    try:
        for _ in range(5):
            hub_of(client).lookups.answers.clear()  # a miss: the lookup reads the database
            # The test database is this connection's own: no name parsed out of the URL
            # (the embedded server's carries its socket directory in a query string).
            killed += await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'mdm-lookup'"
            )
            answer = await client.get("/v1/xref/customer/crm/D")
            assert answer.status_code in (200, 503), answer.text
            if answer.status_code == 503:
                assert answer.headers["content-type"] == "application/problem+json"
    finally:
        await conn.close()
    assert killed >= 1

    async def recovered() -> bool:
        answer = await client.get("/v1/xref/customer/crm/D")
        assert answer.status_code in (200, 503), answer.text
        return answer.status_code == 200

    await eventually(recovered)


def fast_path(client: AsyncTestClient) -> XrefFastPath:
    edge = client.app.asgi_handler  # the edge's checks come first (mdm/api/edge.py)
    assert isinstance(edge, Edge)
    assert isinstance(edge.app, XrefFastPath)
    return edge.app


async def test_cached_answers_go_out_before_routing_with_the_routes_own_bytes_and_headers(
    client: AsyncTestClient, make_client: MakeClient
) -> None:
    await put(client, "crm", "F", {"name": "Acme GmbH"})
    reader = await make_client("reader")
    served = fast_path(client).served
    first = await reader.get("/v1/xref/customer/crm/F")  # litestar: the key and answer cached
    again = await reader.get("/v1/xref/customer/crm/F")
    assert fast_path(client).served == served + 1
    assert first.status_code == again.status_code == 200
    assert first.content == again.content

    def sent(response: Any) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headers.items() if k not in ("date", "server"))

    assert sent(first) == sent(again)
    # Not before routing: no key, a query string, another method.
    assert (
        await client.get("/v1/xref/customer/crm/F", headers={"X-API-Key": ""})
    ).status_code == 401
    assert (await reader.get("/v1/xref/customer/crm/F?x=1")).content == first.content
    assert (await reader.request("HEAD", "/v1/xref/customer/crm/F")).status_code in (200, 405)
    assert fast_path(client).served == served + 1


async def test_answers_sent_before_routing_are_in_the_request_metrics(
    client: AsyncTestClient, settings: Settings
) -> None:
    await put(client, "crm", "G", {"name": "Acme GmbH"})
    # A new process where litestar never serves a lookup: the admin key is always known.
    async with AsyncTestClient(app=create_app(settings)) as fresh:
        fresh.headers["X-API-Key"] = settings.auth.admin_key or ""
        await check_metrics_count(fresh)


async def check_metrics_count(client: AsyncTestClient) -> None:
    await warm(client, "crm", "G")

    def counted(metrics: str) -> float:
        for line in metrics.splitlines():
            if line.startswith("mdm_requests_total{") and "/v1/xref/{entity" in line:
                if 'status_code="200"' in line and 'method="GET"' in line:
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = counted((await client.get("/metrics")).text)
    served = fast_path(client).served
    for _ in range(3):
        await lookup(client, "crm", "G")
    assert fast_path(client).served == served + 3
    assert counted((await client.get("/metrics")).text) == before + 3


async def test_the_rate_limit_still_holds_for_cached_answers(
    client: AsyncTestClient, settings: Settings
) -> None:
    await put(client, "crm", "H", {"name": "Acme GmbH"})
    limited = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, read_rate=0.01, burst_seconds=300)
    )
    async with AsyncTestClient(app=create_app(limited)) as third:
        third.headers["X-API-Key"] = settings.auth.admin_key or ""
        statuses = [(await third.get("/v1/xref/customer/crm/H")).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        assert fast_path(third).served >= 1  # the second and third came from the cache


async def test_a_404_costs_one_token_whoever_answers_it(
    client: AsyncTestClient, settings: Settings
) -> None:
    limited = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, read_rate=0.01, burst_seconds=300)
    )
    async with AsyncTestClient(app=create_app(limited)) as third:
        third.headers["X-API-Key"] = settings.auth.admin_key or ""
        statuses = [
            (await third.get(f"/v1/xref/customer/crm/NO-{i}")).status_code for i in range(4)
        ]
        assert statuses == [404, 404, 404, 429]
