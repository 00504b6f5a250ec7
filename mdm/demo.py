"""`mdm demo`: a small professional-services sample from four systems, through the real API.

The sample has known duplicates: the same customer in CRM and ERP (one tax id
written two ways), a consultant in HCM and PSA (same e-mail, different case),
a contractor in ERP and PSA, the group's legal entity in ERP and HCM, and one
project in PSA and ERP (same project code). One duplicate is left for the
probabilistic matcher: PSA's client record for Acme carries no strong
identifier, so deterministic matching keeps it apart.
"""

from __future__ import annotations

import dataclasses
import secrets
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
    ("psa", "customer", "client-9", {"name": "Acme Consulting", "status": "active"}, None),
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


async def run_demo(settings: Settings, out: TextIO) -> None:
    """Send the sample through the HTTP API and print the golden records and xrefs."""
    # The demo drives the API in this process: it holds a one-off admin key of its own.
    key = "mdm_demo_" + secrets.token_urlsafe(16)
    settings = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, admin_key=key, rate_limit=0)
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["X-API-Key"] = key
        golden_ids: dict[str, list[str]] = {}
        out.write("Ingesting the sample through PUT /v1/sources/{source}/{entity}/{id}:\n")
        for source, entity, source_id, attributes, updated in SAMPLE:
            body: dict[str, Any] = {"attributes": attributes}
            if updated:
                body["source_updated_at"] = updated
            response = await client.put(f"/v1/sources/{source}/{entity}/{source_id}", json=body)
            response.raise_for_status()
            result = response.json()
            out.write(
                f"  {source:4} {entity:12} {source_id:11} -> {result['golden_id']} "
                f"{result['outcome']:9} v{result['version']}"
                f"{'  warnings: ' + str(len(result['warnings'])) if result['warnings'] else ''}\n"
            )
            ids = golden_ids.setdefault(entity, [])
            if result["golden_id"] not in ids:
                ids.append(result["golden_id"])

        out.write("\nGolden records (GET /v1/golden/{entity}/{id}):\n")
        for entity, ids in golden_ids.items():
            for golden_id in ids:
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

        out.write("\nCross-reference lookup (GET /v1/xref/customer/crm/ACC-1001):\n")
        xref = (await client.get("/v1/xref/customer/crm/ACC-1001")).json()
        out.write(
            f"  golden {xref['golden_id']}: "
            + ", ".join(f"{x['source']}={x['source_id']}" for x in xref["xrefs"])
            + "\n"
        )
        out.write(
            "\nNote: psa client-9 'Acme Consulting' has no tax id, so deterministic matching\n"
            "keeps it apart; the probabilistic matcher is what joins such records.\n"
        )
