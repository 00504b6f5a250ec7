"""Issue 7's end-to-end case through the HTTP API, with the events read back from JetStream.

A project from PSA names its customer by PSA's own id before the hub knows
that customer; the customer then arrives from CRM, ERP and PSA. The project's
reference resolves, translates to ERP's id, its event carries ERP's id, and a
later merge of two customers re-points the project.
"""

from __future__ import annotations

import msgspec
from litestar.testing import AsyncTestClient
from nats.js import JetStreamContext
from sqlalchemy import text

from mdm.bootstrap import make_engine
from mdm.settings import RelaySettings
from publishers.connection import NatsLink
from publishers.relay import Relay
from schemas.events import Event
from tests.support import read_stream

_decode = msgspec.json.Decoder(Event).decode

ACME = {"name": "Acme Consulting GmbH", "tax_id": "DE136695976", "tax_country": "DE"}


async def publish_all(database_url: str, nats_url: str, settings: RelaySettings) -> int:
    """Run relay rounds on the test database until its outbox is published; the row count."""
    engine = make_engine(database_url, pool_size=1)
    link = NatsLink(nats_url, name="relationships-test")
    await link.start()
    try:
        relay = Relay(engine, link, settings)
        for _ in range(50):
            await relay.publish_pending()
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) "
                            "FROM outbox"
                        )
                    )
                ).one()
            if row[1] == 0:
                return int(row[0])
        raise AssertionError("the outbox was not published")
    finally:
        await link.close()
        await engine.dispose()


async def put(client: AsyncTestClient, source: str, entity: str, sid: str, attrs: dict) -> dict:
    response = await client.put(f"/v1/sources/{source}/{entity}/{sid}", json={"attributes": attrs})
    assert response.status_code == 200, response.text
    return response.json()


async def test_project_before_its_customer_resolves_translates_and_follows_a_merge(
    client: AsyncTestClient,
    database_url: str,
    nats_url: str,
    js: JetStreamContext,
    relay_settings: RelaySettings,
) -> None:
    # The project arrives first, naming PSA's customer id CL-9: the reference waits.
    project = await put(
        client, "psa", "project", "P-100", {"name": "ERP rollout", "customer_ref": "CL-9"}
    )
    project_id = project["golden_id"]
    pending = (await client.get("/v1/references/pending")).json()
    assert [
        (p["golden_id"], p["field"], p["entity"], p["source"], p["source_id"])
        for p in pending["items"]
    ] == [(project_id, "customer_ref", "customer", "psa", "CL-9")]
    missing = await client.get("/v1/xref/customer/psa/CL-9/in/erp")
    assert missing.status_code == 404
    assert "CL-9" in missing.json()["detail"]

    # A customer the merge will later keep, older than the project's customer.
    holding = await put(client, "crm", "customer", "ACC-0", {"name": "Acme Holding"})

    # The customer from CRM, the same from ERP, and PSA's own record of it.
    crm = await put(client, "crm", "customer", "ACC-1", ACME)
    erp = await put(client, "erp", "customer", "C-77", {**ACME, "name": "ACME CONSULTING"})
    psa = await put(client, "psa", "customer", "CL-9", {**ACME, "name": "Acme"})
    customer_id = crm["golden_id"]
    assert erp["golden_id"] == customer_id and psa["golden_id"] == customer_id

    # The project's reference resolved: a new version naming the customer's golden id.
    golden = (await client.get(f"/v1/golden/project/{project_id}")).json()
    assert golden["version"] == 2
    assert golden["attributes"]["customer_ref"] == customer_id
    assert (await client.get("/v1/references/pending")).json()["items"] == []

    # Translation: PSA's customer id in ERP's terms, one and many at once.
    one = await client.get("/v1/xref/customer/psa/CL-9/in/erp")
    assert one.status_code == 200, one.text
    assert one.json()["golden_id"] == customer_id
    assert one.json()["target_id"] == "C-77"
    many = await client.post(
        "/v1/xref/translate",
        json={
            "items": [
                {"entity": "customer", "source": "psa", "source_id": "CL-9", "target": "erp"},
                {"entity": "customer", "source": "crm", "source_id": "ACC-0", "target": "erp"},
                {"entity": "customer", "source": "psa", "source_id": "nope", "target": "crm"},
            ]
        },
    )
    assert many.status_code == 200, many.text
    results = many.json()["results"]
    assert [(r["found"], r.get("target_id")) for r in results] == [
        (True, "C-77"),
        (False, None),
        (False, None),
    ]
    assert results[1]["golden_id"] == holding["golden_id"]  # known, but not to ERP
    assert "golden_id" not in results[2]

    # A steward merges the project's customer into the holding: the project follows.
    merge = await client.post(
        "/v1/golden/customer/merge",
        json={
            "survivor_id": holding["golden_id"],
            "loser_ids": [customer_id],
            "actor": "steward.anna",
            "reason": "one company",
        },
    )
    assert merge.status_code == 200, merge.text
    golden = (await client.get(f"/v1/golden/project/{project_id}")).json()
    assert golden["version"] == 3
    assert golden["attributes"]["customer_ref"] == holding["golden_id"]

    # The events, as a subscriber reads them from JetStream.
    total = await publish_all(database_url, nats_url, relay_settings)
    msgs = await read_stream(js, relay_settings.stream, f"{relay_settings.subject_prefix}.>", total)
    events = [_decode(m.data) for m in msgs]
    of_project = [e for e in events if e.golden_id == project_id]
    assert [(e.type, e.version) for e in of_project] == [
        ("golden.created", 1),
        ("golden.updated", 2),
        ("golden.updated", 3),
    ]
    created, resolved, repointed = of_project
    assert created.payload.references["customer_ref"].golden_id is None
    assert created.payload.references["customer_ref"].source_id == "CL-9"

    ref = resolved.payload.references["customer_ref"]
    assert resolved.payload.changed == ["customer_ref"]
    assert ref.entity == "customer" and ref.golden_id == customer_id
    assert {(x.source, x.source_id) for x in ref.xrefs} == {
        ("crm", "ACC-1"),
        ("erp", "C-77"),
        ("psa", "CL-9"),
    }
    assert resolved.causation.source == "psa" and resolved.causation.source_id == "CL-9"

    ref = repointed.payload.references["customer_ref"]
    assert ref.golden_id == holding["golden_id"]
    assert ("erp", "C-77") in {(x.source, x.source_id) for x in ref.xrefs}
    assert repointed.causation.kind == "steward"
    assert repointed.causation.merge_id == merge.json()["merge_id"]
    assert repointed.causation.actor.endswith("on behalf of steward.anna")  # admin client
