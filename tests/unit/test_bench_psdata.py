"""The benchmark's data generator (bench/psdata.py): its harder cases are where they claim."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

# bench/ is a folder of scripts, not an installed package: import it from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import psdata
from bench.datasets import schema_problems

SUFFIX = re.compile(r" (Jr\.?|Sr\.?|II|III|jun\.|sen\.)$", re.IGNORECASE)


def _suffix(name: str, person: psdata._Person) -> str | None:
    """The generational suffix written after `name` (Faker has surnames such as "Koch II")."""
    match = SUFFIX.search(name)
    own = (person.given, person.family, person.maiden or "")
    if match is None or any(n.lower().endswith(match[0].lower()) for n in own):
        return None
    return match[1]


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def test_street_lines_lose_their_number_or_shorten_their_type() -> None:
    bare = psdata._without_street_number
    assert bare("141 Hodges Mountains") == "Hodges Mountains"
    assert bare("17066 Heather Grove Apt. 915") == "Heather Grove Apt. 915"
    assert bare("214, avenue Charlotte Gilles") == "avenue Charlotte Gilles"
    assert bare("Jens-Drubin-Straße 47-26") == "Jens-Drubin-Straße"
    assert bare("Lolahof 7") == "Lolahof"
    assert bare("Flat 17, Janet Meadows") == "Flat 17, Janet Meadows"  # no house number
    short = psdata._street_type_abbreviated
    assert short("78128 Wood Street Apt. 704") == "78128 Wood St Apt 704"
    assert short("Schaafstraße 1-8") == "Schaafstr. 1-8"
    assert short("Thomstraat 7") == "Thomstr. 7"
    assert short("8, rue Jeanne Henry") == "8, rue Jeanne Henry"


def test_reordered_names_swap_around_the_ampersand_or_the_last_two_words() -> None:
    assert psdata._reordered(["Baker", "&", "Holmes"]) == ["Holmes", "&", "Baker"]
    assert psdata._reordered(["Oakwind", "Intl", "Foods"]) == ["Oakwind", "Foods", "Intl"]
    assert psdata._reordered(["Oakwind", "Foods"]) == ["Oakwind", "Foods"]


def test_typed_companies_hold_only_a_name_and_a_street_address_in_crm_and_psa() -> None:
    config = psdata.CompanyConfig(companies=300, name_and_address_only=1.0, placeholder_name=0)
    data = psdata.companies(3, config)
    assert schema_problems(data.records) == []
    typed = [r for r in data.records if r["source"] != "erp"]
    assert typed
    for record in typed:
        assert set(record["attributes"]) == {"name", "address"}, record
        assert record["attributes"]["address"].get("line1"), record
    erp = [r for r in data.records if r["source"] == "erp"]
    assert sum("tax_id" in r["attributes"] for r in erp) > len(erp) / 2  # ERP as before

    plain = psdata.companies(3, psdata.CompanyConfig(companies=300, name_and_address_only=0))
    assert "name and street address only" not in plain.notes[0]
    assert all("status" in r["attributes"] for r in plain.records if r["source"] == "crm")


def test_typed_names_carry_typos_in_short_words_abbreviations_and_missing_numbers() -> None:
    data = psdata.companies(0)
    variations = data.notes[0]
    for counter in (
        "typed: typo in a short word (6 letters or fewer)",
        "typed: word abbreviated",
        "typed: a word of the name missing",
        "typed: words of the name reordered",
        "typed: street number missing",
        "street type abbreviated",
        "placeholder for the name",
    ):
        assert counter in variations


def test_placeholder_names_are_valid_names() -> None:
    config = psdata.CompanyConfig(companies=100, placeholder_name=1.0)
    data = psdata.companies(1, config)
    assert {r["attributes"]["name"] for r in data.records} <= set(psdata.PLACEHOLDER_NAMES)
    assert schema_problems(data.records) == []


def test_branch_offices_are_one_customer_at_other_addresses_with_its_tax_id() -> None:
    config = psdata.CompanyConfig(companies=200, branch=1.0, moved=0, name_and_address_only=0)
    generator = psdata._Companies(5, config)
    data = generator.generate()
    cities: dict[str, set[str]] = defaultdict(set)
    tax_ids: dict[str, set[str]] = defaultdict(set)
    for record in data.records:
        cid = data.truth[(record["source"], record["source_id"])]
        attributes = record["attributes"]
        if "address" in attributes:
            cities[cid].add(attributes["address"]["city"])
        if "tax_id" in attributes:
            tax_ids[cid].add(_digits(attributes["tax_id"]))
    with_branch = 0
    for company in generator.companies:
        if cities[company.cid] - {company.address["city"]}:
            with_branch += 1
        assert tax_ids[company.cid] <= {_digits(company.tax_id)}
    assert with_branch >= 0.9 * len(generator.companies)

    generator = psdata._Companies(5, psdata.CompanyConfig(companies=200, branch=0, moved=0))
    data = generator.generate()
    by_cid = {c.cid: c for c in generator.companies}
    for record in data.records:
        company = by_cid[data.truth[(record["source"], record["source_id"])]]
        if "address" in record["attributes"]:
            assert record["attributes"]["address"]["city"] == company.address["city"]


def test_juniors_and_seniors_write_generational_suffixes_at_the_end_of_the_family_name() -> None:
    config = psdata.WorkerConfig(people=1500, junior=0.1, swapped_names=0)
    generator = psdata._Workers(2, config)
    data = generator.generate()
    assert schema_problems(data.records) == []
    people = {p.pid: p for p in generator.people}
    written: dict[str, int] = defaultdict(int)
    for record in data.records:
        person = people[data.truth[(record["source"], record["source_id"])]]
        attributes = record["attributes"]
        assert not _suffix(attributes["given_name"], person)
        suffix = _suffix(attributes["family_name"], person)
        if suffix:
            assert suffix.lower() in {s.lower() for s in person.suffix}, attributes
            written[person.pid] += 1
    pairs = [
        (p.housemate, p)
        for p in generator.people
        if p.housemate is not None and p.given == p.housemate.given and p.pid in written
    ]
    assert pairs, "no junior or senior wrote a suffix"
    for a, b in pairs:
        assert set(a.suffix).isdisjoint(b.suffix)  # the two generations write different ones
    assert any(p.pid not in generator.generations for p in people.values() if p.pid in written)


def test_a_record_with_swapped_names_has_the_suffix_after_the_given_name_field() -> None:
    config = psdata.WorkerConfig(people=1500, suffix_alone=0.5, swapped_names=1.0)
    generator = psdata._Workers(4, config)
    data = generator.generate()
    people = {p.pid: p for p in generator.people}
    in_given = in_family = 0
    for record in data.records:
        person = people[data.truth[(record["source"], record["source_id"])]]
        attributes = record["attributes"]
        in_given += bool(_suffix(attributes["given_name"], person))
        in_family += bool(_suffix(attributes["family_name"], person))
        if record["source"] != "hcm":  # every ERP and PSA record is swapped here
            assert not _suffix(attributes["family_name"], person), attributes
    assert in_given > 0 and in_family > 0  # HCM never swaps


def test_no_suffix_is_written_without_juniors_or_suffixed_people() -> None:
    config = psdata.WorkerConfig(people=800, junior=0, suffix_alone=0)
    generator = psdata._Workers(2, config)
    data = generator.generate()
    people = {p.pid: p for p in generator.people}
    for record in data.records:
        person = people[data.truth[(record["source"], record["source_id"])]]
        assert not _suffix(record["attributes"]["family_name"], person), record
    with_suffixes = psdata._Workers(2, psdata.WorkerConfig(people=800, suffix_alone=0.5))
    data = with_suffixes.generate()
    people = {p.pid: p for p in with_suffixes.people}
    assert any(
        _suffix(r["attributes"]["family_name"], people[data.truth[(r["source"], r["source_id"])]])
        for r in data.records
    )


def test_juniors_are_born_no_later_than_the_generated_range() -> None:
    generator = psdata._Workers(0, psdata.WorkerConfig(people=600, junior=1.0))
    generator.generate()
    assert max(p.dob.year for p in generator.people) <= psdata.LATEST_BIRTH_YEAR


def test_the_generator_is_deterministic() -> None:
    config = psdata.CompanyConfig(companies=150)
    assert psdata.companies(7, config).fingerprint() == psdata.companies(7, config).fingerprint()
    workers = psdata.WorkerConfig(people=300)
    assert psdata.workers(7, workers).fingerprint() == psdata.workers(7, workers).fingerprint()
