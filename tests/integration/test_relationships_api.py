"""References between golden records through the API, on a real PostgreSQL.

Unmerges, deletions and registrations move references; cycles are refused;
hierarchies and data-quality exceptions are read back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.bootstrap import Hub, make_engine
from mdm.services.context import RequestContext
from mdm.services.ingest import IncomingRecord, Rejected, ingest_records
from mdm.services.lifecycle import merge_goldens


async def put(
    client: AsyncTestClient, source: str, entity: str, sid: str, attrs: dict[str, Any]
) -> dict[str, Any]:
    response = await client.put(f"/v1/sources/{source}/{entity}/{sid}", json={"attributes": attrs})
    assert response.status_code == 200, response.text
    return response.json()


async def golden(client: AsyncTestClient, entity: str, golden_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/golden/{entity}/{golden_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def envelopes(db: AsyncConnection, golden_id: str) -> list[dict[str, Any]]:
    rows = await db.execute(
        text("SELECT envelope FROM outbox WHERE golden_id = :g ORDER BY version"),
        {"g": golden_id},
    )
    return [r[0] for r in rows]


async def count(db: AsyncConnection, table: str) -> int:
    return (await db.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def test_unmerge_re_points_what_named_the_split_off_records(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    northwind = await put(client, "crm", "customer", "A-1", {"name": "Northwind Traders"})
    contoso = await put(client, "psa", "customer", "CL-1", {"name": "Contoso Pharma"})
    project = await put(client, "psa", "project", "P-1", {"name": "Audit", "customer_ref": "CL-1"})
    assert (await golden(client, "project", project["golden_id"]))["attributes"][
        "customer_ref"
    ] == contoso["golden_id"]

    merge = await client.post(
        "/v1/golden/customer/merge",
        json={
            "survivor_id": northwind["golden_id"],
            "loser_ids": [contoso["golden_id"]],
            "actor": "steward.bo",
        },
    )
    assert merge.status_code == 200, merge.text
    after_merge = await golden(client, "project", project["golden_id"])
    assert after_merge["attributes"]["customer_ref"] == northwind["golden_id"]

    unmerge = await client.post(
        f"/v1/golden/customer/{northwind['golden_id']}/unmerge",
        json={"records": [{"source": "psa", "source_id": "CL-1"}], "actor": "steward.bo"},
    )
    assert unmerge.status_code == 200, unmerge.text
    assert unmerge.json()["split_golden_id"] == contoso["golden_id"]  # the merge, undone
    after_unmerge = await golden(client, "project", project["golden_id"])
    assert after_unmerge["version"] == after_merge["version"] + 1
    assert after_unmerge["attributes"]["customer_ref"] == contoso["golden_id"]

    events = await envelopes(db, project["golden_id"])
    assert [e["version"] for e in events] == [1, 2, 3]
    assert events[1]["causation"]["merge_id"] == merge.json()["merge_id"]
    assert events[2]["causation"] == {
        "kind": "steward",
        "actor": "MDM_ADMIN_KEY (admin, key env-admin) on behalf of steward.bo",
    }
    ref = events[2]["payload"]["references"]["customer_ref"]
    assert ref["golden_id"] == contoso["golden_id"]
    assert ref["xrefs"] == [{"source": "psa", "source_id": "CL-1"}]


async def test_deleting_the_named_record_makes_the_reference_pending_and_registering_resolves(
    client: AsyncTestClient,
) -> None:
    employer = await put(client, "hcm", "legal_entity", "LE-1", {"name": "Initech UK Ltd"})
    worker = await put(
        client, "hcm", "worker", "W-1", {"family_name": "Lumbergh", "employer_ref": "LE-1"}
    )
    assert (await golden(client, "worker", worker["golden_id"]))["attributes"][
        "employer_ref"
    ] == employer["golden_id"]

    gone = await client.delete("/v1/sources/hcm/legal_entity/LE-1")
    assert gone.status_code == 200, gone.text
    record = await golden(client, "worker", worker["golden_id"])
    assert "employer_ref" not in record["attributes"]
    pending = (await client.get("/v1/references/pending?entity=legal_entity")).json()
    assert [(p["golden_id"], p["source_id"]) for p in pending["items"]] == [
        (worker["golden_id"], "LE-1")
    ]
    assert pending["total"] == 1

    # A new legal entity from ERP; HCM then registers its id LE-1 for it.
    other = await put(client, "erp", "legal_entity", "E-9", {"name": "Initech Holdings plc"})
    registered = await client.put(
        f"/v1/xref/legal_entity/{other['golden_id']}/hcm", json={"source_id": "LE-1"}
    )
    assert registered.status_code == 200, registered.text
    record = await golden(client, "worker", worker["golden_id"])
    assert record["attributes"]["employer_ref"] == other["golden_id"]
    assert (await client.get("/v1/references/pending")).json()["total"] == 0
    translated = await client.get("/v1/xref/legal_entity/hcm/LE-1/in/erp")
    assert translated.json()["target_id"] == "E-9"


async def test_a_batch_resolves_references_among_its_own_records(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/sources/crm/customer/batch",
        json=[
            {"source_id": "SUB", "attributes": {"name": "Umbrella Labs", "parent_ref": "TOP"}},
            {"source_id": "TOP", "attributes": {"name": "Umbrella Corporation"}},
        ],
    )
    assert response.status_code == 200, response.text
    sub, top = (r["golden_id"] for r in response.json()["results"])
    assert (await golden(client, "customer", sub))["attributes"]["parent_ref"] == top
    assert (await client.get("/v1/references/pending")).json()["items"] == []


async def test_cycles_are_refused_with_the_field_and_nothing_is_stored(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    await put(client, "crm", "customer", "A", {"name": "Alpha Group", "parent_ref": "B"})
    await put(client, "crm", "customer", "B", {"name": "Beta Holdings", "parent_ref": "C"})
    before = {t: await count(db, t) for t in ("source_record", "outbox", "golden_record")}

    looping = await client.put(
        "/v1/sources/crm/customer/C",
        json={"attributes": {"name": "Gamma Partners", "parent_ref": "A"}},
    )
    assert looping.status_code == 422, looping.text
    assert looping.headers["content-type"].startswith("application/problem+json")
    assert looping.json()["errors"][0]["path"] == "$.attributes.parent_ref"
    assert {t: await count(db, t) for t in before} == before

    itself = await client.put(
        "/v1/sources/hcm/worker/W-1",
        json={"attributes": {"family_name": "Ng", "manager_ref": "W-1"}},
    )
    assert itself.status_code == 422, itself.text
    assert itself.json()["errors"][0]["path"] == "$.attributes.manager_ref"

    # A merge that would make a customer its own parent is refused alike.
    parent = (await put(client, "crm", "customer", "P", {"name": "Parent Holding"}))["golden_id"]
    child = (await put(client, "crm", "customer", "K", {"name": "Kid Limited", "parent_ref": "P"}))[
        "golden_id"
    ]
    before = {t: await count(db, t) for t in before}
    merge = await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": parent, "loser_ids": [child], "actor": "steward.ed"},
    )
    assert merge.status_code == 422, merge.text
    assert merge.json()["errors"][0]["path"] == "$.attributes.parent_ref"
    assert {t: await count(db, t) for t in before} == before

    # The same record without the loop is accepted, and what was there before is intact.
    fine = await put(client, "crm", "customer", "C", {"name": "Gamma Partners"})
    chain = (
        await client.get(f"/v1/golden/customer/{fine['golden_id']}/related?relation=children")
    ).json()
    assert [i["attributes"]["name"] for i in chain["items"]] == ["Beta Holdings", "Alpha Group"]
    assert [i["depth"] for i in chain["items"]] == [1, 2]


async def test_hierarchies_up_down_and_group(client: AsyncTestClient) -> None:
    top = await put(client, "hcm", "legal_entity", "G", {"name": "Stark Industries Group"})
    de = await put(client, "hcm", "legal_entity", "DE", {"name": "Stark GmbH", "parent_ref": "G"})
    uk = await put(client, "hcm", "legal_entity", "UK", {"name": "Stark Ltd", "parent_ref": "G"})
    ber = await put(
        client, "hcm", "legal_entity", "BER", {"name": "Stark Berlin GmbH", "parent_ref": "DE"}
    )
    ceo = await put(client, "hcm", "worker", "1", {"family_name": "Stark", "employer_ref": "G"})
    cto = await put(
        client,
        "hcm",
        "worker",
        "2",
        {"family_name": "Potts", "manager_ref": "1", "employer_ref": "DE"},
    )
    dev = await put(client, "hcm", "worker", "3", {"family_name": "Banner", "manager_ref": "2"})

    async def related(entity: str, golden_id: str, relation: str, depth: int = 10) -> list:
        response = await client.get(
            f"/v1/golden/{entity}/{golden_id}/related?relation={relation}&depth={depth}"
        )
        assert response.status_code == 200, response.text
        return [(i["golden_id"], i["depth"]) for i in response.json()["items"]]

    assert await related("legal_entity", ber["golden_id"], "parents") == [
        (de["golden_id"], 1),
        (top["golden_id"], 2),
    ]
    assert await related("legal_entity", ber["golden_id"], "parents", depth=1) == [
        (de["golden_id"], 1)
    ]
    assert sorted(await related("legal_entity", top["golden_id"], "children")) == sorted(
        [(de["golden_id"], 1), (uk["golden_id"], 1), (ber["golden_id"], 2)]
    )
    first = await client.get(
        f"/v1/golden/legal_entity/{top['golden_id']}/related?relation=children&limit=2"
    )
    assert [i["depth"] for i in first.json()["items"]] == [1, 1]  # nearest first
    group = await related("legal_entity", uk["golden_id"], "group")
    assert group[0] == (top["golden_id"], 0)
    assert {g for g, _ in group} == {
        top["golden_id"],
        de["golden_id"],
        uk["golden_id"],
        ber["golden_id"],
    }
    assert await related("worker", dev["golden_id"], "managers") == [
        (cto["golden_id"], 1),
        (ceo["golden_id"], 2),
    ]
    assert sorted(await related("worker", ceo["golden_id"], "reports")) == sorted(
        [(cto["golden_id"], 1), (dev["golden_id"], 2)]
    )
    assert await related("legal_entity", de["golden_id"], "employees") == [(cto["golden_id"], 1)]

    wrong = await client.get(f"/v1/golden/worker/{dev['golden_id']}/related?relation=children")
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["path"] == "query:relation"
    missing = await client.get("/v1/golden/worker/wrk_nope/related?relation=managers")
    assert missing.status_code == 404


async def test_data_quality_exceptions_flag_and_keep_the_data(client: AsyncTestClient) -> None:
    le = await put(client, "erp", "legal_entity", "LE", {"name": "Wayne Enterprises Ltd"})
    # References are in the referring system's own ids: ERP's customer C, PSA's resource R-7.
    customer = await put(
        client, "erp", "customer", "C", {"name": "Gotham Bank", "status": "inactive"}
    )
    gone = await put(
        client,
        "hcm",
        "worker",
        "W-1",
        {
            "family_name": "Crane",
            "status": "terminated",
            "cost_rate": {"amount": "90", "currency": "USD"},
        },
    )
    report = await put(
        client,
        "hcm",
        "worker",
        "W-2",
        {
            "family_name": "Gordon",
            "manager_ref": "W-1",
            "cost_rate": {"amount": 80, "currency": "USD"},
        },
    )
    registered = await client.put(
        f"/v1/xref/worker/{gone['golden_id']}/psa", json={"source_id": "R-7"}
    )
    assert registered.status_code == 200, registered.text
    flagged = await put(
        client,
        "erp",
        "project",
        "P-1",
        {"name": "Vault upgrade", "customer_ref": "C", "legal_entity_ref": "LE"},
    )
    await put(
        client, "psa", "project", "P-2", {"name": "Arkham review", "project_manager_ref": "R-7"}
    )
    fine = await put(
        client, "erp", "project", "P-3", {"name": "Tower lights", "legal_entity_ref": "LE"}
    )
    del fine

    body = (await client.get("/v1/exceptions")).json()
    found = {(i["rule"], i["golden_id"]) for i in body["items"]}
    p2 = (await client.get("/v1/xref/project/psa/P-2")).json()["golden_id"]
    assert found == {
        ("project_customer_inactive", flagged["golden_id"]),
        ("terminated_manager", report["golden_id"]),
        ("terminated_project_manager", p2),
        ("project_without_legal_entity", p2),  # PSA's project names no legal entity
    }
    assert body["total"] == 4
    assert body["counts"] == {
        "project_customer_inactive": 1,
        "terminated_project_manager": 1,
        "terminated_manager": 1,
        "project_without_legal_entity": 1,
        "worker_without_cost_rate": 0,
    }
    inactive = next(i for i in body["items"] if i["rule"] == "project_customer_inactive")
    assert inactive["related_golden_id"] == customer["golden_id"]
    assert inactive["field"] == "customer_ref"

    # Filters and paging.
    only = (await client.get("/v1/exceptions?rule=terminated_manager")).json()
    assert [i["golden_id"] for i in only["items"]] == [report["golden_id"]]
    assert only["total"] == 1
    workers = (await client.get("/v1/exceptions?entity=worker")).json()
    assert {i["rule"] for i in workers["items"]} == {"terminated_manager"}
    mine = (await client.get(f"/v1/exceptions?golden_id={p2}")).json()
    assert mine["total"] == 2
    page = (await client.get("/v1/exceptions?limit=3&offset=3")).json()
    assert len(page["items"]) == 1 and page["total"] == 4
    bad = await client.get("/v1/exceptions?rule=nonsense")
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "query:rule"

    # A worker without a cost rate is flagged, and kept.
    bare = await put(client, "hcm", "worker", "W-3", {"family_name": "Bullock"})
    rate = (await client.get("/v1/exceptions?rule=worker_without_cost_rate")).json()
    assert [i["golden_id"] for i in rate["items"]] == [bare["golden_id"]]
    assert (await golden(client, "worker", bare["golden_id"]))["status"] == "active"
    # Every flagged record is still there, as it was sent.
    assert (await golden(client, "worker", gone["golden_id"]))["attributes"]["status"] == (
        "terminated"
    )
    assert (await golden(client, "legal_entity", le["golden_id"]))["status"] == "active"


async def test_translation_refusals(client: AsyncTestClient) -> None:
    await put(client, "crm", "customer", "A-1", {"name": "Soylent Corp"})
    unknown_system = await client.get("/v1/xref/customer/crm/A-1/in/sap")
    assert unknown_system.status_code == 404
    not_yet = await client.get("/v1/xref/customer/crm/A-1/in/erp")
    assert not_yet.status_code == 404
    assert "erp does not know" in not_yet.json()["detail"]
    unknown_record = await client.get("/v1/xref/customer/crm/nope/in/erp")
    assert unknown_record.status_code == 404
    assert "not known to the hub" in unknown_record.json()["detail"]
    bad = await client.post("/v1/xref/translate", json={"items": [{"entity": "customer"}]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"].startswith("$.items[0]")


# The test client runs the app on a loop of its own and blocks this one while it
# answers, so the concurrent units of work here run on the test's own engine.


@asynccontextmanager
async def engine_for(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url, pool_size=4)
    try:
        yield engine
    finally:
        await engine.dispose()


async def ingest_in(
    conn: AsyncConnection, hub: Hub, entity: str, source: str, sid: str, attrs: dict
) -> str:
    (result,) = await ingest_records(
        SqlUnitOfWork(conn),
        hub.rules,
        entity,
        source,
        [IncomingRecord(sid, attrs)],
        RequestContext(),
    )
    assert not isinstance(result, Rejected)
    return result.golden_id


async def test_a_referrer_in_flight_during_a_merge_ends_at_the_survivor(
    client: AsyncTestClient, database_url: str
) -> None:
    """The merge cannot move the named record before the referrer commits (or it would
    miss the new reference, and the referrer would keep the merged-away id)."""
    hub: Hub = client.app.state.hub
    survivor = await put(client, "crm", "customer", "S-1", {"name": "Survivor AG"})
    loser = await put(client, "psa", "customer", "L-1", {"name": "Other firm Ltd"})

    async def merge(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await merge_goldens(
                SqlUnitOfWork(conn),
                hub.rules,
                "customer",
                survivor["golden_id"],
                [loser["golden_id"]],
                "steward.cy",
                None,
                RequestContext(),
            )

    async with engine_for(database_url) as engine, engine.connect() as conn:
        tx = await conn.begin()
        project = await ingest_in(
            conn, hub, "project", "psa", "X-1", {"name": "Job", "customer_ref": "L-1"}
        )
        merging = asyncio.create_task(merge(engine))
        await asyncio.sleep(0.3)  # room for the merge to run ahead (it must wait instead)
        await tx.commit()
        await merging
    record = await golden(client, "project", project)
    assert record["attributes"]["customer_ref"] == survivor["golden_id"]
    assert record["version"] == 2


async def test_a_record_arriving_while_its_referrer_is_in_flight_resolves_it(
    client: AsyncTestClient, database_url: str
) -> None:
    hub: Hub = client.app.state.hub

    async def arrive(engine: AsyncEngine) -> str:
        async with engine.begin() as conn:
            return await ingest_in(conn, hub, "customer", "psa", "CL-2", {"name": "Late Client"})

    async with engine_for(database_url) as engine, engine.connect() as conn:
        tx = await conn.begin()
        project = await ingest_in(
            conn, hub, "project", "psa", "X-2", {"name": "Job", "customer_ref": "CL-2"}
        )
        arriving = asyncio.create_task(arrive(engine))
        await asyncio.sleep(0.3)  # room for the customer to commit first (it must wait instead)
        await tx.commit()
        customer = await arriving
    assert (await client.get("/v1/references/pending")).json()["total"] == 0
    record = await golden(client, "project", project)
    assert record["attributes"]["customer_ref"] == customer


async def test_concurrent_referrers_and_the_records_they_name_leave_nothing_pending(
    client: AsyncTestClient, database_url: str
) -> None:
    hub: Hub = client.app.state.hub

    async def write(engine: AsyncEngine, entity: str, sid: str, attrs: dict) -> str:
        async with engine.begin() as conn:
            return await ingest_in(conn, hub, entity, "psa", sid, attrs)

    async with engine_for(database_url) as engine:
        writes = []
        for i in range(12):
            project = {"name": f"Project {i}", "customer_ref": f"CL-{i}"}
            writes.append(write(engine, "project", f"P-{i}", project))
            writes.append(write(engine, "customer", f"CL-{i}", {"name": f"Client number {i}"}))
        golden_ids = await asyncio.gather(*writes)
    assert (await client.get("/v1/references/pending")).json()["total"] == 0
    for i in range(12):
        project, customer = golden_ids[2 * i], golden_ids[2 * i + 1]
        record = await golden(client, "project", project)
        assert record["attributes"]["customer_ref"] == customer


async def test_a_stewards_pin_of_a_reference_is_a_golden_id_and_follows_merges(
    client: AsyncTestClient,
) -> None:
    first = await put(client, "crm", "customer", "A", {"name": "Initrode Inc"})
    second = await put(client, "crm", "customer", "B", {"name": "Vandelay Industries"})
    project = await put(client, "psa", "project", "P", {"name": "Import", "customer_ref": "X"})
    pin = await client.put(
        f"/v1/golden/project/{project['golden_id']}/pins/customer_ref",
        json={"value": first["golden_id"], "actor": "steward.di"},
    )
    assert pin.status_code == 200, pin.text
    record = await golden(client, "project", project["golden_id"])
    assert record["attributes"]["customer_ref"] == first["golden_id"]
    assert (await client.get("/v1/references/pending")).json()["total"] == 0

    merge = await client.post(
        "/v1/golden/customer/merge",
        json={
            "survivor_id": second["golden_id"],
            "loser_ids": [first["golden_id"]],
            "actor": "steward.di",
        },
    )
    assert merge.status_code == 200, merge.text
    record = await golden(client, "project", project["golden_id"])
    assert record["attributes"]["customer_ref"] == second["golden_id"]
    children = await client.get(
        f"/v1/golden/customer/{second['golden_id']}/related?relation=projects"
    )
    assert [i["golden_id"] for i in children.json()["items"]] == [project["golden_id"]]
