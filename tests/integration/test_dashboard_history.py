"""The dashboard's hourly history on a real PostgreSQL (mdm/adapters/history.py): what
units of work count, what a sample folds, samples and prunes, what GET /v1/dashboard
answers from it, and the kept match probabilities with the thresholds in force."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from mdm.adapters.data_quality import RULES
from mdm.adapters.history import HISTORY_LOCK_CLASS
from mdm.api.history import HistorySampler
from mdm.bootstrap import make_engine
from mdm.settings import DashboardSettings
from tests.integration.review_data import pair

Sampler = Callable[..., Awaitable[bool]]
ACME = {"name": "Acme Consulting GmbH", "tax_id": "DE136695976", "tax_country": "DE"}


@pytest.fixture
async def sampler(database_url: str) -> AsyncIterator[Sampler]:
    """`await sampler()` takes one sample as the hub's loop does (on an engine of its
    own: the app's engine serves the app's event loop); `retention=` in seconds."""
    engine = make_engine(database_url, pool_size=2)

    async def take(retention: float = 30 * 86400) -> bool:
        return await HistorySampler(engine, DashboardSettings(retention=retention)).sample()

    yield take
    await engine.dispose()


async def _put(client: AsyncTestClient, path: str, attributes: dict[str, Any]) -> dict[str, Any]:
    response = await client.put(path, json={"attributes": attributes})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _history(client: AsyncTestClient, hours: int = 24) -> dict[str, Any]:
    response = await client.get("/v1/dashboard", params={"hours": hours})
    assert response.status_code == 200, response.text
    return dict(response.json()["history"])


def _ingested(history: dict[str, Any]) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for p in history["ingested"]:
        out[(p["entity"], p["source"], p["key"])] += int(p["value"])
    return out


async def _ingest_every_outcome(client: AsyncTestClient) -> None:
    """One record of each outcome: created, linked, review, unchanged, rejected."""
    await _put(client, "/v1/sources/crm/customer/ACC-1", ACME)  # created
    linked = await _put(client, "/v1/sources/erp/customer/C-1", {**ACME, "name": "ACME"})
    assert linked["outcome"] == "linked"
    await _put(client, "/v1/sources/crm/customer/ACC-1", ACME)  # unchanged
    hcm, psa = pair(0)
    await _put(client, "/v1/sources/hcm/worker/H-0", hcm)  # created
    review = await _put(client, "/v1/sources/psa/worker/P-0", psa)
    assert review["review"]
    # A batch: one good record, one item that is not a record, and one whose name is
    # blank once standardized (the schema takes it, the plan rejects it).
    response = await client.post(
        "/v1/sources/crm/customer/batch",
        json=[
            {"source_id": "ACC-2", "attributes": {"name": "Globex Ltd"}},
            "not a record",
            {"source_id": "ACC-3", "attributes": {"name": "\u200b"}},
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 2, response.text


EXPECTED = {
    ("customer", "crm", "created"): 2,
    ("customer", "erp", "linked"): 1,
    ("customer", "crm", "unchanged"): 1,
    ("customer", "crm", "rejected"): 2,
    ("worker", "hcm", "created"): 1,
    ("worker", "psa", "review"): 1,
}


async def test_units_of_work_count_their_outcomes_and_a_sample_folds_them_into_hours(
    client: AsyncTestClient, db: AsyncConnection, sampler: Sampler
) -> None:
    await _ingest_every_outcome(client)
    # Before any sample the counts wait in ingest_tally, and the dashboard adds them in.
    tallied = (await db.execute(text("SELECT sum(records) FROM ingest_tally"))).scalar_one()
    assert tallied == sum(EXPECTED.values())
    assert _ingested(await _history(client)) == EXPECTED

    assert await sampler()
    await db.rollback()  # a fresh snapshot
    assert (await db.execute(text("SELECT count(*) FROM ingest_tally"))).scalar_one() == 0
    folded = await db.execute(
        text("SELECT entity, source, label, value FROM metric_hour WHERE series = 'ingested'")
    )
    by_key: Counter[tuple[str, str, str]] = Counter()
    for entity, source, label, value in folded:
        by_key[(entity, source, label)] += int(value)
    assert by_key == EXPECTED
    assert _ingested(await _history(client)) == EXPECTED

    # A second round adds to the hours folded before: nothing is counted twice.
    await _put(client, "/v1/sources/crm/customer/ACC-1", {**ACME, "phone": "030 1234567"})
    expected = EXPECTED | {("customer", "crm", "linked"): 1}
    assert _ingested(await _history(client)) == expected
    assert await sampler()
    assert _ingested(await _history(client)) == expected


async def test_a_sample_records_open_reviews_decisions_the_outbox_and_exceptions(
    client: AsyncTestClient, db: AsyncConnection, sampler: Sampler
) -> None:
    for i in range(3):
        hcm, psa = pair(i)
        await _put(client, f"/v1/sources/hcm/worker/H-{i}", hcm)
        await _put(client, f"/v1/sources/psa/worker/P-{i}", psa)
    tasks = (await client.get("/v1/reviews")).json()["tasks"]
    assert len(tasks) == 3
    assert await sampler()
    history = await _history(client)
    open_reviews = {p["entity"]: p["value"] for p in history["open_reviews"]}
    assert open_reviews == {"customer": 0, "legal_entity": 0, "project": 0, "worker": 3}
    (pending,) = history["outbox_pending"]
    assert pending["value"] >= 6  # no relay in the tests' app: every event waits
    (lag,) = history["outbox_lag_seconds"]
    assert lag["value"] >= 0
    assert {p["key"] for p in history["exceptions"]} == set(RULES)
    assert history["decisions_per_day"] == []

    for task, decision in zip(tasks, ("merge", "not_a_match"), strict=False):
        response = await client.post(
            f"/v1/reviews/{task['id']}/decision", json={"decision": decision, "actor": "kim"}
        )
        assert response.status_code == 200, response.text
    assert await sampler()
    history = await _history(client)
    open_reviews = {p["entity"]: p["value"] for p in history["open_reviews"]}
    assert open_reviews["worker"] == 1  # the hour keeps its last sample
    decided = {(p["entity"], p["key"]): p["value"] for p in history["decisions_per_day"]}
    assert decided == {("worker", "merge"): 1, ("worker", "not_a_match"): 1}
    assert history["days"] == 7
    # The lag and backlog keep the hour's highest sample: published rows do not lower it.
    before = max(p["value"] for p in history["outbox_pending"])
    await db.execute(text("UPDATE outbox SET published_at = now()"))
    await db.commit()
    assert await sampler()
    history = await _history(client)
    assert max(p["value"] for p in history["outbox_pending"]) == before


async def test_a_sample_another_process_is_taking_is_skipped(
    client: AsyncTestClient, db: AsyncConnection, sampler: Sampler, database_url: str
) -> None:
    await _put(client, "/v1/sources/crm/customer/ACC-1", ACME)
    engine = create_async_engine(database_url)
    async with engine.begin() as other:
        await other.execute(text("SELECT pg_advisory_xact_lock(:k, 0)"), {"k": HISTORY_LOCK_CLASS})
        assert not await sampler()
    await engine.dispose()
    assert (await db.execute(text("SELECT count(*) FROM ingest_tally"))).scalar_one() == 1
    assert (await db.execute(text("SELECT count(*) FROM metric_hour"))).scalar_one() == 0


async def test_hours_older_than_the_retention_are_pruned(
    client: AsyncTestClient, db: AsyncConnection, sampler: Sampler
) -> None:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rows = [
        {"hour": now - dt.timedelta(hours=h), "series": "ingested", "value": 1.0}
        for h in (1, 5, 48)
    ]
    await db.execute(
        text(
            "INSERT INTO metric_hour (hour, series, entity, source, label, value)"
            " VALUES (:hour, :series, 'customer', 'crm', 'created', :value)"
        ),
        rows,
    )
    await db.commit()
    assert _ingested(await _history(client, hours=72)) == {("customer", "crm", "created"): 3}
    assert _ingested(await _history(client, hours=24)) == {("customer", "crm", "created"): 2}

    assert await sampler(retention=24 * 3600)
    kept = await db.execute(
        text("SELECT hour FROM metric_hour WHERE series = 'ingested' ORDER BY hour")
    )
    assert [r.hour for r in kept] == [now - dt.timedelta(hours=5), now - dt.timedelta(hours=1)]


async def test_the_kept_probabilities_are_binned_with_the_thresholds_in_force(
    client: AsyncTestClient,
) -> None:
    for i in range(4):
        hcm, psa = pair(i)
        await _put(client, f"/v1/sources/hcm/worker/H-{i}", hcm)
        await _put(client, f"/v1/sources/psa/worker/P-{i}", psa)
    tasks = (await client.get("/v1/reviews")).json()["tasks"]
    for task, decision in zip(tasks, ("merge", "not_a_match"), strict=False):
        response = await client.post(
            f"/v1/reviews/{task['id']}/decision", json={"decision": decision, "actor": "kim"}
        )
        assert response.status_code == 200, response.text

    board = (await client.get("/v1/dashboard")).json()
    histograms = {h["entity"]: h for h in board["probabilities"]}
    assert set(histograms) == {"customer", "legal_entity", "project", "worker"}
    worker = histograms["worker"]
    assert (worker["review"], worker["auto_link"]) == (0.5, 0.99)
    assert worker["model_version"] == 1
    assert histograms["customer"]["bins"] == []
    bins = worker["bins"]
    totals = Counter[str]()
    for b in bins:
        assert b["low"] < b["high"]
        for kind in ("linked", "merged", "not_a_match", "undecided"):
            totals[kind] += b[kind]
    # The merge moved P-0's record to its candidate: neither kept a link probability.
    assert totals == {"linked": 0, "merged": 1, "not_a_match": 1, "undecided": 2}
    weights = [b["weight"] for b in bins]
    assert weights == sorted(set(weights))
    for task in tasks:
        (home,) = [b for b in bins if b["low"] <= task["probability"] < b["high"]]
        assert home["merged"] + home["not_a_match"] + home["undecided"] >= 1
