"""The hub as a matcher in bench/match_quality.py: records in through its HTTP path.

Unsupervised, as the peers are, and the way an operator would run it:

1. a scratch database; every record ingested through `POST /v1/sources/{source}/
   {entity}/batch` (the hub's own ingestion path, in-process over ASGI) with the
   packaged default model; then the `mdm train` code path fits m, u and the
   prior by EM on the records the hub now holds and stores the next version;
2. a second scratch database holding only that trained model; every record
   ingested again, in the same order, and each record's golden id read back
   through `GET /v1/xref/...` (the answer the hub gives its integrations).

A record the hub rejects (422: a FEBRL record without a surname, which the
worker schema requires) gets no golden id; match_quality scores it as a
singleton and says how many there were.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import text

from mdm.adapters.matching import MatchStore
from mdm.api.app import create_app
from mdm.bootstrap import make_engine
from mdm.services.matcher import train_model
from mdm.settings import (
    AuthSettings,
    DatabaseSettings,
    NatsSettings,
    RelaySettings,
    Settings,
    load_rules,
    normalize_database_url,
)
from publishers.testing import scratch_database

Key = tuple[str, str]
ADMIN_KEY = "mdm_bench_" + secrets.token_urlsafe(16)
BATCH = 200


def _settings(url: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=url, pool_size=4),
        nats=NatsSettings(url=os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222")),
        relay=RelaySettings(enabled=False),  # events stay in the outbox; not measured here
        auth=AuthSettings(admin_key=ADMIN_KEY, rate_limit=0),  # unthrottled, as admin
    )


async def _ingest(client: AsyncTestClient, records: Sequence[dict[str, Any]], entity: str) -> int:
    """Every record through the batch endpoint, in order, grouped by source; rejected count."""
    rejected = 0
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        by_source: dict[str, list[dict[str, Any]]] = {}
        for r in chunk:
            by_source.setdefault(r["source"], []).append(
                {"source_id": r["source_id"], "attributes": r["attributes"]}
            )
        for source, items in by_source.items():
            response = await client.post(f"/v1/sources/{source}/{entity}/batch", json=items)
            if response.status_code != 200:
                raise RuntimeError(f"batch failed: {response.status_code} {response.text[:500]}")
            rejected += response.json()["rejected"]
    return rejected


async def _golden_ids(
    client: AsyncTestClient, records: Sequence[dict[str, Any]], entity: str
) -> dict[Key, str]:
    out: dict[Key, str] = {}
    keys = [(r["source"], r["source_id"]) for r in records]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        response = await client.post(
            "/v1/xref/lookup",
            json={"keys": [{"entity": entity, "source": s, "source_id": i} for s, i in chunk]},
        )
        response.raise_for_status()
        for (source, source_id), result in zip(chunk, response.json()["results"], strict=True):
            if result.get("golden_id"):
                out[(source, source_id)] = result["golden_id"]
    return out


async def _run(records: Sequence[dict[str, Any]], entity: str) -> dict[Key, str]:
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    started = time.perf_counter()
    async with scratch_database(server) as url:
        async with AsyncTestClient(create_app(_settings(url))) as client:
            client.headers["X-API-Key"] = ADMIN_KEY
            rejected = await _ingest(client, records, entity)
        # The test client runs the app on its own event loop: use an engine of ours.
        engine = make_engine(url, pool_size=1)
        async with engine.begin() as conn:
            trained = await train_model(conn, load_rules(), entity)
            stored = await MatchStore(conn).model(entity, trained.version)
        await engine.dispose()
    assert stored is not None
    print(
        f"  hub: pass 1 (default model) and training on {trained.records} records: "
        f"{time.perf_counter() - started:.1f} s, prior {trained.prior:.2e}, {rejected} rejected",
        flush=True,
    )
    async with scratch_database(server) as url:
        engine = make_engine(url, pool_size=1)
        async with engine.begin() as conn:
            await load_rules().models.current(conn, entity)  # the default, as version 1
            await MatchStore(conn).add_model(
                entity, stored.model, stored.term_frequencies, trained.records
            )
        await engine.dispose()
        async with AsyncTestClient(create_app(_settings(url))) as client:
            client.headers["X-API-Key"] = ADMIN_KEY
            second = time.perf_counter()
            await _ingest(client, records, entity)
            print(
                f"  hub: pass 2 (trained model): {time.perf_counter() - second:.1f} s",
                flush=True,
            )
            found = await _golden_ids(client, records, entity)
        engine = make_engine(url, pool_size=1)
        async with engine.begin() as conn:
            tasks = await conn.scalar(text("SELECT count(*) FROM review_task"))
        await engine.dispose()
        print(f"  hub: {tasks} review tasks opened in pass 2", flush=True)
        return found


def run_hub(records: list[dict[str, Any]], entity: str) -> Mapping[Key, Hashable]:
    return asyncio.run(_run(records, entity))
