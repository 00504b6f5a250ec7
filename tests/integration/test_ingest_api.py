"""Ingestion through the HTTP API against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.settings import Settings
from tests.integration.live_hub import serving
from tests.integration.prometheus_text import samples

ACME_CRM = {
    "attributes": {
        "name": "Acme Consulting GmbH",
        "tax_id": "DE136695976",
        "tax_country": "DE",
        "phone": "030 1234567",
        "address": {"city": "Berlin", "country": "Germany"},
    },
    "source_updated_at": "2026-10-01T09:00:00Z",
}
ACME_ERP = {
    "attributes": {
        "name": "ACME CONSULTING",
        "tax_id": "DE 136 695 976",
        "email": "Billing@Acme-Consulting.de",
    },
    "source_updated_at": "2026-11-01T09:00:00Z",
}


async def count(db: AsyncConnection, table: str) -> int:
    return (await db.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def test_same_customer_from_crm_and_erp_gets_one_golden_id(client: AsyncTestClient) -> None:
    crm = await client.put("/v1/sources/crm/customer/ACC-1001", json=ACME_CRM)
    erp = await client.put("/v1/sources/erp/customer/C-77", json=ACME_ERP)
    assert crm.status_code == 200, crm.text
    assert erp.status_code == 200, erp.text
    assert crm.json()["outcome"] == "created"
    assert erp.json()["outcome"] == "linked"
    golden_id = crm.json()["golden_id"]
    assert erp.json()["golden_id"] == golden_id
    assert erp.json()["version"] == 2

    xref = (await client.get("/v1/xref/customer/crm/ACC-1001")).json()
    assert xref["golden_id"] == golden_id
    assert {(x["source"], x["source_id"]) for x in xref["xrefs"]} == {
        ("crm", "ACC-1001"),
        ("erp", "C-77"),
    }

    golden = (await client.get(f"/v1/golden/customer/{golden_id}")).json()
    # CRM is the system of record for customers: its name wins although ERP's is newer.
    assert golden["attributes"]["name"] == "Acme Consulting GmbH"
    assert golden["provenance"]["name"] == {
        "source": "crm",
        "source_id": "ACC-1001",
        "rule": "source_priority",
    }
    # Only ERP has an e-mail: the next source in the customer's priority list gives it.
    assert golden["attributes"]["email"] == "billing@acme-consulting.de"
    assert golden["provenance"]["email"] == {
        "source": "erp",
        "source_id": "C-77",
        "rule": "source_priority",
    }
    assert golden["attributes"]["phone"] == "+49301234567"
    assert golden["attributes"]["address"]["country"] == "DE"
    assert golden["attributes"]["tax_id"] in {"DE136695976", "136695976"}
    assert golden["status"] == "active"
    assert golden["version"] == 2


async def test_replayed_content_is_unchanged_and_writes_nothing(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    first = await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)
    events = await count(db, "outbox")
    again = await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)
    assert again.json()["outcome"] == "unchanged"
    assert again.json()["version"] == first.json()["version"] == 1
    assert await count(db, "outbox") == events == 1
    assert await count(db, "golden_record_history") == 1


async def test_update_bumps_version_and_writes_one_event_per_change(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)
    changed = {**ACME_CRM, "attributes": {**ACME_CRM["attributes"], "industry": "Software"}}
    response = await client.put("/v1/sources/crm/customer/ACC-1", json=changed)
    assert response.json() == {
        "golden_id": response.json()["golden_id"],
        "outcome": "linked",
        "version": 2,
        "warnings": [],
        "match_probability": None,  # an update keeps its golden record; no model decided
        "review": [],
    }
    rows = (await db.execute(text("SELECT type, version, envelope FROM outbox ORDER BY id"))).all()
    assert [(r.type, r.version) for r in rows] == [("golden.created", 1), ("golden.updated", 2)]
    envelope = rows[1].envelope
    assert envelope["payload"]["changed"] == ["industry"]
    assert envelope["payload"]["attributes"]["industry"] == "Software"
    assert envelope["causation"] == {"kind": "source_record", "source": "crm", "source_id": "ACC-1"}
    assert envelope["golden_id"] == response.json()["golden_id"]


async def test_correlation_id_header_is_carried_into_the_event(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    await client.put(
        "/v1/sources/crm/customer/ACC-1", json=ACME_CRM, headers={"X-Correlation-ID": "sync-run-42"}
    )
    envelope = (await db.execute(text("SELECT envelope FROM outbox"))).scalar_one()
    assert envelope["correlation_id"] == "sync-run-42"


async def test_delete_recomputes_then_retires(client: AsyncTestClient, db: AsyncConnection) -> None:
    crm = (await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)).json()
    await client.put("/v1/sources/erp/customer/C-77", json=ACME_ERP)
    golden_id = crm["golden_id"]

    gone = await client.delete("/v1/sources/erp/customer/C-77")
    assert gone.status_code == 200, gone.text
    assert gone.json()["outcome"] == "deleted"
    golden = (await client.get(f"/v1/golden/customer/{golden_id}")).json()
    assert golden["status"] == "active"
    assert "email" not in golden["attributes"]  # only ERP had it
    assert [x["source"] for x in golden["xrefs"]] == ["crm"]

    last = await client.delete("/v1/sources/crm/customer/ACC-1")
    assert last.json()["outcome"] == "deleted"
    golden = (await client.get(f"/v1/golden/customer/{golden_id}")).json()
    assert golden["status"] == "retired"
    assert golden["xrefs"] == []
    types = (await db.execute(text("SELECT type FROM outbox ORDER BY id"))).scalars().all()
    assert types == ["golden.created", "golden.updated", "golden.updated", "golden.retired"]

    again = await client.delete("/v1/sources/crm/customer/ACC-1")
    assert again.json()["outcome"] == "unchanged"
    missing = await client.delete("/v1/sources/crm/customer/NOPE")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_a_deleted_record_that_comes_back_gets_its_golden_id_back(
    client: AsyncTestClient,
) -> None:
    first = await client.put("/v1/sources/psa/customer/cl-1", json={"attributes": {"name": "X"}})
    await client.delete("/v1/sources/psa/customer/cl-1")
    back = await client.put("/v1/sources/psa/customer/cl-1", json={"attributes": {"name": "X"}})
    assert back.json()["golden_id"] == first.json()["golden_id"]
    golden = (await client.get(f"/v1/golden/customer/{first.json()['golden_id']}")).json()
    assert golden["status"] == "active"


async def test_invalid_optional_value_is_kept_raw_with_a_warning(client: AsyncTestClient) -> None:
    body = {"attributes": {"name": "Globex", "phone": "not a phone", "email": "nope"}}
    response = await client.put("/v1/sources/crm/customer/G-1", json=body)
    assert response.status_code == 200
    paths = {w["path"] for w in response.json()["warnings"]}
    assert {"phone", "email"} <= paths
    golden = (await client.get(f"/v1/golden/customer/{response.json()['golden_id']}")).json()
    assert golden["attributes"]["phone"] == "not a phone"
    assert golden["attributes"]["email"] == "nope"


async def test_workers_link_on_email_across_hcm_and_psa(client: AsyncTestClient) -> None:
    hcm = await client.put(
        "/v1/sources/hcm/worker/E-100",
        json={
            "attributes": {
                "family_name": "Müller",
                "given_name": "Anna",
                "email": "anna.mueller@example.com",
                "date_of_birth": "1990-02-03",
                "cost_rate": {"amount": "85.50", "currency": "eur"},
            }
        },
    )
    psa = await client.put(
        "/v1/sources/psa/worker/res-5",
        json={
            "attributes": {
                "family_name": "Mueller",
                "given_name": "Anna",
                "email": "Anna.Mueller@Example.com",
            }
        },
    )
    assert hcm.status_code == 200, hcm.text
    assert psa.json()["golden_id"] == hcm.json()["golden_id"]
    golden = (await client.get(f"/v1/golden/worker/{hcm.json()['golden_id']}")).json()
    assert golden["attributes"]["family_name"] == "Müller"  # HCM owns workers
    assert golden["attributes"]["cost_rate"] == {"amount": "85.50", "currency": "EUR"}
    assert golden["attributes"]["date_of_birth"] == "1990-02-03"


async def test_batch_answers_each_record_in_order(client: AsyncTestClient) -> None:
    items = [
        {"source_id": "r1", "attributes": {"family_name": "Doe", "email": "jd@example.com"}},
        {"source_id": "r2", "attributes": {"family_name": 42}},
        {"source_id": "r3", "attributes": {"family_name": "Doe", "email": "JD@example.com"}},
        {"source_id": "r4", "attributes": {"family_name": "   "}},
        {"attributes": {"family_name": "NoId"}},
        {"source_id": "r5", "attributes": {"family_name": "Roe"}, "extra": 1},
    ]
    response = await client.post("/v1/sources/psa/worker/batch", json=items)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 4
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r["status"] for r in results] == [200, 422, 200, 422, 422, 422]
    assert results[0]["outcome"] == "created"
    assert results[2]["outcome"] == "linked"
    assert results[2]["golden_id"] == results[0]["golden_id"]  # matched within the batch
    assert results[1]["error"]["errors"][0]["path"] == "$[1].attributes.family_name"
    assert results[3]["error"]["errors"][0]["path"] == "$[3].attributes.family_name"
    assert "source_id" in results[4]["error"]["errors"][0]["message"]
    assert "extra" in results[5]["error"]["errors"][0]["message"]


async def test_batch_with_the_same_source_id_twice_keeps_the_last(client: AsyncTestClient) -> None:
    items = [
        {"source_id": "p1", "attributes": {"name": "Old name", "code": "P-1"}},
        {"source_id": "p1", "attributes": {"name": "New name", "code": "P-1"}},
    ]
    response = await client.post("/v1/sources/psa/project/batch", json=items)
    results = response.json()["results"]
    assert results[0]["golden_id"] == results[1]["golden_id"]
    golden = (await client.get(f"/v1/golden/project/{results[0]['golden_id']}")).json()
    assert golden["attributes"]["name"] == "New name"
    assert golden["xrefs"][0]["source_id"] == "p1" and len(golden["xrefs"]) == 1


async def test_batch_idempotency_key(client: AsyncTestClient, db: AsyncConnection) -> None:
    items = [{"source_id": f"c{i}", "attributes": {"name": f"Customer {i}"}} for i in range(5)]
    headers = {"Idempotency-Key": "load-2026-11-22-part-1"}
    first = await client.post("/v1/sources/erp/customer/batch", json=items, headers=headers)
    rows = await count(db, "source_record")
    replay = await client.post("/v1/sources/erp/customer/batch", json=items, headers=headers)
    assert replay.status_code == 200
    assert replay.content == first.content
    assert replay.headers.get("idempotent-replayed") == "true"
    assert await count(db, "source_record") == rows == 5
    assert await count(db, "outbox") == 5

    other = await client.post("/v1/sources/erp/customer/batch", json=items[:2], headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]


async def test_concurrent_same_idempotency_key_does_the_work_once(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    body = {"attributes": {"name": "Umbrella plc"}}
    headers = {"Idempotency-Key": "k-1"}
    responses = await asyncio.gather(
        *[client.put("/v1/sources/crm/customer/U-1", json=body, headers=headers) for _ in range(8)]
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert await count(db, "golden_record") == 1


async def test_concurrent_near_duplicates_make_one_golden_record(
    client: AsyncTestClient, db: AsyncConnection, settings: Settings
) -> None:
    """ARCHITECTURE.md invariant 4, on strong identifiers: 24 writes sent at once to a
    real HTTP server (the in-process test client runs requests one after another), so
    the units of work of the three sources do run concurrently."""
    with serving(settings) as base:
        headers = {"X-API-Key": settings.auth.admin_key or ""}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            writes = []
            for i in range(24):
                source = ("crm", "erp", "psa")[i % 3]
                body = {
                    "attributes": {
                        "name": f"Hooli {i}",
                        "tax_id": "DE 136695976" if i % 2 else "DE136695976",
                        "tax_country": "DE",
                    }
                }
                writes.append(http.put(f"/v1/sources/{source}/customer/h-{i}", json=body))
            responses = await asyncio.gather(*writes)
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len({r.json()["golden_id"] for r in responses}) == 1
    assert await count(db, "golden_record") == 1
    # One event per version, versions without gaps (writes of one group share one).
    (latest,) = (await db.execute(text("SELECT version FROM golden_record"))).scalars()
    versions = (await db.execute(text("SELECT version FROM outbox ORDER BY version"))).scalars()
    assert list(versions) == list(range(1, latest + 1))


async def test_every_golden_version_has_one_history_row_and_one_event(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    """ARCHITECTURE.md invariants 2 and 3 (in the database; publishing is the relay's)."""
    await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)
    await client.put("/v1/sources/erp/customer/C-77", json=ACME_ERP)
    await client.put(
        "/v1/sources/erp/customer/C-77",
        json={**ACME_ERP, "attributes": {**ACME_ERP["attributes"], "website": "acme.example"}},
    )
    await client.delete("/v1/sources/crm/customer/ACC-1")
    mismatched = (
        await db.execute(
            text("""
        SELECT g.golden_id FROM golden_record g
        WHERE g.version <> (SELECT count(*) FROM outbox o WHERE o.golden_id = g.golden_id)
           OR g.version <> (SELECT count(*) FROM golden_record_history h
                            WHERE h.golden_id = g.golden_id)
           OR g.version <> (SELECT max(version) FROM outbox o WHERE o.golden_id = g.golden_id)
    """)
        )
    ).all()
    assert mismatched == []
    assert await count(db, "outbox") == 4


async def test_xref_lookup_many(client: AsyncTestClient) -> None:
    crm = (await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)).json()
    await client.put("/v1/sources/erp/customer/C-77", json=ACME_ERP)
    response = await client.post(
        "/v1/xref/lookup",
        json={
            "keys": [
                {"entity": "customer", "source": "erp", "source_id": "C-77"},
                {"entity": "customer", "source": "erp", "source_id": "missing"},
                {"entity": "worker", "source": "crm", "source_id": "ACC-1"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["found"] is True and results[0]["golden_id"] == crm["golden_id"]
    assert {x["source_id"] for x in results[0]["xrefs"]} == {"ACC-1", "C-77"}
    assert results[1] == {
        "entity": "customer",
        "source": "erp",
        "source_id": "missing",
        "found": False,
    }
    assert results[2]["found"] is False
    unknown = await client.get("/v1/xref/customer/erp/missing")
    assert unknown.status_code == 404


async def test_merged_away_golden_id_redirects_to_the_survivor(
    client: AsyncTestClient, database_url: str
) -> None:
    survivor = (await client.put("/v1/sources/crm/customer/A", json=ACME_CRM)).json()["golden_id"]
    loser = (
        await client.put("/v1/sources/psa/customer/B", json={"attributes": {"name": "Acme"}})
    ).json()["golden_id"]
    # Merging arrives with the lifecycle work; the reader must already honour it.
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE golden_record SET status = 'merged', merged_into = :s WHERE golden_id = :l"
            ),
            {"s": survivor, "l": loser},
        )
    await engine.dispose()
    response = await client.get(f"/v1/golden/customer/{loser}", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"/v1/golden/customer/{survivor}"
    followed = await client.get(f"/v1/golden/customer/{loser}")
    assert followed.json()["golden_id"] == survivor


async def test_health_checks_postgres_and_nats(client: AsyncTestClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "nats": "ok"}


async def test_metrics_and_openapi(client: AsyncTestClient) -> None:
    await client.put("/v1/sources/crm/customer/ACC-1", json=ACME_CRM)
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'mdm_records_ingested_total{entity="customer",outcome="created",source="crm"}' in (
        metrics.text
    )
    spec = (await client.get("/schema/openapi.json")).json()
    for entity in ("customer", "worker", "project", "legal_entity"):
        assert f"/v1/sources/{{source}}/{entity}/{{source_id}}" in spec["paths"]
        assert f"/v1/sources/{{source}}/{entity}/batch" in spec["paths"]
    assert "CustomerUpsert" in spec["components"]["schemas"]


async def test_ingestion_is_counted_once_per_committed_record(client: AsyncTestClient) -> None:
    # Counted after the commit, by outcome: a replay of the same Idempotency-Key counts
    # nothing, a batch counts each record it accepted.
    created = 'mdm_records_ingested_total{entity="customer",outcome="created",source="erp"}'

    async def count() -> float:
        return samples((await client.get("/metrics")).text).get(created, 0.0)

    before = await count()
    headers = {"Idempotency-Key": "count-once"}
    for _ in range(2):
        put = await client.put("/v1/sources/erp/customer/C-77", json=ACME_CRM, headers=headers)
        assert put.status_code == 200
    assert put.headers["Idempotent-Replayed"] == "true"
    assert await count() == before + 1
    batch = [
        {"source_id": f"C-9{i}", "attributes": {"name": f"Zeta Werke {i} GmbH"}} for i in range(3)
    ]
    answer = await client.post("/v1/sources/erp/customer/batch", json=batch)
    assert answer.status_code == 200 and answer.json()["accepted"] == 3
    outcomes = [r["outcome"] for r in answer.json()["results"]]
    assert await count() == before + 1 + outcomes.count("created")


async def test_a_golden_record_holding_a_registered_id_is_still_matched(
    client: AsyncTestClient,
) -> None:
    # A registered id (PUT /v1/xref/...) has no attributes: its features were stored as
    # JSON null and read back as a member without features, a 500 for every record (and
    # match request) compared with its golden record afterwards.
    attributes = {
        "name": "Acme Consulting GmbH",
        "website": "acme.example",
        "phone": "+49 30 1234567",
        "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115"},
    }
    first = await client.put("/v1/sources/crm/customer/A", json={"attributes": attributes})
    golden_id = first.json()["golden_id"]
    registered = await client.put(f"/v1/xref/customer/{golden_id}/psa", json={"source_id": "P1"})
    assert registered.status_code == 200, registered.text
    similar = {"attributes": {**attributes, "name": "ACME Consulting"}}
    matched = await client.post("/v1/match/customer", json=similar)
    assert matched.status_code == 200, matched.text
    assert golden_id in [c["golden_id"] for c in matched.json()["candidates"]]
    ingested = await client.put("/v1/sources/erp/customer/B", json=similar)
    assert ingested.status_code == 200, ingested.text
