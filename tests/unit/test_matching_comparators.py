"""Comparators: each level's predicate on prepared features, and the null outcome (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import standardize_record
from matching.comparators import (
    COMPARATORS,
    NULL,
    LevelError,
    compile_levels,
    level_of,
    level_predicate,
    parse_level,
)
from matching.model import default_model
from matching.prepare import prepare
from matching.scoring import comparison_levels


def _prepared(entity: str, attrs: dict[str, Any]) -> dict[str, Any]:
    model = default_model(entity)
    return prepare(model, entity, standardize_record(entity, attrs).values)


def _level(entity: str, field: str, a: dict[str, Any], b: dict[str, Any]) -> str:
    model = default_model(entity)
    levels = comparison_levels(model, _prepared(entity, a), _prepared(entity, b))
    index = [f.name for f in model.fields].index(field)
    level = levels[index]
    return "null" if level == NULL else model.fields[index].levels[level].label


def _worker(**attrs: Any) -> dict[str, Any]:
    return {"family_name": "Smith", **attrs}


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("William", "William", "exact"),
        ("William", "Bill", "nickname"),
        ("Bill", "Billy", "nickname"),  # both nicknames of William
        ("Jon", "John", "nickname"),
        ("Jonathan", "Jonathn", "jaro_winkler>=0.92"),
        ("J", "John", "initial"),
        ("Christina", "Kristina", "jaro_winkler>=0.8"),
        ("Michael", "Zoe", "else"),
        # Short forms beyond the American table (matching/defaults/nicknames.toml).
        ("Friedrich", "Fritz", "nickname"),
        ("Cornelis", "Kees", "nickname"),
        ("Johannes", "Hans", "nickname"),
        ("Alexandra", "Sasha", "nickname"),
        ("Catherine", "Kate", "nickname"),
        # A mistyped name that is one edit from a nickname group meeting the other's.
        ("Rchard", "Rick", "nickname_typo"),
        ("Bejamin", "Ben", "nickname_typo"),
        ("Tony", "Antthony", "nickname_typo"),
        ("Jerr", "Gerals", "nickname_typo"),  # both mistyped: Jerry and Gerald
        # A known name is taken as written: Joy is no mistyped Jay, nor Dana a mistyped Dan
        # (a nickname of Daniel): only their letters are compared.
        ("Joy", "Jay", "else"),
        ("Dana", "Daniel", "jaro_winkler>=0.8"),
        # Too short to say which name was meant.
        ("Hnk", "Hendrik", "else"),
        # Siblings' names stay apart.
        ("Joseph", "Gerald", "else"),
        ("Catherine", "Antonio", "else"),
    ],
)
def test_given_name_levels(left: str, right: str, level: str) -> None:
    assert (
        _level("worker", "given_name", _worker(given_name=left), _worker(given_name=right)) == level
    )


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("Müller", "MULLER", "exact"),  # folded: no case, no accents
        ("Smith", "Smiht", "jaro_winkler>=0.92"),
        ("Thomson", "Tomsen", "phonetic"),
        ("Vandenberg", "Vandenburk", "jaro_winkler>=0.8"),
        ("Smith", "Jones", "else"),
    ],
)
def test_family_name_levels(left: str, right: str, level: str) -> None:
    assert _level("worker", "family_name", {"family_name": left}, {"family_name": right}) == level


def test_swapped_given_and_family_names() -> None:
    a = {"given_name": "Anna", "family_name": "Berger"}
    b = {"given_name": "Berger", "family_name": "Anna"}
    assert _level("worker", "given_name", a, b) == "swapped"
    # The swap is one event: only the given-name field counts it as evidence.
    assert _level("worker", "family_name", a, b) == "else"


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("1980-03-07", "1980-03-07", "exact"),
        ("1980-03-07", "1980-07-03", "day_month_swapped"),
        ("1980-03-07", "1981-03-07", "one_field_off"),
        ("1980-03-07", "1980-04-07", "one_field_off"),
        ("1980-03-07", "1980-03-08", "one_field_off"),
        ("1980-03-07", "1975-11-30", "else"),
    ],
)
def test_date_levels(left: str, right: str, level: str) -> None:
    a, b = _worker(date_of_birth=left), _worker(date_of_birth=right)
    assert _level("worker", "date_of_birth", a, b) == level


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("Anna.Berg@Acme.com", "anna.berg@acme.com", "exact"),
        ("anna.berg@acme.com", "anna.berg@gmail.com", "same_local_part"),
        ("anna.berg+crm@acme.com", "anna.berg@globex.com", "same_local_part"),
        ("anna.berg@acme.com", "anna.berg2@acme.com", "other_mailbox"),
        ("anna.berg@gmail.com", "a.berg@gmail.com", "same_domain"),
        ("anna.berg@acme.com", "tom@globex.com", "else"),
    ],
)
def test_email_levels(left: str, right: str, level: str) -> None:
    assert _level("worker", "email", _worker(email=left), _worker(email=right)) == level


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("+49 30 1234567", "+49 (30) 123 4567", "exact"),
        ("+49 30 1234567", "+41 30 1234567", "last_digits>=7"),
        ("+49 30 1234567", "+49 30 7654321", "else"),
    ],
)
def test_phone_levels(left: str, right: str, level: str) -> None:
    assert _level("worker", "phone", _worker(phone=left), _worker(phone=right)) == level


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("AB-12 345", "ab12345", "exact"),
        ("AB12345", "AB12354", "damerau_levenshtein<=1"),  # adjacent transposition
        ("AB12345", "AB12385", "damerau_levenshtein<=1"),
        ("AB12345", "XY98765", "else"),
    ],
)
def test_identifier_levels(left: str, right: str, level: str) -> None:
    a, b = _worker(national_id=left), _worker(national_id=right)
    assert _level("worker", "national_id", a, b) == level


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        (
            {"line1": "12 Main Street", "postal_code": "10115", "city": "Berlin"},
            {"line1": "12 main street.", "postal_code": "10 115", "city": "BERLIN"},
            "same_address",
        ),
        (  # the street lines swapped, a typo in the city
            {"line1": "12 Hurley Street", "line2": "Lakes Estate", "city": "Kempsey"},
            {"line1": "Lakes Estate", "line2": "12 Hurley Street", "city": "Kempsy"},
            "same_address",
        ),
        (  # a typo in the postal code
            {"line1": "12 Main Street", "postal_code": "5162"},
            {"line1": "12 Main Stret", "postal_code": "5126"},
            "same_address",
        ),
        (
            {"line1": "12 Main Street", "city": "Berlin"},
            {"line1": "12 Main Street", "city": "Hamburg"},
            "same_street",
        ),
        (  # the house number missing on one side, before or after the street: the
            # same street, not yet the same door
            {"line1": "12 Main Street", "postal_code": "10115"},
            {"line1": "Main Street", "postal_code": "10115"},
            "same_street",
        ),
        (
            {"line1": "Rosenweg 12a", "postal_code": "79098"},
            {"line1": "Rosenweg", "postal_code": "79098"},
            "same_street",
        ),
        (  # two house numbers of one street: neighbours
            {"line1": "Rosenweg 12", "postal_code": "79098"},
            {"line1": "Rosenweg 14", "postal_code": "79098"},
            "same_street",
        ),
        (
            {"line1": "12 Main Street", "postal_code": "10115"},
            {"line1": "7 Side Road", "postal_code": "10115"},
            "same_postal_code",
        ),
        ({"city": "Berlin"}, {"line1": "7 Side Road", "city": "Berlin"}, "same_locality"),
        ({"city": "Berlin"}, {"city": "Hamburg"}, "else"),
        ({"city": "Berlin"}, {"line1": "7 Side Road"}, "null"),  # nothing to compare
    ],
)
def test_address_levels(left: dict[str, str], right: dict[str, str], level: str) -> None:
    assert _level("worker", "address", _worker(address=left), _worker(address=right)) == level


def test_address_features_stored_before_the_street_and_number_compare_alike() -> None:
    # Records prepared before "st" and "hn" existed hold only "l1".
    model = default_model("customer")
    index = [f.name for f in model.fields].index("address")
    labels = [level.label for level in model.fields[index].levels]
    for left, right in (("Rosenweg 12", "Rosenweg"), ("Rosenweg 12", "Rosenweg 14")):
        a = _prepared("customer", {"address": {"line1": left, "postal_code": "79098"}})
        b = _prepared("customer", {"address": {"line1": right, "postal_code": "79098"}})
        old = {**a, "address": {k: v for k, v in a["address"].items() if k not in ("st", "hn")}}
        new_level = comparison_levels(model, a, b)[index]
        assert comparison_levels(model, old, b)[index] == new_level, labels[new_level]


@pytest.mark.parametrize(
    ("left", "right", "level"),
    [
        ("The Acme Corp.", "ACME Corporation", "exact"),
        ("Acme Corp. Ltd", "acme", "exact"),
        ("Smith & Sons Ltd", "Smith and Sons", "exact"),
        ("Acme Consulting", "Acme Consultng", "jaro_winkler>=0.95"),
        ("Acme Consulting Group", "Acme Group", "token_set>=90"),
        ("IBM", "International Business Machines Corp", "acronym"),
        ("Acme", "Globex", "else"),
        # Shortened words are written out: the same name.
        ("Maplewind Intl Mfg", "Maplewind International Manufacturing", "exact"),
        # The first word alone or one typo apart, five letters or more.
        ("Mangold Health Care", "mangpld", "first_token"),
        ("Schmidt", "Schmodt Consult", "first_token"),
        ("Abcor Health", "Abcar", "first_token"),
        ("Ames Health Care", "Amos", "else"),  # too short to tell
    ],
)
def test_company_name_levels(left: str, right: str, level: str) -> None:
    assert _level("customer", "name", {"name": left}, {"name": right}) == level


def test_company_name_compares_legal_name_too() -> None:
    a = {"name": "Acme", "legal_name": "Acme Holdings GmbH"}
    b = {"name": "Acme Holdings AG"}
    assert _level("customer", "name", a, b) == "exact"


def test_domain_ignores_free_mail() -> None:
    a = {"name": "Acme", "website": "https://www.acme.com/"}
    b = {"name": "Acme", "email": "billing@acme.com"}
    assert _level("customer", "domain", a, b) == "exact"
    c = {"name": "Acme", "email": "acme@gmail.com"}
    d = {"name": "Globex", "email": "globex@gmail.com"}
    assert _level("customer", "domain", c, d) == "null"


def test_project_money_and_dates() -> None:
    a = {"name": "ERP rollout", "contract_value": {"amount": "100000", "currency": "EUR"}}
    b = {"name": "ERP rollout", "contract_value": {"amount": "103000.00", "currency": "EUR"}}
    c = {"name": "ERP rollout", "contract_value": {"amount": "103000.00", "currency": "USD"}}
    assert _level("project", "contract_value", a, a) == "exact"
    assert _level("project", "contract_value", a, b) == "within_pct<=5"
    assert _level("project", "contract_value", a, c) == "else"
    d = {"name": "x", "start_date": "2024-01-01"}
    e = {"name": "x", "start_date": "2024-01-20"}
    assert _level("project", "start_date", d, e) == "within_days<=31"


def test_missing_value_on_either_side_is_null() -> None:
    assert _level("worker", "email", _worker(email="a@b.com"), _worker()) == "null"
    assert _level("worker", "email", _worker(), _worker(email="a@b.com")) == "null"
    assert level_of((), None, {"v": "x"}) == NULL


def test_parse_level() -> None:
    parsed = parse_level("jaro_winkler>=0.92")
    assert (parsed.name, parsed.op, parsed.threshold) == ("jaro_winkler", ">=", 0.92)
    assert parse_level("exact").op is None
    with pytest.raises(LevelError, match="finite"):
        parse_level("levenshtein<=inf")


def test_compile_levels_errors() -> None:
    with pytest.raises(LevelError, match="last level"):
        compile_levels("text", ["exact"])
    with pytest.raises(LevelError, match="only the last"):
        compile_levels("text", ["else", "else"])
    with pytest.raises(LevelError, match="unknown comparator"):
        level_predicate("nope", "exact")
    with pytest.raises(LevelError, match="takes no threshold"):
        level_predicate("person_name", "nickname>=1")


_names = st.text(alphabet="abcdefghij ", min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=150, deadline=None)
@given(_names, _names, _names, _names, st.dates().map(str), st.dates().map(str), _names, _names)
def test_levels_are_symmetric_and_identical_records_agree_exactly(
    g1: str, g2: str, f1: str, f2: str, d1: str, d2: str, c1: str, c2: str
) -> None:
    model = default_model("worker")
    a = _prepared(
        "worker",
        {
            "given_name": g1,
            "family_name": f1,
            "date_of_birth": d1,
            "address": {"line1": c1, "city": c2},
        },
    )
    b = _prepared(
        "worker",
        {
            "given_name": g2,
            "family_name": f2,
            "date_of_birth": d2,
            "address": {"line1": c2, "city": c1},
        },
    )
    assert comparison_levels(model, a, b) == comparison_levels(model, b, a)
    for level in comparison_levels(model, a, a):
        assert level in (0, NULL)


def test_every_comparator_is_described() -> None:
    for name, comparator in COMPARATORS.items():
        assert comparator.name == name and comparator.description
        assert "exact" in comparator.levels or name == "address"
