"""Merge, unmerge, history and as-of reads through the API, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support import MakeClient

STEWARD = {"actor": "steward.anna", "reason": "same company, confirmed by phone"}


async def put(client: AsyncTestClient, source: str, source_id: str, attrs: dict) -> dict:
    response = await client.put(
        f"/v1/sources/{source}/customer/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def xref_set(client: AsyncTestClient, golden_id: str) -> set[tuple[str, str]]:
    golden = (await client.get(f"/v1/golden/customer/{golden_id}")).json()
    return {(x["source"], x["source_id"]) for x in golden["xrefs"]}


async def test_merge_moves_xrefs_redirects_and_events(
    client: AsyncTestClient, db: AsyncConnection, make_client: MakeClient
) -> None:
    a = await put(client, "crm", "A", {"name": "Acme GmbH", "phone": "+49 30 1234567"})
    b = await put(client, "psa", "B", {"name": "Acme", "email": "info@acme.example"})
    c = await put(client, "erp", "C", {"name": "ACME"})
    steward = await make_client("steward", name="anna")
    response = await steward.post(
        "/v1/golden/customer/merge",
        json={
            "survivor_id": a["golden_id"],
            "loser_ids": [b["golden_id"], c["golden_id"]],
            "reason": STEWARD["reason"],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["survivor_id"] == a["golden_id"] and body["moved_source_records"] == 2
    assert body["version"] == 2

    assert await xref_set(client, a["golden_id"]) == {("crm", "A"), ("psa", "B"), ("erp", "C")}
    golden = (await client.get(f"/v1/golden/customer/{a['golden_id']}")).json()
    assert golden["attributes"]["name"] == "Acme GmbH"  # CRM owns customers
    assert golden["attributes"]["email"] == "info@acme.example"
    redirect = await client.get(f"/v1/golden/customer/{b['golden_id']}", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"].endswith(a["golden_id"])
    lookup = (await client.get("/v1/xref/customer/psa/B")).json()
    assert lookup["golden_id"] == a["golden_id"]

    rows = (
        await db.execute(
            text(
                "SELECT golden_id, type, version, envelope FROM outbox "
                "WHERE type IN ('golden.merged', 'golden.lost_merge') ORDER BY golden_id"
            )
        )
    ).all()
    types = {r.golden_id: r.type for r in rows}
    assert types == {
        a["golden_id"]: "golden.merged",
        b["golden_id"]: "golden.lost_merge",
        c["golden_id"]: "golden.lost_merge",
    }
    merged = next(r.envelope for r in rows if r.type == "golden.merged")
    assert sorted(merged["payload"]["merged_from"]) == sorted([b["golden_id"], c["golden_id"]])
    # The authenticated steward is recorded, not a name the body could claim.
    assert merged["causation"]["kind"] == "steward"
    assert merged["causation"]["actor"].startswith("anna (steward, key key_")
    assert merged["causation"]["reason"] == "same company, confirmed by phone"
    assert merged["causation"]["merge_id"] == body["merge_id"]
    lost = next(r.envelope for r in rows if r.golden_id == b["golden_id"])
    assert lost["payload"]["merged_into"] == a["golden_id"] and lost["version"] == 2


async def test_record_arriving_for_a_merged_away_golden_joins_the_survivor(
    client: AsyncTestClient,
) -> None:
    a = await put(client, "crm", "A", {"name": "Acme GmbH"})
    b = await put(
        client, "erp", "B", {"name": "Acme", "tax_id": "DE136695976", "tax_country": "DE"}
    )
    await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [b["golden_id"]], **STEWARD},
    )
    late = await put(
        client, "psa", "P", {"name": "Acme", "tax_id": "DE136695976", "tax_country": "DE"}
    )
    assert late["golden_id"] == a["golden_id"] and late["outcome"] == "linked"


async def test_unmerge_of_a_merge_restores_the_cross_references_exactly(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    a = await put(client, "crm", "A", {"name": "Acme GmbH"})
    b = await put(client, "psa", "B", {"name": "Acme Ltd"})
    await put(client, "erp", "B2", {"name": "Acme Ltd"})
    # erp B2 joins B's golden record by hand first, so B's golden has two records
    b2 = (await client.get("/v1/xref/customer/erp/B2")).json()["golden_id"]
    await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": b["golden_id"], "loser_ids": [b2], **STEWARD},
    )
    before_a = await xref_set(client, a["golden_id"])
    before_b = await xref_set(client, b["golden_id"])

    await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [b["golden_id"]], **STEWARD},
    )
    response = await client.post(
        f"/v1/golden/customer/{a['golden_id']}/unmerge",
        json={
            "records": [{"source": s, "source_id": i} for s, i in sorted(before_b)],
            "actor": "steward.ben",
            "reason": "different legal entities",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["restored"] is True and body["split_golden_id"] == b["golden_id"]
    assert await xref_set(client, a["golden_id"]) == before_a
    assert await xref_set(client, b["golden_id"]) == before_b
    restored = (await client.get(f"/v1/golden/customer/{b['golden_id']}")).json()
    assert restored["status"] == "active" and "merged_into" not in restored
    pairs = (await db.execute(text("SELECT count(*) FROM not_a_match"))).scalar_one()
    assert pairs == 2  # each split-off record against the one left behind
    types = (
        (
            await db.execute(
                text("SELECT type FROM outbox WHERE golden_id = :g ORDER BY version"),
                {"g": b["golden_id"]},
            )
        )
        .scalars()
        .all()
    )
    assert types[-2:] == ["golden.lost_merge", "golden.unmerged"]


async def test_unmerge_of_a_record_that_never_merged_gets_a_new_golden_id(
    client: AsyncTestClient,
) -> None:
    first = await put(
        client, "crm", "A", {"name": "Acme", "tax_id": "DE136695976", "tax_country": "DE"}
    )
    await put(
        client, "erp", "X", {"name": "Acme Services", "tax_id": "DE136695976", "tax_country": "DE"}
    )  # a sister company filed under Acme's tax id: the strong key links it
    response = await client.post(
        f"/v1/golden/customer/{first['golden_id']}/unmerge",
        json={"records": [{"source": "erp", "source_id": "X"}], "actor": "steward.ben"},
    )
    body = response.json()
    assert body["restored"] is False and body["split_golden_id"] != first["golden_id"]
    assert await xref_set(client, body["split_golden_id"]) == {("erp", "X")}
    assert await xref_set(client, first["golden_id"]) == {("crm", "A")}


async def test_merge_and_unmerge_refuse_what_makes_no_sense(client: AsyncTestClient) -> None:
    a = await put(client, "crm", "A", {"name": "Acme"})
    b = await put(client, "psa", "B", {"name": "Acme"})
    self_merge = await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [a["golden_id"]], **STEWARD},
    )
    assert self_merge.status_code == 409
    unknown = await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": ["cus_nope"], **STEWARD},
    )
    assert unknown.status_code == 404
    no_losers = await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": []},
    )
    assert no_losers.status_code == 422
    await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [b["golden_id"]], **STEWARD},
    )
    again = await client.post(
        "/v1/golden/customer/merge",
        json={"survivor_id": a["golden_id"], "loser_ids": [b["golden_id"]], **STEWARD},
    )
    assert again.status_code == 409
    everything = await client.post(
        f"/v1/golden/customer/{a['golden_id']}/unmerge",
        json={
            "records": [{"source": "crm", "source_id": "A"}, {"source": "psa", "source_id": "B"}],
            "actor": "s",
        },
    )
    assert everything.status_code == 409
    stranger = await client.post(
        f"/v1/golden/customer/{a['golden_id']}/unmerge",
        json={"records": [{"source": "erp", "source_id": "Z"}], "actor": "s"},
    )
    assert stranger.status_code == 404


async def test_history_and_as_of(client: AsyncTestClient) -> None:
    first = await put(client, "crm", "A", {"name": "Acme", "industry": "Retail"})
    await asyncio.sleep(0.01)
    between = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.01)
    await put(client, "crm", "A", {"name": "Acme", "industry": "Software"})
    golden_id = first["golden_id"]

    history = (await client.get(f"/v1/golden/customer/{golden_id}/history")).json()
    assert [v["version"] for v in history["versions"]] == [2, 1]
    assert history["versions"][0]["changed"] == ["industry"]
    assert history["versions"][0]["cause"] == {
        "kind": "source_record",
        "source": "crm",
        "source_id": "A",
    }
    assert history["versions"][1]["event_type"] == "golden.created"

    then = await client.get(
        f"/v1/golden/customer/{golden_id}", params={"as_of": between.isoformat()}
    )
    assert then.status_code == 200, then.text
    assert then.json()["attributes"]["industry"] == "Retail" and then.json()["version"] == 1
    now = (await client.get(f"/v1/golden/customer/{golden_id}")).json()
    assert now["attributes"]["industry"] == "Software"
    before_birth = await client.get(
        f"/v1/golden/customer/{golden_id}", params={"as_of": "2000-01-01T00:00:00Z"}
    )
    assert before_birth.status_code == 404
    naive = await client.get(
        f"/v1/golden/customer/{golden_id}", params={"as_of": "2030-01-01T00:00:00"}
    )
    assert naive.status_code == 422
