"""PUT /v1/xref/{entity}/{golden_id}/{source}: how a connector registers its id."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

ACME = {"attributes": {"name": "Acme Consulting GmbH", "tax_country": "DE"}}


async def _golden(client: AsyncTestClient, source_id: str = "ACC-1", body: dict = ACME) -> str:
    response = await client.put(f"/v1/sources/crm/customer/{source_id}", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["golden_id"])


async def _events(db: AsyncConnection, golden_id: str) -> list[tuple[int, str, dict]]:
    rows = await db.execute(
        text("SELECT version, type, envelope FROM outbox WHERE golden_id = :g ORDER BY version"),
        {"g": golden_id},
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_registering_links_the_id_with_an_xref_linked_event(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    golden_id = await _golden(client)
    response = await client.put(
        f"/v1/xref/customer/{golden_id}/erp",
        json={"source_id": "C-00042"},
        headers={"X-Correlation-ID": "erp-sync-1"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "entity": "customer",
        "golden_id": golden_id,
        "source": "erp",
        "source_id": "C-00042",
        "outcome": "linked",
        "version": 2,
    }
    view = (await client.get("/v1/xref/customer/crm/ACC-1")).json()
    assert {(x["source"], x["source_id"]) for x in view["xrefs"]} == {
        ("crm", "ACC-1"),
        ("erp", "C-00042"),
    }
    assert (await client.get("/v1/xref/customer/erp/C-00042")).json()["golden_id"] == golden_id

    events = await _events(db, golden_id)
    assert [(v, t) for v, t, _ in events] == [(1, "golden.created"), (2, "xref.linked")]
    envelope = events[1][2]
    assert envelope["causation"] == {
        "kind": "source_record",
        "source": "erp",
        "source_id": "C-00042",
    }
    assert envelope["correlation_id"] == "erp-sync-1"
    assert envelope["payload"]["changed"] == []
    assert {"source": "erp", "source_id": "C-00042"} in envelope["payload"]["xrefs"]
    golden = (await client.get(f"/v1/golden/customer/{golden_id}")).json()
    assert golden["attributes"]["name"] == "Acme Consulting GmbH"  # survivorship unchanged


async def test_registering_again_changes_nothing(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    golden_id = await _golden(client)
    first = await client.put(f"/v1/xref/customer/{golden_id}/erp", json={"source_id": "C-1"})
    again = await client.put(f"/v1/xref/customer/{golden_id}/erp", json={"source_id": "C-1"})
    assert first.json()["outcome"] == "linked"
    assert again.json()["outcome"] == "unchanged"
    assert again.json()["version"] == 2
    assert len(await _events(db, golden_id)) == 2


async def test_a_later_full_record_from_the_erp_stays_on_that_golden_record(
    client: AsyncTestClient,
) -> None:
    golden_id = await _golden(client)
    await client.put(f"/v1/xref/customer/{golden_id}/erp", json={"source_id": "C-1"})
    full = await client.put(
        "/v1/sources/erp/customer/C-1", json={"attributes": {"name": "ACME CONSULTING"}}
    )
    assert full.status_code == 200
    assert (full.json()["golden_id"], full.json()["outcome"]) == (golden_id, "linked")


async def test_conflicts_and_refusals(client: AsyncTestClient) -> None:
    golden_id = await _golden(client)
    other = await _golden(client, "ACC-2", {"attributes": {"name": "Globex"}})
    ok = await client.put(f"/v1/xref/customer/{golden_id}/erp", json={"source_id": "C-1"})
    assert ok.status_code == 200

    elsewhere = await client.put(f"/v1/xref/customer/{other}/erp", json={"source_id": "C-1"})
    assert elsewhere.status_code == 409
    assert golden_id in elsewhere.json()["detail"]

    cases = [
        (f"/v1/xref/customer/{golden_id}/hcm", {"source_id": "X"}, 403),  # reference_only
        (f"/v1/xref/customer/{golden_id}/nope", {"source_id": "X"}, 404),  # unknown source
        ("/v1/xref/customer/cus_missing/erp", {"source_id": "X"}, 404),
        (f"/v1/xref/worker/{golden_id}/erp", {"source_id": "X"}, 404),  # wrong entity
        (f"/v1/xref/customer/{golden_id}/erp", {"source_id": ""}, 422),
        (f"/v1/xref/customer/{golden_id}/erp", {"source_id": "X", "extra": 1}, 422),
    ]
    for path, body, status in cases:
        response = await client.put(path, json=body)
        assert response.status_code == status, (path, body, response.text)

    # A retired golden record takes no new links.
    await client.delete("/v1/sources/crm/customer/ACC-2")
    retired = await client.put(f"/v1/xref/customer/{other}/erp", json={"source_id": "C-9"})
    assert retired.status_code == 409
