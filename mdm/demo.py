"""`mdm demo`: a small professional-services sample from four systems, through the real API.

The sample has known duplicates for each way the hub decides. Shared strong
identifiers: the same customer in CRM and ERP (one tax id written two ways), a
consultant in HCM and PSA (same e-mail, different case), a contractor in ERP and
PSA, the group's legal entity in ERP and HCM. No identifier, left to the
probabilistic matcher: PSA's client record for Acme (same website, phone and
address as CRM's) and one project in PSA and ERP. Uncertain, for a steward: PSA's
"Initech Conseil" shares only part of Initech's name and a phone number ending as
Initech's switchboard number does (another line of the same exchange).

The demo prints, per record, what the hub returned and stored: the ingest
outcome, the link rule and match probability, and the review tasks opened.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from typing import Any, TextIO

from litestar.testing import AsyncTestClient

from mdm.api.app import create_app
from mdm.settings import Settings

# (source, entity, source_id, attributes, source_updated_at)
SAMPLE: list[tuple[str, str, str, dict[str, Any], str | None]] = [
    (
        "crm",
        "customer",
        "ACC-1001",
        {
            "name": "Acme Consulting GmbH",
            "tax_id": "DE136695976",
            "tax_country": "DE",
            "website": "https://www.acme-consulting.de",
            "phone": "030 1234567",
            "address": {
                "line1": "Friedrichstraße 10",
                "city": "Berlin",
                "postal_code": "10117",
                "country": "Germany",
            },
            "industry": "Manufacturing",
            "status": "active",
        },
        "2026-10-01T09:00:00Z",
    ),
    (
        "erp",
        "customer",
        "C-77",
        {
            "name": "ACME CONSULTING",
            "legal_name": "Acme Consulting GmbH",
            "tax_id": "DE 136 695 976",
            "email": "Billing@Acme-Consulting.de",
            "address": {"line1": "Postfach 1234", "city": "Berlin", "country": "DE"},
        },
        "2026-11-02T12:00:00Z",
    ),
    (
        "psa",
        "customer",
        "client-9",
        {
            "name": "Acme Consulting",
            "website": "acme-consulting.de",
            "phone": "+49 30 1234567",
            "address": {
                "line1": "Friedrichstr. 10",
                "city": "Berlin",
                "postal_code": "10117",
                "country": "DE",
            },
            "status": "active",
        },
        None,
    ),
    (
        "crm",
        "customer",
        "ACC-1002",
        {
            "name": "Initech SARL",
            "tax_id": "FR40303265045",
            "tax_country": "FR",
            "phone": "+33 1 23 45 67 89",
            "address": {"city": "Paris", "country": "FRA"},
        },
        None,
    ),
    (
        "erp",
        "customer",
        "C-78",
        {"name": "Initech", "tax_id": "40303265045", "tax_country": "France"},
        None,
    ),
    (
        "psa",
        "customer",
        "client-14",
        {"name": "Initech Conseil", "phone": "+33 9 23 45 67 89", "status": "active"},
        None,
    ),
    (
        "hcm",
        "worker",
        "E-100",
        {
            "family_name": "Müller",
            "given_name": "Anna",
            "email": "anna.mueller@northwind.example",
            "employee_number": "100",
            "worker_type": "employee",
            "status": "active",
            "job_title": "Senior Consultant",
            "hire_date": "2021-04-01",
            "cost_rate": {"amount": "85.00", "currency": "EUR"},
        },
        "2026-09-01T00:00:00Z",
    ),
    (
        "psa",
        "worker",
        "res-5",
        {
            "family_name": "Mueller",
            "given_name": "Anna",
            "email": "Anna.Mueller@Northwind.example",
            "job_title": "Consultant",
        },
        "2026-11-01T00:00:00Z",
    ),
    (
        "erp",
        "worker",
        "V-2001",
        {
            "family_name": "Smith",
            "given_name": "Robert",
            "email": "bob@smithconsult.example",
            "worker_type": "contractor",
            "cost_rate": {"amount": "110", "currency": "usd"},
        },
        None,
    ),
    (
        "psa",
        "worker",
        "res-6",
        {"family_name": "Smith", "given_name": "Bob", "email": "bob@smithconsult.example"},
        None,
    ),
    (
        "erp",
        "legal_entity",
        "LE-DE",
        {
            "name": "Northwind Advisory GmbH",
            "registration_number": "HRB 12345",
            "country": "DE",
            "base_currency": "EUR",
        },
        None,
    ),
    (
        "hcm",
        "legal_entity",
        "ORG-1",
        {"name": "Northwind Advisory", "registration_number": "HRB12345", "country": "Germany"},
        None,
    ),
    (
        "psa",
        "project",
        "P-2026-001",
        {
            "name": "ERP rollout phase 2",
            "code": "ACME-2026-01",
            "customer_ref": "client-9",
            "billing_type": "time_and_materials",
            "start_date": "2026-01-15",
            "status": "active",
        },
        None,
    ),
    (
        "erp",
        "project",
        "PRJ-555",
        {
            "name": "Acme ERP Rollout Ph.2",
            "code": "acme-2026-01",
            "contract_value": {"amount": "250000", "currency": "EUR"},
        },
        None,
    ),
]

KEY_ATTRIBUTE = {
    "customer": "name",
    "worker": "family_name",
    "project": "name",
    "legal_entity": "name",
}

# How a link rule (source_record.link_rule) reads in the summary.
RULE_TEXT = {
    "strong_key": "by a shared identifier",
    "strong_key_ambiguous": "by an identifier shared with several golden records",
    "match": "by the probabilistic matcher",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewTask:
    """A steward's review task opened for a record, as the hub stored it."""

    id: int
    candidate_id: str
    reason: str
    probability: float
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """How the hub decided one sample record: the ingest result, the stored link, the
    review tasks its ingestion opened."""

    source: str
    entity: str
    source_id: str
    golden_id: str
    outcome: str  # the ingest result's outcome
    version: int
    warnings: int
    rule: str  # the stored link rule (GET /v1/golden/{entity}/{id}/links)
    probability: float | None  # the stored link's match probability, when the model decided
    reviews: tuple[ReviewTask, ...]


async def load_sample(client: AsyncTestClient[Any]) -> list[Decision]:
    """PUT every sample record through the API, then read back how each was decided."""
    results = []
    for source, entity, source_id, attributes, updated in SAMPLE:
        body: dict[str, Any] = {"attributes": attributes}
        if updated:
            body["source_updated_at"] = updated
        response = await client.put(f"/v1/sources/{source}/{entity}/{source_id}", json=body)
        response.raise_for_status()
        results.append((source, entity, source_id, response.json()))
    links = await _links(client, {(e, r["golden_id"]) for _, e, _, r in results})
    decisions = []
    for source, entity, source_id, result in results:
        link = links[(entity, source, source_id)]
        decisions.append(
            Decision(
                source=source,
                entity=entity,
                source_id=source_id,
                golden_id=link["golden_id"],
                outcome=result["outcome"],
                version=result["version"],
                warnings=len(result["warnings"]),
                rule=link["rule"],
                probability=link["probability"],
                reviews=await _reviews(client, source, source_id, result),
            )
        )
    return decisions


async def _links(
    client: AsyncTestClient[Any], goldens: set[tuple[str, str]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The stored link of every live source record of these golden records."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entity, golden_id in sorted(goldens):
        response = await client.get(f"/v1/golden/{entity}/{golden_id}/links")
        response.raise_for_status()
        for link in response.json()["links"]:
            out[(entity, link["source"], link["source_id"])] = {**link, "golden_id": golden_id}
    return out


async def _reviews(
    client: AsyncTestClient[Any], source: str, source_id: str, result: dict[str, Any]
) -> tuple[ReviewTask, ...]:
    """The stored review tasks on this record against the candidates its ingest result
    named (`review`): the tasks this ingestion opened."""
    if not result["review"]:
        return ()
    response = await client.get(
        "/v1/reviews", params={"golden_id": result["golden_id"], "status": "any", "limit": 500}
    )
    response.raise_for_status()
    return tuple(
        ReviewTask(t["id"], t["candidate_id"], t["reason"], t["probability"], t["status"])
        for t in response.json()["tasks"]
        if (t["source"], t["source_id"]) == (source, source_id)
        and t["candidate_id"] in result["review"]
    )


def probability_text(probability: float) -> str:
    """A match probability to four places; one short of 1 is not rounded up to it."""
    text = f"{probability:.4f}"
    return "p>0.9999" if text == "1.0000" and probability < 1 else f"p={text}"


def decision_line(d: Decision) -> str:
    """One record's decision, as the demo prints it."""
    line = f"  {d.source:4} {d.entity:12} {d.source_id:11} -> {d.golden_id} {d.outcome:9} "
    line += f"rule={d.rule}"
    if d.probability is not None:
        line += f" {probability_text(d.probability)}"
    for task in d.reviews:
        line += (
            f"\n{'':33}review task #{task.id} ({task.status}, {task.reason}, "
            f"{probability_text(task.probability)}) against {task.candidate_id}"
        )
    if d.warnings:
        line += f"  warnings: {d.warnings}"
    return line


def summary(decisions: list[Decision]) -> list[str]:
    """What the hub did with the sample, counted from the decisions."""
    outcomes = Counter(d.outcome for d in decisions)
    lines = [f"{len(decisions)} records: " + ", ".join(f"{n} {o}" for o, n in outcomes.items())]
    linked = [d for d in decisions if d.outcome == "linked"]
    for rule in dict.fromkeys(d.rule for d in linked):
        same = [d for d in linked if d.rule == rule]
        text = f"{len(same)} linked {RULE_TEXT.get(rule, f'by rule {rule}')}"
        ps = [probability_text(d.probability) for d in same if d.probability is not None]
        lines.append(text + (f" ({', '.join(ps)})" if ps else ""))
    tasks = [(d, t) for d in decisions for t in d.reviews]
    if tasks:
        lines.append(
            f"{len(tasks)} review task{'s' if len(tasks) != 1 else ''} opened for a steward ("
            + ", ".join(
                f"{d.source}:{d.source_id} {probability_text(t.probability)}" for d, t in tasks
            )
            + ")"
        )
    return lines


async def run_demo(settings: Settings, out: TextIO) -> None:
    """Send the sample through the HTTP API and print how each record was decided,
    the golden records and a cross-reference lookup."""
    # The demo drives the API in this process: it holds a one-off admin key of its own.
    key = "mdm_demo_" + secrets.token_urlsafe(16)
    settings = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, admin_key=key, read_rate=0, write_rate=0)
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["X-API-Key"] = key
        out.write("Ingesting the sample through PUT /v1/sources/{source}/{entity}/{id}:\n")
        decisions = await load_sample(client)
        for d in decisions:
            out.write(decision_line(d) + "\n")
        out.write("\nWhat the hub did:\n")
        for line in summary(decisions):
            out.write(f"  {line}\n")
        await _print_goldens(client, decisions, out)

        out.write("\nCross-reference lookup (GET /v1/xref/customer/crm/ACC-1001):\n")
        xref = (await client.get("/v1/xref/customer/crm/ACC-1001")).json()
        out.write(
            f"  golden {xref['golden_id']}: "
            + ", ".join(f"{x['source']}={x['source_id']}" for x in xref["xrefs"])
            + "\n"
        )


async def _print_goldens(
    client: AsyncTestClient[Any], decisions: list[Decision], out: TextIO
) -> None:
    out.write("\nGolden records (GET /v1/golden/{entity}/{id}):\n")
    for entity, golden_id in dict.fromkeys((d.entity, d.golden_id) for d in decisions):
        golden = (await client.get(f"/v1/golden/{entity}/{golden_id}")).json()
        label = golden["attributes"].get(KEY_ATTRIBUTE[entity], "?")
        if entity == "worker":
            label = f"{golden['attributes'].get('given_name', '')} {label}".strip()
        xrefs = ", ".join(f"{x['source']}:{x['source_id']}" for x in golden["xrefs"])
        out.write(f"  {golden_id}  {entity:12} {label!r:32} sources: {xrefs}\n")
        for name, prov in sorted(golden["provenance"].items()):
            out.write(
                f"      {name:18} = {golden['attributes'][name]!r:42.42} "
                f"from {prov['source']}:{prov['source_id']} ({prov['rule']})\n"
            )
