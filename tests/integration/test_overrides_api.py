"""Stewards' pins and ignores through the API, on a real PostgreSQL."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support import MakeClient

STEWARD = {"actor": "steward.anna", "reason": "checked against the commercial register"}


async def put(
    client: AsyncTestClient, source: str, source_id: str, attrs: dict, entity: str = "customer"
) -> dict:
    response = await client.put(
        f"/v1/sources/{source}/{entity}/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def golden(client: AsyncTestClient, golden_id: str, entity: str = "customer") -> dict:
    response = await client.get(f"/v1/golden/{entity}/{golden_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def linked_pair(client: AsyncTestClient, tax_id: str) -> str:
    """One customer from CRM and ERP (linked by tax id); CRM is the system of record."""
    crm = await put(
        client,
        "crm",
        f"A-{tax_id}",
        {"name": "Acme Consultng GmbH", "tax_id": tax_id, "tax_country": "DE", "phone": "030 111"},
    )
    erp = await put(
        client,
        "erp",
        f"C-{tax_id}",
        {
            "name": "Acme Consulting GmbH",
            "tax_id": tax_id,
            "tax_country": "DE",
            "phone": "+49 30 222",
            "address": {"city": "Berlin", "country": "DE"},
        },
    )
    assert crm["golden_id"] == erp["golden_id"]
    return crm["golden_id"]


async def test_a_pin_wins_over_the_rules_and_later_updates_until_removed(
    client: AsyncTestClient, db: AsyncConnection, make_client: MakeClient
) -> None:
    gid = await linked_pair(client, "DE136695976")
    assert (await golden(client, gid))["attributes"]["name"] == "Acme Consultng GmbH"

    # A shared integration key acting for a named steward: both are recorded.
    tool = await make_client("steward", name="ticket-tool")
    response = await tool.put(
        f"/v1/golden/customer/{gid}/pins/name", json={"value": "Acme Consulting GmbH", **STEWARD}
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    pinned = await golden(client, gid)
    assert pinned["attributes"]["name"] == "Acme Consulting GmbH"
    assert pinned["provenance"]["name"]["rule"] == "pin"
    actor = pinned["provenance"]["name"]["actor"]
    assert actor.startswith("ticket-tool (steward, key key_")
    assert actor.endswith(") on behalf of steward.anna")
    assert pinned["version"] == response.json()["version"]

    # The system of record sends its (misspelt) name again: the pin still wins.
    await put(
        client,
        "crm",
        "A-DE136695976",
        {"name": "ACME Consultng", "tax_id": "DE136695976", "tax_country": "DE"},
    )
    assert (await golden(client, gid))["attributes"]["name"] == "Acme Consulting GmbH"

    history = (await client.get(f"/v1/golden/customer/{gid}/history")).json()["versions"]
    pin_entry = next(v for v in history if v["version"] == response.json()["version"])
    assert pin_entry["changed"] == ["name"]
    assert pin_entry["cause"] == {"kind": "steward", "actor": actor, "reason": STEWARD["reason"]}
    event = (
        await db.execute(
            text("SELECT envelope FROM outbox WHERE golden_id = :g AND version = :v"),
            {"g": gid, "v": response.json()["version"]},
        )
    ).scalar_one()
    assert event["type"] == "golden.updated"
    assert event["payload"]["changed"] == ["name"]
    assert event["causation"]["actor"] == actor

    overrides = (await client.get(f"/v1/golden/customer/{gid}/overrides")).json()
    assert [(p["attribute"], p["value"]) for p in overrides["pins"]] == [
        ("name", "Acme Consulting GmbH")
    ]

    removed = await client.delete(
        f"/v1/golden/customer/{gid}/pins/name", params={"actor": "steward.anna"}
    )
    assert removed.status_code == 200, removed.text
    after = await golden(client, gid)
    assert after["attributes"]["name"] == "ACME Consultng"  # the system of record's again
    assert after["provenance"]["name"]["source"] == "crm"
    again = await client.delete(
        f"/v1/golden/customer/{gid}/pins/name", params={"actor": "steward.anna"}
    )
    assert again.status_code == 404


async def test_an_ignored_value_stays_out_until_used_again(client: AsyncTestClient) -> None:
    gid = await linked_pair(client, "DE813495425")
    assert (await golden(client, gid))["provenance"]["phone"]["source"] == "crm"

    response = await client.put(
        f"/v1/golden/customer/{gid}/ignores",
        json={"attribute": "phone", "source": "crm", "source_id": "A-DE813495425", **STEWARD},
    )
    assert response.status_code == 200, response.text
    after = await golden(client, gid)
    assert after["attributes"]["phone"] == "+4930222"
    assert after["provenance"]["phone"]["source"] == "erp"

    # CRM sends a new phone: still ignored (the ignore belongs to CRM's record).
    await put(
        client,
        "crm",
        "A-DE813495425",
        {"name": "Acme", "tax_id": "DE813495425", "tax_country": "DE", "phone": "030 999"},
    )
    assert (await golden(client, gid))["provenance"]["phone"]["source"] == "erp"

    back = await client.delete(
        f"/v1/golden/customer/{gid}/ignores/crm/A-DE813495425/phone",
        params={"actor": "steward.anna", "reason": "CRM cleaned up"},
    )
    assert back.status_code == 200, back.text
    restored = await golden(client, gid)
    assert restored["provenance"]["phone"]["source"] == "crm"


async def test_bad_overrides_are_4xx_and_change_nothing(client: AsyncTestClient) -> None:
    gid = await linked_pair(client, "DE129273398")
    version = (await golden(client, gid))["version"]
    cases = [
        # a tax id failing its check digit, as standardization would flag it
        ("put", f"/v1/golden/customer/{gid}/pins/tax_id", {"value": "DE129273399"}, 422, "$.value"),
        ("put", f"/v1/golden/customer/{gid}/pins/name", {"value": 42}, 422, "$.value"),
        ("put", f"/v1/golden/customer/{gid}/pins/colour", {"value": "red"}, 422, "$.attribute"),
        ("put", f"/v1/golden/customer/{gid}/pins/name", {"value": "X", "oops": 1}, 422, None),
        (
            "put",
            f"/v1/golden/customer/{gid}/pins/name",
            {"value": "X", "actor": ""},
            422,
            "$.actor",
        ),
        ("put", "/v1/golden/customer/C-NOPE/pins/name", {"value": "X"}, 404, None),
        ("put", f"/v1/golden/vendor/{gid}/pins/name", {"value": "X"}, 404, None),
        (
            "put",
            f"/v1/golden/customer/{gid}/ignores",
            {"attribute": "phone", "source": "psa", "source_id": "nope"},
            404,
            None,
        ),
    ]
    for method, url, body, status, path in cases:
        body = {**STEWARD, **body}
        response = await client.request(method.upper(), url, json=body)
        assert response.status_code == status, (url, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if path is not None:
            assert path in [e["path"] for e in response.json()["errors"]], response.text
    assert (await golden(client, gid))["version"] == version


async def test_merge_inherits_pins_and_restoring_unmerge_gives_them_back(
    client: AsyncTestClient,
) -> None:
    a = await put(client, "crm", "PIN-A", {"name": "Northwind"})
    b = await put(client, "psa", "PIN-B", {"name": "Northwind Traders", "industry": "retail"})
    pin = await client.put(
        f"/v1/golden/customer/{b['golden_id']}/pins/industry",
        json={"value": "wholesale", **STEWARD},
    )
    assert pin.status_code == 200, pin.text
    merged = await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [b["golden_id"]], **STEWARD},
    )
    assert merged.status_code == 200, merged.text
    survivor = await golden(client, a["golden_id"])
    assert survivor["attributes"]["industry"] == "wholesale"
    pins = (await client.get(f"/v1/golden/customer/{a['golden_id']}/overrides")).json()["pins"]
    assert [(p["attribute"], p["inherited_from"]) for p in pins] == [("industry", b["golden_id"])]

    unmerged = await client.post(
        f"/v1/golden/customer/{a['golden_id']}/unmerge",
        json={"records": [{"source": "psa", "source_id": "PIN-B"}], **STEWARD},
    )
    assert unmerged.status_code == 200, unmerged.text
    assert unmerged.json()["restored"] is True
    assert "industry" not in (await golden(client, a["golden_id"]))["attributes"]
    assert (await golden(client, b["golden_id"]))["attributes"]["industry"] == "wholesale"
    assert (await client.get(f"/v1/golden/customer/{a['golden_id']}/overrides")).json()[
        "pins"
    ] == []


async def test_aggregated_worker_emails_and_a_pin_on_them(client: AsyncTestClient) -> None:
    hcm = await put(
        client,
        "hcm",
        "E-1",
        {
            "family_name": "Okafor",
            "given_name": "Ada",
            "employee_number": "E-1",
            "email": "ada@x.io",
        },
        "worker",
    )
    erp = await put(
        client,
        "erp",
        "V-1",
        {"family_name": "Okafor", "employee_number": "E-1", "email": "ada.okafor@x.io"},
        "worker",
    )
    assert hcm["golden_id"] == erp["golden_id"]
    worker = await golden(client, hcm["golden_id"], "worker")
    assert sorted(worker["attributes"]["email"]) == ["ada.okafor@x.io", "ada@x.io"]
    assert worker["provenance"]["email"]["rule"] == "aggregate"

    pin = await client.put(
        f"/v1/golden/worker/{hcm['golden_id']}/pins/email",
        json={"value": " Ada@X.io ", **STEWARD},
    )
    assert pin.status_code == 200, pin.text
    # Standardized like a source value, and still a list like the aggregate it replaces.
    assert (await golden(client, hcm["golden_id"], "worker"))["attributes"]["email"] == ["ada@x.io"]
