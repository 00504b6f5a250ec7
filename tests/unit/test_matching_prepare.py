"""Prepared records and blocking keys (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import standardize_record
from matching.blocking import MAX_PART_LENGTH, blocking_keys, candidate_pairs, rule_keys
from matching.model import ENTITIES, BlockingRule, default_model
from matching.prepare import (
    MAX_TOKENS,
    feature_fingerprint,
    nickname_group,
    prepare,
    typo_neighbours,
)


def _prepared(entity: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return prepare(default_model(entity), entity, standardize_record(entity, attrs).values)


WORKER = {
    "given_name": "Bill",
    "family_name": "Smith-Jones",
    "date_of_birth": "1980-03-07",
    "email": "Bill.Smith+hr@Acme.com",
    "phone": "+49 30 1234567",
    "national_id": "123-45-678",
    "employee_number": "e 1001",
    "address": {"line1": "12 Main Street", "city": "Berlin", "postal_code": "10115"},
}


SAMPLES: dict[str, list[dict[str, Any]]] = {
    "customer": [
        {"name": "Acme GmbH", "website": "acme.de", "tax_id": "DE136695976"},
        {"name": "The International Business Machines Corp.", "country": "US"},
    ],
    "worker": [
        WORKER,
        {"given_name": "Jürgen", "family_name": "Müller", "date_of_birth": "1975-12-01"},
    ],
    "project": [
        {
            "name": "ERP rollout",
            "code": "P-1",
            "start_date": "2024-01-01",
            "contract_value": {"amount": "1000.50", "currency": "EUR"},
        },
        {"name": "Data platform migration phase two", "code": "DP-22"},
    ],
    "legal_entity": [
        {"name": "Acme Ltd", "country": "GB", "registration_number": "01234567"},
        {"name": "Globex Holding B.V.", "country": "NL"},
    ],
}


def test_worker_features() -> None:
    p = _prepared("worker", WORKER)
    assert p["given_name"] == {
        "v": "bill",
        "ph": "BAL",
        "nk": nickname_group("bill"),
        "alt": "smith jones",
    }
    assert "william" in p["given_name"]["nk"]
    assert p["family_name"]["v"] == "smith jones"
    assert p["date_of_birth"] == {"v": "1980-03-07", "y": "1980", "p": [1980, 3, 7], "o": 722881}
    assert p["email"] == {
        "v": "bill.smith+hr@acme.com",
        "l": "bill.smith",
        "d": "acme.com",
        "ln": "billsmith",
    }
    assert p["phone"] == {"v": "49301234567"}
    assert p["national_id"] == {"v": "12345678"}
    assert p["employee_number"] == {"v": "E1001"}
    assert p["address"] == {
        "v": "12 main street, 10115, berlin",
        "l1": "12 main street",
        "pc": "10115",
        "c": "berlin",
        "num": "12",
        "st": "main street",
        "hn": "12",
    }


def test_company_features() -> None:
    p = _prepared("customer", {"name": "The International Business Machines Corp."})
    assert p["name"]["v"] == "international business machines"
    assert p["name"]["acr"] == "ibm"
    assert p["name"]["bk"] == ["international business machines", "ibm"]
    assert "name" not in _prepared("customer", {"name": "", "tax_id": "x"})


def test_missing_and_empty_values_are_left_out() -> None:
    p = _prepared("worker", {"family_name": "Smith", "email": "  ", "address": {"city": ""}})
    assert set(p) == {"family_name"}


def test_invalid_date_is_compared_as_text_only() -> None:
    model = default_model("worker")
    p = prepare(model, "worker", {"family_name": "x", "date_of_birth": "1980-02-31"})
    assert p["date_of_birth"] == {"v": "1980-02-31"}


@pytest.mark.parametrize("entity", ENTITIES)
def test_prepared_is_plain_json(entity: str) -> None:
    attrs = SAMPLES[entity][0]
    p = _prepared(entity, attrs)
    assert p
    assert json.loads(json.dumps(p)) == p


def test_prepare_checks_entity() -> None:
    with pytest.raises(ValueError, match="cannot prepare"):
        prepare(default_model("worker"), "customer", {"name": "x"})


def test_fingerprint_ignores_weights_but_not_shape() -> None:
    model = default_model("worker")
    retrained = model.with_parameters(version=7, prior=0.3, fields=model.fields)
    assert feature_fingerprint(retrained) == feature_fingerprint(model)
    fewer = msgspec.structs.replace(model, fields=model.fields[1:], blocking=())
    assert feature_fingerprint(fewer) != feature_fingerprint(model)


# --- blocking ----------------------------------------------------------------------


def test_worker_keys_are_prefixed_sorted_and_unique() -> None:
    keys = blocking_keys(default_model("worker"), _prepared("worker", WORKER))
    assert keys == sorted(set(keys))
    assert "wfn:SNATJAN|1980" in keys
    assert "wnid:12345678" in keys
    assert "wel:bill.smith" in keys
    assert "weln:billsmith" in keys
    assert "wgk:william|smi" in keys  # the nickname group meets "William Smith"
    assert "wpn:10115|12" in keys
    assert all(len(k) < 64 and ":" in k for k in keys)


def _share_key(entity: str, a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    model = default_model(entity)
    return set(blocking_keys(model, _prepared(entity, a))) & set(
        blocking_keys(model, _prepared(entity, b))
    )


def test_one_typo_does_not_hide_a_match() -> None:
    base = {"given_name": "Anna", "family_name": "Berger", "date_of_birth": "1980-03-07"}
    # A typo in the family name's first letter: the date of birth still meets.
    assert _share_key("worker", base, {**base, "family_name": "Gerger"})
    # Swapped names meet on the unordered initials with the date of birth.
    swapped = {**base, "given_name": "Berger", "family_name": "Anna"}
    assert _share_key("worker", base, swapped)
    # A typo in the national id: one half still meets.
    a = {"family_name": "Berger", "national_id": "1234567"}
    assert _share_key("worker", a, {"family_name": "Xu", "national_id": "1234568"})


def test_company_keys() -> None:
    assert "cnk:ibm" in _share_key(
        "customer", {"name": "IBM"}, {"name": "International Business Machines"}
    )
    assert _share_key("customer", {"name": "Acme Corp"}, {"name": "ACME Consulting Ltd"})
    name = "alpha beta gamma delta epsilon zeta"
    keys = blocking_keys(default_model("customer"), _prepared("customer", {"name": name}))
    # Each token makes a key, but only the first MAX_TOKENS.
    assert len([k for k in keys if k.startswith("cnt:")]) == MAX_TOKENS == 5


def test_rule_keys_slices_unordered_and_long_values() -> None:
    prepared = {"a": {"v": "abcdef", "tok": ["x", "y", "z"]}, "b": {"v": "q" * 100}}
    assert rule_keys(BlockingRule(name="r", parts=("a.v[1:3]",)), prepared) == ["r:bc"]
    assert rule_keys(BlockingRule(name="r", parts=("a.v[-2:]",)), prepared) == ["r:ef"]
    assert rule_keys(BlockingRule(name="r", parts=("a.tok[:2]",)), prepared) == ["r:x", "r:y"]
    unordered = BlockingRule(name="r", parts=("a.tok[2:]", "a.v[:1]"), unordered=True)
    assert rule_keys(unordered, prepared) == ["r:a|z"]
    (long,) = rule_keys(BlockingRule(name="r", parts=("b.v",)), prepared)
    assert long.startswith("r:#") and len(long) < 2 + MAX_PART_LENGTH
    assert rule_keys(BlockingRule(name="r", parts=("a.v", "c.v")), prepared) == []


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=20),
    st.text(max_size=20),
    st.one_of(st.none(), st.dates().map(str)),
    st.text(max_size=15),
)
def test_keys_are_deterministic_sorted_strings(
    family: str, given_: str, born: str | None, email: str
) -> None:
    attrs: dict[str, Any] = {"family_name": family, "given_name": given_, "email": email}
    if born:
        attrs["date_of_birth"] = born
    values = standardize_record("worker", attrs).values
    model = default_model("worker")
    prepared = prepare(model, "worker", values)
    first = blocking_keys(model, prepared)
    again = blocking_keys(model, json.loads(json.dumps(prepare(model, "worker", values))))
    assert first == again == sorted(set(first))
    rule_names = {r.name for r in model.blocking}
    assert all(k.split(":", 1)[0] in rule_names and "|" not in k.split(":", 1)[0] for k in first)
    # reading each distinct part once gives what the rules give one by one
    assert first == sorted({k for rule in model.blocking for k in rule_keys(rule, prepared)})


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_records_keys_are_the_union_of_its_rules_keys(entity: str) -> None:
    model = default_model(entity)
    rule = model.blocking[0]
    # added: a rule repeating another's parts, and an unordered product that repeats
    # each of its parts (so the parts are shared and a product is sorted)
    tried = msgspec.structs.replace(
        model,
        blocking=(
            *model.blocking,
            BlockingRule(name="x1", parts=rule.parts),
            BlockingRule(name="x2", parts=(*rule.parts, *reversed(rule.parts)), unordered=True),
        ),
    )
    for attrs in SAMPLES[entity]:
        prepared = prepare(tried, entity, standardize_record(entity, attrs).values)
        union = sorted({k for r in tried.blocking for k in rule_keys(r, prepared)})
        assert blocking_keys(tried, prepared) == union
        assert union and any(k.startswith("x2:") for k in union)


def test_candidate_pairs() -> None:
    keys = [["a", "b"], ["a"], ["b", "c"], ["c"], ["z"], ["a"]]
    pairs = candidate_pairs(keys)
    assert pairs.tolist() == [[0, 1], [0, 2], [0, 5], [1, 5], [2, 3]]
    # "a" is held by three records: too generic at a limit of two.
    assert candidate_pairs(keys, max_block_size=2).tolist() == [[0, 2], [2, 3]]
    assert candidate_pairs([["a", "a"]]).shape == (0, 2)
    assert candidate_pairs([]).dtype == np.int64


def test_a_mistyped_given_name_is_read_as_the_known_names_one_edit_away() -> None:
    assert typo_neighbours("rchard") == ["richard"]
    assert typo_neighbours("bejamin") == ["benjamin"]
    assert typo_neighbours("firtz") == ["fritz"]  # two letters swapped
    # Known names (the nickname tables, the census list) are taken as written.
    assert typo_neighbours("dana") == typo_neighbours("lara") == typo_neighbours("kees") == []
    assert typo_neighbours("hnk") == []  # too short to say which name was meant
    assert typo_neighbours("qwertz") == []  # nothing known is near
    # The feature holds the nickname groups of those names.
    model = default_model("worker")
    given = prepare(model, "worker", {"given_name": "Rchard", "family_name": "Segebahn"})
    assert given["given_name"]["nt"] == ["dick", "richard"]
    assert "nt" not in prepare(model, "worker", {"given_name": "Richard"})["given_name"]
