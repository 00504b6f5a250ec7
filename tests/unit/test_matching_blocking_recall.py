"""Companies found when only the name or only the address agrees; placeholder names read as
missing; a junior and a senior kept apart.

The packaged default models, as the hub uses them: standardized, prepared, blocked
(`blocking_keys`: two records are compared when they share a key) and scored
(`score_cluster`, `decide`), without term frequencies.
"""

from __future__ import annotations

from typing import Any

import pytest

from matching import standardize_record
from matching.blocking import blocking_keys
from matching.model import default_model
from matching.prepare import Prepared, prepare
from matching.scoring import decide, score_cluster, vouches

CUSTOMER = default_model("customer")
LEGAL = default_model("legal_entity")
WORKER = default_model("worker")
HOME = {"line1": "Rosenweg 12", "postal_code": "79098", "city": "Freiburg", "country": "DE"}


def _prepared(entity: str, **attrs: Any) -> Prepared:
    model = default_model(entity)
    return prepare(model, entity, standardize_record(entity, attrs).values)


def _keys(entity: str, record: Prepared) -> set[str]:
    return set(blocking_keys(default_model(entity), record))


def _meet(entity: str, a: Prepared, b: Prepared) -> bool:
    return bool(_keys(entity, a) & _keys(entity, b))


def _name_keys(entity: str, record: Prepared) -> set[str]:
    """The keys a record's name makes: those that change when the name does."""
    other = {**record, "name": _prepared(entity, name="Zyxwvut Qponm")["name"]}
    return _keys(entity, record) - _keys(entity, other)


# --- a short name mistyped: still a candidate in the same postal code or city ----------


@pytest.mark.parametrize(
    "typo",
    ["Marlwo Ltd", "Marlw", "Marloww GmbH", "Narlow", "Mralow"],  # swap, drop, add, replace
)
def test_a_short_name_one_edit_off_shares_a_key_in_the_same_postal_code(typo: str) -> None:
    held = _prepared("customer", name="Marlow", address={**HOME, "line1": "Hafenstrasse 3"})
    incoming = _prepared("customer", name=typo, address={**HOME, "line1": "Am Markt 9"})
    assert _meet("customer", held, incoming)


def test_a_short_name_one_edit_off_shares_a_key_in_the_same_city() -> None:
    held = _prepared("customer", name="Marlow", address={"city": "Freiburg", "country": "DE"})
    incoming = _prepared("customer", name="Marlwo", address={"city": "Freiburg"})
    assert _meet("customer", held, incoming)


def test_a_mistyped_name_elsewhere_is_no_candidate() -> None:
    held = _prepared("customer", name="Marlow", address=HOME)
    incoming = _prepared(
        "customer", name="Marlwo", address={"line1": "Elm Road 4", "postal_code": "10115",
                                             "city": "Berlin"},
    )  # fmt: skip
    assert not _meet("customer", held, incoming)


def test_a_legal_entitys_short_name_mistyped_shares_a_key_in_its_country() -> None:
    held = _prepared("legal_entity", name="Marlow GmbH", country="DE")
    assert _meet("legal_entity", held, _prepared("legal_entity", name="Marlwo GmbH", country="DE"))
    assert not _meet(
        "legal_entity", held, _prepared("legal_entity", name="Marlwo Ltd", country="GB")
    )


def test_a_customers_keys_stay_few() -> None:
    record = _prepared(
        "customer", name="Marlowes Trading and Shipping Company Limited", tax_id="DE136695976",
        duns="150483782", website="https://marlowes.de", email="info@marlowes.de",
        phone="+49 761 123456", address=HOME,
    )  # fmt: skip
    keys = _keys("customer", record)
    by_rule: dict[str, int] = {}
    for key in keys:
        by_rule[key.split(":", 1)[0]] = by_rule.get(key.split(":", 1)[0], 0) + 1
    # One name token's deletions (an 8-letter token and its 8 deletions) per place.
    assert by_rule["cpt"] == by_rule["cct"] == 9
    assert len(keys) <= 33  # 5 tokens, 2 name keys and the acronym, 5 identifiers, 2 streets


def test_a_long_first_word_makes_one_key_per_place() -> None:
    record = _prepared("customer", name="Marlowesque", address=HOME)
    assert {k for k in _keys("customer", record) if k.startswith(("cpt:", "cct:"))} == {
        "cpt:79098|marlowesque",
        "cct:freiburg|marlowesque",
    }


# --- the address alone: the street without its house number -----------------------------


@pytest.mark.parametrize(
    "address",
    [
        {"line1": "Rosenweg", "postal_code": "79098"},  # no house number
        {"line1": "Rosenweg 12", "city": "Freiburg"},  # no postal code
        {"line1": "Rosenweg", "city": "freiburg"},
    ],
)
def test_the_same_street_alone_shares_a_key(address: dict[str, str]) -> None:
    held = _prepared("customer", name="Marlow Shipping", address=HOME)
    incoming = _prepared("customer", name="Harbour Freight Services", address=address)
    assert _meet("customer", held, incoming)
    assert _meet(
        "legal_entity",
        _prepared("legal_entity", name="Marlow Shipping", address=HOME),
        _prepared("legal_entity", name="Harbour Freight Services", address=address),
    )


@pytest.mark.parametrize(
    ("line", "without"), [("Rosenweg 12", "Rosenweg"), ("12 Elm Road", "Elm Road")]
)
def test_a_company_without_its_house_number_links_on_name_and_street_in_a_small_store(
    line: str, without: str
) -> None:
    held = _prepared("customer", name="Marlow Shipping GmbH", address={**HOME, "line1": line})
    incoming = _prepared("customer", name="Marlow Shipping", address={**HOME, "line1": without})
    # The same street, not yet the same door; with the name, a link in a store of some
    # thousand customers (the prior there, matching.model.MatchModel.prior_at).
    model = CUSTOMER.at_size(2_000)
    score = score_cluster(model, incoming, [held])
    assert next(f.level for f in score.fields if f.field == "address") == "same_street"
    assert decide(model, {"g": score}).outcome == "link"


def test_another_house_number_of_the_street_is_no_same_address() -> None:
    held = _prepared("customer", name="Marlow Shipping GmbH", address=HOME)
    neighbour = _prepared(
        "customer", name="Marlow Shipping", address={**HOME, "line1": "Rosenweg 14"}
    )
    score = score_cluster(CUSTOMER, neighbour, [held])
    assert next(f.level for f in score.fields if f.field == "address") == "same_street"


# --- placeholder names ------------------------------------------------------------------

PLACEHOLDERS = ["N/A", "n.a.", "Unknown", "TBD", "-", "none", "test", "?", "Unknown Ltd"]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
@pytest.mark.parametrize("entity", ["customer", "legal_entity"])
def test_a_placeholder_company_name_is_missing_for_matching(entity: str, placeholder: str) -> None:
    record = _prepared(entity, name=placeholder, address=HOME)
    assert "name" not in record
    assert _name_keys(entity, _prepared(entity, name="Marlow", address=HOME))
    assert not any(key.split(":", 1)[0] in _name_rules(entity) for key in _keys(entity, record))


def _name_rules(entity: str) -> set[str]:
    model = default_model(entity)
    return {r.name for r in model.blocking if any(p.startswith("name.") for p in r.parts)}


def test_a_placeholder_name_is_kept_and_flagged() -> None:
    std = standardize_record("customer", {"name": "N/A"})
    assert std.values["name"] == "N/A"
    assert not std.errors
    assert [(w.path, w.code) for w in std.warnings] == [("name", "placeholder")]
    assert standardize_record("customer", {"name": "Marlow"}).warnings == ()


def test_two_placeholder_names_agree_on_nothing() -> None:
    # Two unrelated companies typed "N/A" in one postal code: no name agreement, no key.
    a = _prepared("customer", name="N/A", address=HOME)
    b = _prepared("customer", name="n.a.", address={**HOME, "line1": "Am Markt 9"})
    assert not _meet("customer", a, b)
    score = score_cluster(CUSTOMER, a, [b])
    assert next(f.level for f in score.fields if f.field == "name") == "null"
    assert decide(CUSTOMER, {"g": score}).outcome == "new"


def test_a_placeholder_record_is_found_by_its_address_and_identifiers() -> None:
    held = _prepared("customer", name="Marlow Shipping", tax_id="DE136695976", address=HOME)
    incoming = _prepared("customer", name="N/A", tax_id="DE136695976", address=HOME)
    assert _meet("customer", held, incoming)
    score = score_cluster(CUSTOMER, incoming, [held])
    assert next(f.level for f in score.fields if f.field == "name") == "null"
    assert score.conflict is None


@pytest.mark.parametrize("placeholder", ["N/A", "Unknown", "TBD", "n.a.", "-", "?"])
def test_a_placeholder_person_name_is_missing_for_matching(placeholder: str) -> None:
    record = _prepared("worker", given_name=placeholder, family_name="Keller")
    assert "given_name" not in record
    assert record["family_name"]["v"] == "keller"
    assert "alt" not in record["family_name"]


def test_a_real_name_that_looks_like_a_placeholder_is_a_name() -> None:
    assert _prepared("worker", given_name="Min", family_name="Na")["family_name"]["v"] == "na"
    assert _prepared("customer", name="N.A. Holdings")["name"]["v"] == "na holdings"


# --- generational suffixes --------------------------------------------------------------

SENIOR = {"given_name": "John", "family_name": "Keller Sr.", "date_of_birth": "1961-05-02",
          "national_id": "12345678901", "address": HOME}  # fmt: skip


def test_a_suffix_is_taken_off_the_name_and_kept_as_a_feature() -> None:
    record = _prepared("worker", given_name="John", family_name="Keller Jr.")
    assert record["family_name"]["v"] == "keller"
    assert record["given_name"]["alt"] == "keller"
    assert record["generation"] == {"v": "jr"}
    plain = _prepared("worker", given_name="John", family_name="Keller")
    assert "generation" not in plain
    assert _keys("worker", record) == _keys("worker", plain)  # blocked as the plain name


@pytest.mark.parametrize(
    ("senior", "junior"),
    [("Keller Sr.", "Keller Jr."), ("Keller Senior", "Keller Junior"), ("Keller II", "Keller III")],
)
def test_a_junior_and_a_senior_are_two_people(senior: str, junior: str) -> None:
    held = _prepared("worker", **{**SENIOR, "family_name": senior})
    # The son's form: his father's birth date copied (or none), the same home, the
    # father's national id: everything but the suffix agrees.
    for attrs in (
        {**SENIOR, "family_name": junior},
        {k: v for k, v in {**SENIOR, "family_name": junior}.items() if k != "date_of_birth"},
    ):
        incoming = _prepared("worker", **attrs)
        score = score_cluster(WORKER, incoming, [held])
        assert score.conflict == "generation disagrees"
        assert decide(WORKER, {"g": score}).outcome != "link"
        assert not vouches(WORKER, incoming, held)


def test_a_suffix_on_one_side_only_is_no_disagreement() -> None:
    held = _prepared("worker", **SENIOR)
    incoming = _prepared("worker", **{**SENIOR, "family_name": "Keller"})
    score = score_cluster(WORKER, incoming, [held])
    assert score.conflict is None
    assert next(f.level for f in score.fields if f.field == "generation") == "null"
    assert decide(WORKER, {"g": score}).outcome == "link"
    assert vouches(WORKER, incoming, held)


def test_the_same_suffix_links() -> None:
    held = _prepared("worker", **{**SENIOR, "family_name": "Keller Jr"})
    incoming = _prepared("worker", **{**SENIOR, "family_name": "Keller Junior"})
    assert decide(WORKER, {"g": score_cluster(WORKER, incoming, [held])}).outcome == "link"
