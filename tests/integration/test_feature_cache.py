"""The feature cache (mdm/adapters/feature_cache.py) on a real PostgreSQL: candidate
members read through it are what the database holds, whatever changed the records
since they were cached."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from mdm.adapters.feature_cache import FeatureCache
from mdm.adapters.matching import MatchStore
from tests.integration.prometheus_text import samples

ANNA = {"given_name": "Anna", "family_name": "Schmidt", "email": "anna.schmidt@example.com"}
BEN = {"given_name": "Ben", "family_name": "Okafor", "email": "ben.okafor@example.com"}
CARL = {"given_name": "Carl", "family_name": "Weiss", "email": "carl.weiss@example.com"}


async def _put(client: AsyncTestClient, source: str, source_id: str, attrs: dict) -> str:
    response = await client.put(
        f"/v1/sources/{source}/worker/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    golden_id: str = response.json()["golden_id"]
    return golden_id


async def _members(db: AsyncConnection, golden_ids: list[str], cache: FeatureCache | None) -> dict:
    found = await MatchStore(db, cache).members(golden_ids)
    return {
        g: [(m.record_id, m.golden_id, m.source, m.source_id, m.features) for m in ms]
        for g, ms in found.items()
    }


async def _goldens(db: AsyncConnection) -> list[str]:
    rows = await db.execute(text("SELECT golden_id FROM golden_record ORDER BY golden_id"))
    return [r[0] for r in rows]


async def test_members_through_the_cache_are_the_stored_ones_after_every_kind_of_change(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    a = await _put(client, "hcm", "H-1", ANNA)
    b = await _put(client, "hcm", "H-2", BEN)
    await _put(client, "hcm", "H-3", CARL)
    engine = create_async_engine(database_url)
    cache = FeatureCache(10 * 2**20)
    try:
        assert await cache.fill(engine) == 3
    finally:
        await engine.dispose()

    async def same() -> dict:
        await db.commit()  # a new snapshot for each comparison
        ids = await _goldens(db)
        through = await _members(db, ids, cache)
        assert through == await _members(db, ids, None)
        return through

    first = await same()
    assert first[a][0][4]["given_name"]["v"] == "anna"

    # an update of a record's features: its cached version is stale
    await _put(client, "hcm", "H-1", {**ANNA, "given_name": "Annabel"})
    updated = await same()
    assert updated[a][0][4]["given_name"]["v"] == "annabel"

    # a steward's merge moves B's record to A's golden record
    merged = await client.post(
        "/v1/golden/worker/merge",
        json={"survivor_id": a, "loser_ids": [b], "reason": "same person"},
    )
    assert merged.status_code == 200, merged.text
    after_merge = await same()
    assert [m[3] for m in after_merge[a]] == ["H-1", "H-2"]
    assert b not in after_merge

    # a deletion: the record is no longer a member
    deleted = await client.delete("/v1/sources/hcm/worker/H-2")
    assert deleted.status_code in (200, 204), deleted.text
    after_delete = await same()
    assert [m[3] for m in after_delete[a]] == ["H-1"]


async def test_only_committed_row_versions_are_kept(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    """A transaction that wrote a record may write it again under the same xmin, and may
    roll back: what it reads is not kept."""
    a = await _put(client, "hcm", "H-1", ANNA)
    cache = FeatureCache(10 * 2**20)
    await db.commit()
    await db.execute(
        text(
            "UPDATE source_record SET match_features = jsonb_set(match_features, "
            "'{given_name,v}', '\"hanna\"') WHERE source_id = 'H-1'"
        )
    )
    inside = await _members(db, [a], cache)
    assert inside[a][0][4]["given_name"]["v"] == "hanna"
    assert len(cache) == 0
    await db.rollback()
    after = await _members(db, [a], cache)
    assert after[a][0][4]["given_name"]["v"] == "anna"
    assert len(cache) == 1  # read by a transaction that wrote nothing


async def test_the_warming_stops_at_the_budget_and_skips_deleted_records(
    client: AsyncTestClient, database_url: str
) -> None:
    for i, attrs in enumerate((ANNA, BEN, CARL)):
        await _put(client, "hcm", f"H-{i}", attrs)
    assert (await client.delete("/v1/sources/hcm/worker/H-1")).status_code in (200, 204)
    engine = create_async_engine(database_url)
    try:
        everything = FeatureCache(10 * 2**20)
        assert await everything.fill(engine, page=1) == 2  # pages of one record
        held = everything.bytes
        two_fit = FeatureCache(held)
        assert await two_fit.fill(engine) == 2
        one_fits = FeatureCache(held - 1)
        assert await one_fits.fill(engine) == 1
    finally:
        await engine.dispose()


async def test_the_hub_matches_with_the_features_it_holds(client: AsyncTestClient) -> None:
    """The app's hub reads candidate members through its cache: a record that matches
    a stored one finds it there the second time (the first read keeps it)."""

    async def hits() -> float:
        body = (await client.get("/metrics")).text
        return samples(body).get('mdm_feature_cache_total{result="hit"}', 0.0)

    anna = await _put(client, "hcm", "H-1", ANNA)
    before = await hits()
    assert await _put(client, "psa", "P-1", ANNA) == anna
    assert await _put(client, "erp", "E-1", ANNA) == anna
    assert await hits() > before
