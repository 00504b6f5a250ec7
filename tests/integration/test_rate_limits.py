"""Rate limits through the real app: read and write buckets, a key's own rates, the headers.

Each test builds an app of its own with limits (the shared one has none) and
drives its buckets with a clock it sets, so the requests go through the real
middleware and routes while time moves only when the test says.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from mdm.api.app import create_app
from mdm.api.edge import Edge
from mdm.api.fast_lookup import XrefFastPath
from mdm.settings import AuthSettings, Settings
from tests.support import KeyedClient, MakeClient, mdm_cli

DEFAULTS = AuthSettings()
LOOKUP = "/v1/xref/customer/crm/ACC-1"
RECORD = {"attributes": {"name": "Acme Consulting GmbH"}}


class Clock:
    """The buckets' clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def limited_app(
    settings: Settings, **auth: Any
) -> AsyncIterator[tuple[AsyncTestClient, Clock, XrefFastPath]]:
    """An app with the hub's default limits (or `auth`'s), its buckets on a test clock."""
    rates = {
        "read_rate": DEFAULTS.read_rate,
        "write_rate": DEFAULTS.write_rate,
        "burst_seconds": DEFAULTS.burst_seconds,
        **auth,
    }
    app = create_app(
        dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, **rates))
    )
    edge = app.asgi_handler  # the edge's checks, then the ID lookup's fast path
    assert isinstance(edge, Edge) and isinstance(edge.app, XrefFastPath)
    clock = Clock()
    edge.app.access.limiter.clock = clock  # the fast path and litestar share the limiter
    async with AsyncTestClient(app=app) as client:
        yield client, clock, edge.app


def _mdm(database_url: str, *args: str) -> str:
    done = mdm_cli(database_url, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def create_key(database_url: str, *args: str) -> str:
    """`mdm keys create ARGS`: the key it prints."""
    out = await asyncio.to_thread(_mdm, database_url, "keys", "create", *args)
    return out.strip().splitlines()[-1]


def rate_headers(response: httpx.Response) -> dict[str, int]:
    names = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")
    return {name: int(response.headers[name]) for name in names if name in response.headers}


async def test_a_reader_doing_1000_lookups_a_second_for_5_s_gets_no_429(
    client: AsyncTestClient, make_client: MakeClient, settings: Settings
) -> None:
    assert (await client.put("/v1/sources/crm/customer/ACC-1", json=RECORD)).status_code == 200
    reader = await make_client("reader")
    async with limited_app(settings) as (app, clock, fast):
        sync = KeyedClient(app, reader.headers)
        statuses: dict[int, int] = {}
        for i in range(5_000):
            clock.now = 1_000.0 + i / 1_000  # one request a millisecond, for 5 s
            response = await sync.get(LOOKUP)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert statuses == {200: 5_000}
        assert fast.served >= 4_999  # the ID lookup's hot path answered them
        # The bucket refills five times faster than it drains: it stays all but full.
        assert rate_headers(response) == {
            "RateLimit-Limit": 10_000,
            "RateLimit-Remaining": 9_999,
            "RateLimit-Reset": 1,
        }


async def test_the_headers_on_lookups_writes_and_429s_agree(
    client: AsyncTestClient, make_client: MakeClient, settings: Settings, database_url: str
) -> None:
    assert (await client.put("/v1/sources/crm/customer/ACC-1", json=RECORD)).status_code == 200
    reader = await make_client("reader")
    crm = await make_client("source", source="crm")
    slow = await create_key(database_url, "--role", "reader", "--read-rate", "0.5")
    async with limited_app(settings) as (app, clock, fast):
        sync = KeyedClient(app, reader.headers)
        me = await sync.get("/v1/me")  # litestar answers (and caches the key)
        cached = await sync.get(LOOKUP)  # answered before routing, from the same read bucket
        missing = await sync.get("/v1/xref/customer/crm/NOPE")  # litestar's 404
        assert [me.status_code, cached.status_code, missing.status_code] == [200, 200, 404]
        assert fast.served == 1
        assert [rate_headers(r) for r in (me, cached, missing)] == [
            {"RateLimit-Limit": 10_000, "RateLimit-Remaining": r, "RateLimit-Reset": 1}
            for r in (9_999, 9_998, 9_997)
        ]

        # A write draws on the write bucket: its own size, and the reads took nothing of it.
        source = KeyedClient(app, crm.headers)
        write = await source.put("/v1/sources/crm/customer/ACC-2", json=RECORD)
        assert write.status_code == 200, write.text
        assert rate_headers(write) == {
            "RateLimit-Limit": 400,
            "RateLimit-Remaining": 399,
            "RateLimit-Reset": 1,
        }
        assert rate_headers(await source.get(LOOKUP))["RateLimit-Remaining"] == 9_999

        # A key of 0.5 reads a second holds one token: the second lookup gets a 429 that
        # says when to come back, from the fast path's take, answered by litestar.
        paced = KeyedClient(app, {"X-API-Key": slow})
        first = await paced.get(LOOKUP)
        assert first.status_code == 200
        assert rate_headers(first) == {
            "RateLimit-Limit": 1,
            "RateLimit-Remaining": 0,
            "RateLimit-Reset": 2,
        }
        clock.now += 0.5  # a quarter of a token back
        refused = await paced.get(LOOKUP)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert rate_headers(refused) == {
            "RateLimit-Limit": 1,
            "RateLimit-Remaining": 0,
            "RateLimit-Reset": 2,  # 0.75 of a token at 0.5/s: 1.5 s, rounded up
            "Retry-After": 2,
        }
        clock.now += 1.5  # as long as Retry-After said (before rounding): the token is back
        again = await paced.get(LOOKUP)
        assert again.status_code == 200
        assert rate_headers(again)["RateLimit-Remaining"] == 0
        assert (await app.get("/health")).headers.get("RateLimit-Limit") is None  # never limited


async def test_a_keys_own_read_rate_applies(
    client: AsyncTestClient, make_client: MakeClient, settings: Settings, database_url: str
) -> None:
    assert (await client.put("/v1/sources/crm/customer/ACC-1", json=RECORD)).status_code == 200
    low = await create_key(database_url, "--role", "reader", "--read-rate", "5", "--name", "low")
    listed = await asyncio.to_thread(_mdm, database_url, "keys", "list")
    assert "read 5/s write default" in listed
    default = await make_client("reader")
    async with limited_app(settings) as (app, _clock, _fast):
        throttled = KeyedClient(app, {"X-API-Key": low})
        statuses = [(await throttled.get(LOOKUP)).status_code for _ in range(12)]
        assert statuses == [200] * 10 + [429] * 2  # a burst of two seconds' worth: 10
        unthrottled = KeyedClient(app, default.headers)
        assert {(await unthrottled.get(LOOKUP)).status_code for _ in range(12)} == {200}


async def test_a_keys_own_write_rate_lets_it_past_the_hubs(
    client: AsyncTestClient, settings: Settings, database_url: str
) -> None:
    fast_key = await create_key(database_url, "--role", "source", "--source", "crm", "--rate", "50")
    listed = await asyncio.to_thread(_mdm, database_url, "keys", "list")
    assert "read 50/s write 50/s" in listed
    plain_key = await create_key(database_url, "--role", "source", "--source", "crm")
    # The hub's writes at 2/s (bursts of 4), the one key's at 50/s (bursts of 100).
    async with limited_app(settings, write_rate=2.0) as (app, _clock, _fast):

        async def writes(key: str) -> list[int]:
            source = KeyedClient(app, {"X-API-Key": key})
            url = "/v1/sources/crm/customer/ACC-1"  # the same content: each one a no-op
            return [(await source.put(url, json=RECORD)).status_code for _ in range(6)]

        assert await writes(plain_key) == [200] * 4 + [429] * 2
        assert await writes(fast_key) == [200] * 6
