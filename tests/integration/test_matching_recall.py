"""Through the API, on a real PostgreSQL, with the packaged default models: a short company
name mistyped is still found, a placeholder name links nothing, and a junior and a senior
stay two people."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

HOME = {"line1": "Rosenweg 12", "postal_code": "79098", "city": "Freiburg", "country": "DE"}


async def put(
    client: AsyncTestClient, source: str, entity: str, sid: str, attrs: dict[str, Any]
) -> Any:
    response = await client.put(f"/v1/sources/{source}/{entity}/{sid}", json={"attributes": attrs})
    assert response.status_code == 200, response.text
    return response.json()


async def open_reviews(client: AsyncTestClient, entity: str) -> list[dict[str, Any]]:
    return (await client.get("/v1/reviews", params={"entity": entity})).json()["tasks"]


async def test_a_short_company_name_mistyped_is_found_and_linked(
    client: AsyncTestClient,
) -> None:
    held = await put(client, "crm", "customer", "C-1", {"name": "Marlow GmbH", "address": HOME})
    # Another system: two letters of the name swapped, the street mistyped too, so that
    # neither the name nor the street is a key the two share as written.
    typo = await put(
        client,
        "erp",
        "customer",
        "E-1",
        {"name": "Marlwo GmbH", "address": {**HOME, "line1": "Rosenwg 12"}},
    )
    assert typo["golden_id"] == held["golden_id"]
    assert typo["outcome"] == "linked"


async def test_a_placeholder_named_company_is_found_by_its_street_and_held_for_review(
    client: AsyncTestClient,
) -> None:
    held = await put(client, "crm", "customer", "C-1", {"name": "Marlow GmbH", "address": HOME})
    # No name, no house number: only the street and the place say which company it is.
    other = await put(client, "erp", "customer", "E-1",
                      {"name": "N/A", "address": {**HOME, "line1": "Rosenweg"}})  # fmt: skip
    assert other["golden_id"] != held["golden_id"]
    assert other["review"] == [held["golden_id"]]
    (task,) = await open_reviews(client, "customer")
    assert (task["golden_id"], task["candidate_id"]) == (other["golden_id"], held["golden_id"])
    fields = {f["field"]: f["level"] for f in task["explanation"]["fields"]}
    assert fields["name"] == "null" and fields["address"] == "same_street"


async def test_placeholder_names_link_nothing_and_a_placeholder_links_on_its_identifiers(
    client: AsyncTestClient,
) -> None:
    first = await put(client, "erp", "customer", "E-1", {"name": "N/A", "address": HOME})
    # Another company, its name not filled in either, in the same postal code.
    second = await put(client, "erp", "customer", "E-2",
                       {"name": "n.a.", "address": {**HOME, "line1": "Am Markt 9"}})  # fmt: skip
    assert second["golden_id"] != first["golden_id"]
    assert second["outcome"] == "created" and second["review"] == []
    assert await open_reviews(client, "customer") == []
    warnings = {(w["path"], w["code"]) for w in second["warnings"]}
    assert ("name", "placeholder") in warnings

    held = await put(client, "crm", "customer", "C-1",
                     {"name": "Marlow GmbH", "tax_id": "DE136695976",
                      "address": {**HOME, "line1": "Hafenstrasse 3"}})  # fmt: skip
    # The same company, its name a placeholder: its tax id and address say who it is.
    same = await put(client, "erp", "customer", "E-3",
                     {"name": "Unknown", "tax_id": "DE136695976",
                      "address": {**HOME, "line1": "Hafenstrasse 3"}})  # fmt: skip
    assert same["golden_id"] == held["golden_id"]
    links = (await client.get(f"/v1/golden/customer/{held['golden_id']}/links")).json()["links"]
    link = next(x for x in links if x["source_id"] == "E-3")
    name = next(f for f in link["explanation"]["fields"] if f["field"] == "name")
    assert name["level"] == "null"


SENIOR = {"given_name": "John", "family_name": "Keller Sr.", "date_of_birth": "1961-05-02",
          "email": "keller.family@example.org", "address": HOME}  # fmt: skip


async def test_a_junior_and_a_senior_at_one_address_are_not_linked(
    client: AsyncTestClient,
) -> None:
    senior = await put(client, "hcm", "worker", "H-1", SENIOR)
    # His son: same name, the family's e-mail and home, born on the same day of another
    # year; and a form of the son without a birth date.
    son = {**SENIOR, "family_name": "Keller Jr.", "date_of_birth": "1989-05-02"}
    junior = await put(client, "erp", "worker", "V-1", son)
    undated = await put(client, "psa", "worker", "R-1",
                        {k: v for k, v in SENIOR.items() if k != "date_of_birth"}
                        | {"family_name": "Keller Jr"})  # fmt: skip
    assert junior["golden_id"] != senior["golden_id"] and junior["outcome"] == "created"
    assert undated["golden_id"] == junior["golden_id"]  # the suffixes agree
    tasks = await open_reviews(client, "worker")
    assert tasks and all(t["explanation"]["conflict"] == "generation disagrees" for t in tasks)
    # The senior's record from another system, without the suffix, still joins him.
    again = await put(client, "psa", "worker", "R-2", {**SENIOR, "family_name": "Keller"})
    assert again["golden_id"] == senior["golden_id"]
