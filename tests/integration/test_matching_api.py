"""Probabilistic matching through the API on a real PostgreSQL: links, reviews, search."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.matching import MatchStore
from mdm.adapters.repository import fetch_rows
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.api.problems import database_unavailable
from mdm.bootstrap import load_rules, make_engine
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord, ingest_records


async def put(
    client: AsyncTestClient, source: str, entity: str, source_id: str, attrs: dict
) -> dict:
    response = await client.put(
        f"/v1/sources/{source}/{entity}/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    return response.json()


WORKER = {
    "given_name": "William",
    "family_name": "Okonkwo-Brandt",
    "date_of_birth": "1984-03-17",
    "address": {
        "line1": "Rosenweg 12",
        "city": "Freiburg",
        "postal_code": "79098",
        "country": "DE",
    },
}


async def test_a_near_duplicate_worker_links_and_the_link_explains_why(
    client: AsyncTestClient,
) -> None:
    first = await put(client, "hcm", "worker", "H-100", WORKER)
    # Another system: a nickname, a typo in the surname, no address line, no identifiers.
    second = await put(
        client,
        "psa",
        "worker",
        "R-9",
        {
            "given_name": "Bill",
            "family_name": "Okonkwo-Brandtt",
            "date_of_birth": "1984-03-17",
            "address": {"city": "Freiburg", "postal_code": "79098", "country": "DE"},
        },
    )
    assert second["golden_id"] == first["golden_id"]
    assert second["outcome"] == "linked"
    assert second["match_probability"] >= 0.99

    links = (await client.get(f"/v1/golden/worker/{first['golden_id']}/links")).json()
    by_source = {link["source"]: link for link in links["links"]}
    assert by_source["hcm"]["rule"] == "new"
    psa = by_source["psa"]
    assert psa["rule"] == "match" and psa["model_version"] == 1
    assert psa["probability"] == second["match_probability"]
    waterfall = {f["field"]: f for f in psa["explanation"]["fields"]}
    assert waterfall["given_name"]["level"] != "else"  # Bill = William
    assert waterfall["date_of_birth"]["level"] == "exact"
    assert waterfall["date_of_birth"]["weight"] > 0
    total = psa["explanation"]["prior_weight"] + sum(f["weight"] for f in waterfall.values())
    assert abs(total - psa["weight"]) < 1e-9


async def test_different_people_with_a_common_name_stay_apart(client: AsyncTestClient) -> None:
    a = await put(
        client,
        "hcm",
        "worker",
        "H-201",
        {"given_name": "Anna", "family_name": "Schmidt", "date_of_birth": "1990-01-05"},
    )
    b = await put(
        client,
        "hcm",
        "worker",
        "H-202",
        {"given_name": "Anna", "family_name": "Schmidt", "date_of_birth": "1971-11-23"},
    )
    assert a["golden_id"] != b["golden_id"]


async def test_an_uncertain_match_opens_a_review_task_instead_of_linking(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    base = {
        "given_name": "Katarzyna",
        "family_name": "Wieczorek-Lindqvist",
        "address": {"city": "Freiburg", "country": "DE"},
    }
    first = await put(client, "hcm", "worker", "H-301", {**base, "date_of_birth": "1979-06-02"})
    # The same full name, no birth date, no town: enough to ask, not to link.
    second = await put(client, "psa", "worker", "R-301", {**base, "address": {"country": "DE"}})
    assert second["golden_id"] != first["golden_id"]
    assert second["review"] == [first["golden_id"]]

    tasks = (await client.get("/v1/reviews", params={"entity": "worker"})).json()["tasks"]
    task = next(t for t in tasks if t["source_id"] == "R-301")
    assert task["golden_id"] == second["golden_id"]
    assert task["candidate_id"] == first["golden_id"]
    assert task["reason"] == "review_band" and task["status"] == "open"
    assert 0.5 <= task["probability"] < 0.99
    assert {f["field"] for f in task["explanation"]["fields"]} >= {"given_name", "family_name"}


async def test_match_search_ranks_candidates_and_stores_nothing(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    acme = await put(
        client,
        "crm",
        "customer",
        "ACC-MATCH-1",
        {
            "name": "Brightwater Engineering GmbH",
            "website": "https://brightwater-eng.de",
            "address": {"city": "Hamburg", "postal_code": "20095", "country": "DE"},
        },
    )
    before = (await db.execute(text("SELECT count(*) FROM source_record"))).scalar_one()
    response = await client.post(
        "/v1/match/customer",
        json={
            "attributes": {
                "name": "BRIGHTWATER ENGINEERING",
                "website": "brightwater-eng.de",
                "address": {"city": "Hamburg", "postal_code": "20095", "country": "DE"},
            }
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "link" and body["golden_id"] == acme["golden_id"]
    assert body["candidates"][0]["golden_id"] == acme["golden_id"]
    assert body["candidates"][0]["band"] == "auto_link"
    assert body["model_version"] == 1
    after = (await db.execute(text("SELECT count(*) FROM source_record"))).scalar_one()
    assert after == before

    nothing = await client.post(
        "/v1/match/customer", json={"attributes": {"name": "Zyx Quantum Bakery"}}
    )
    assert nothing.json()["decision"] == "new"
    bad = await client.post("/v1/match/customer", json={"attributes": {"name": 5}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "$.attributes.name"
    unknown = await client.post("/v1/match/vendor", json={"attributes": {"name": "x"}})
    assert unknown.status_code == 404


async def test_concurrent_near_duplicates_make_one_golden_record(
    client: AsyncTestClient, database_url: str
) -> None:
    """Twenty transactions at once on their own connections (ARCHITECTURE.md invariant 4).

    Without the locks on the blocking keys every transaction looks for candidates
    before any has committed, and several golden records come out (checked: with
    the blocking-key locks taken out, this test fails).
    """
    variants = [
        {"given_name": g, "family_name": f, "date_of_birth": "1966-09-30"}
        for g, f in [
            ("Theodora", "Vasquez-Holloway"),
            ("Theodora", "Vasquez Holloway"),
            ("theodora", "vasquez-holloway"),
            ("Theodora", "Vasqez-Holloway"),
            ("THEODORA", "VASQUEZ-HOLLOWAY"),
        ]
    ]
    rules = load_rules()
    engine = make_engine(database_url, pool_size=20)

    async def one(i: int) -> str:
        async with engine.begin() as conn:
            (result,) = await ingest_records(
                SqlUnitOfWork(conn),
                rules,
                "worker",
                ["hcm", "psa", "erp"][i % 3],
                [IncomingRecord(f"conc-{i}", variants[i % len(variants)])],
                RequestContext(),
            )
        assert isinstance(result, Accepted)
        return result.golden_id

    try:
        golden_ids = await asyncio.gather(*(one(i) for i in range(20)))
    finally:
        await engine.dispose()
    assert len(set(golden_ids)) == 1, golden_ids


async def test_mdm_train_stores_a_new_model_version_that_later_links_use(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    people = [
        ("Ada", "Lovelace"),
        ("Alan", "Turing"),
        ("Grace", "Hopper"),
        ("Edsger", "Dijkstra"),
        ("Barbara", "Liskov"),
        ("Donald", "Knuth"),
        ("Frances", "Allen"),
        ("John", "Backus"),
        ("Margaret", "Hamilton"),
        ("Ken", "Thompson"),
        ("Radia", "Perlman"),
        ("Tony", "Hoare"),
    ]
    for i, (given, family) in enumerate(people):
        dob = f"19{50 + i}-0{1 + i % 9}-1{i % 9}"
        await put(
            client,
            "hcm",
            "worker",
            f"T-{i}",
            {"given_name": given, "family_name": family, "date_of_birth": dob},
        )
        await put(
            client,
            "psa",
            "worker",
            f"P-{i}",
            {
                "given_name": given[0] + given[1:].lower(),
                "family_name": family + "e" * (i % 2),
                "date_of_birth": dob,
            },
        )
    env = {**os.environ, "MDM_DATABASE_URL": database_url, "MDM_NATS_URL": "nats://127.0.0.1:1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdm.cli",
        "train",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "worker model version 2" in out.decode(), out.decode()
    versions = (
        await db.execute(
            text("SELECT version, trained_on FROM match_model WHERE entity = 'worker'")
        )
    ).all()
    assert sorted(versions) == [(1, None), (2, 24)]

    client.app.state.hub.rules.models.forget()  # the app would see it within its cache TTL
    late = await put(
        client,
        "erp",
        "worker",
        "V-0",
        {"given_name": "Ada", "family_name": "Lovelace", "date_of_birth": "1950-01-10"},
    )
    links = (await client.get(f"/v1/golden/worker/{late['golden_id']}/links")).json()["links"]
    assert {link["source"]: link["model_version"] for link in links}["erp"] == 2


async def test_a_record_matching_two_golden_records_that_match_each_other_merges_them(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    anna = {"given_name": "Annika", "family_name": "Berglund-Moreau", "date_of_birth": "1980-01-07"}
    a = await put(client, "hcm", "worker", "H-A", anna)
    b = await put(client, "erp", "worker", "E-B", {"family_name": "Placeholder"})
    assert b["golden_id"] != a["golden_id"]
    # ERP corrects its record; an update keeps its golden record, so now two match.
    await put(client, "erp", "worker", "E-B", {**anna, "email": "annika@example.com"})

    c = await put(client, "psa", "worker", "P-C", anna)
    assert c["golden_id"] == a["golden_id"]  # the older golden record survives
    assert c["review"] == []
    moved = await client.get(f"/v1/golden/worker/{b['golden_id']}", follow_redirects=False)
    assert moved.status_code == 301
    xrefs = (await client.get("/v1/xref/worker/erp/E-B")).json()
    assert xrefs["golden_id"] == a["golden_id"]
    merge = (
        await db.execute(text("SELECT survivor_id, loser_ids, actor, reason FROM merge_event"))
    ).one()
    assert (merge.survivor_id, merge.loser_ids, merge.actor) == (
        a["golden_id"],
        [b["golden_id"]],
        "matcher",
    )
    assert "psa:P-C matched both" in merge.reason
    types = dict(
        (
            await db.execute(
                text(
                    "SELECT golden_id, type FROM outbox "
                    "WHERE type IN ('golden.merged', 'golden.lost_merge')"
                )
            )
        ).all()
    )
    assert types == {a["golden_id"]: "golden.merged", b["golden_id"]: "golden.lost_merge"}

    # A steward undoes it: ERP's record goes back to its id and stays apart ...
    undone = await client.post(
        f"/v1/golden/worker/{a['golden_id']}/unmerge",
        json={"records": [{"source": "erp", "source_id": "E-B"}], "actor": "steward.kim"},
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["restored"] is True
    # ... so a record matching both again neither merges them nor asks about them again.
    d = await put(client, "psa", "worker", "P-D", anna)
    assert d["golden_id"] in {a["golden_id"], b["golden_id"]}
    assert d["review"] == []
    count = (await db.execute(text("SELECT count(*) FROM merge_event"))).scalar_one()
    assert count == 1
    tasks = (await db.execute(text("SELECT count(*) FROM review_task"))).scalar_one()
    assert tasks == 0


async def test_candidate_members_are_read_for_more_golden_ids_than_a_statement_has_parameters(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    """A batch of 1,000 can name up to 40,000 candidate golden records (40 a record);
    PostgreSQL's protocol takes at most 32,767 parameters a statement, so the ids go
    as one array, not one parameter each."""
    stored = await put(client, "hcm", "worker", "H-many", WORKER)
    others = [f"wrk_none{i:06d}" for i in range(40_000)]
    found = await MatchStore(db).members([*others, stored["golden_id"]])
    assert list(found) == [stored["golden_id"]]
    (member,) = found[stored["golden_id"]]
    assert member.source_id == "H-many"
    assert member.features["family_name"]["v"] == "okonkwo brandt"


async def test_a_failed_matching_read_is_an_error_the_api_maps_like_its_other_statements(
    database_url: str,
) -> None:
    """The candidate reads go to asyncpg directly (fetch_rows): a bad statement is a
    DBAPIError (a 500), a connection the server ended is 'database unavailable' (503)."""
    engine = make_engine(database_url, pool_size=1)
    other = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as bad:
                await fetch_rows(conn, "SELECT * FROM no_such_table")
            assert not database_unavailable(bad.value)
        conn = await engine.connect()
        try:
            await conn.begin()
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with other.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(DBAPIError) as gone:
                await MatchStore(conn).members(["wrk_any"])
            assert database_unavailable(gone.value)
        finally:
            with contextlib.suppress(DBAPIError):  # its rollback finds the connection gone
                await conn.close()
    finally:
        await engine.dispose()
        await other.dispose()


async def test_the_training_sample_does_not_depend_on_where_rows_are_stored(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    # Merges and updates rewrite source_record rows, which moves them in the
    # table; the same held records must still give the same sample, in the same
    # order, or `mdm train` fits another model for the same data.
    for i in range(24):
        await put(
            client,
            "hcm",
            "worker",
            f"S-{i}",
            {"given_name": f"Given{i}", "family_name": f"Family{i}", "date_of_birth": "1980-01-01"},
        )
    store = MatchStore(db)
    # A table scan, as on a table of one entity: the rows in their stored order.
    await db.execute(text("SET LOCAL enable_indexscan = off"))
    await db.execute(text("SET LOCAL enable_bitmapscan = off"))
    before = await store.sample_features("worker", 100, seed=0.5)
    await db.execute(
        text(
            "UPDATE source_record SET version = version "
            "WHERE entity = 'worker' AND source_id IN ('S-0', 'S-3', 'S-7', 'S-12', 'S-20')"
        )
    )
    after = await store.sample_features("worker", 100, seed=0.5)
    await db.rollback()
    assert len(before) == 24
    assert after == before
    assert await store.sample_features("worker", 100, seed=0.25) != before  # the seed counts
