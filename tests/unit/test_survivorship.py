"""Survivorship rules, groups, steward overrides and the TOML configuration: no I/O."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdm.domain.errors import UnknownEntity
from mdm.domain.sources import ENTITIES
from mdm.domain.survivorship import (
    AGGREGATE,
    DEFAULT_RULES,
    RECORD_RULES,
    RULES,
    AttributeGroup,
    Contribution,
    EntityPolicy,
    Overrides,
    Pin,
    SourceTrust,
    Survived,
    is_empty,
    survive,
)
from mdm.domain.survivorship_config import (
    PolicyError,
    SurvivorshipPolicy,
    default_policy,
    parse_policy,
)
from mdm.settings import load_sources
from schemas.entities import ENTITY_TYPES

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SCHEMA_ATTRIBUTES = {e: t.__struct_fields__ for e, t in ENTITY_TYPES.items()}


def rec(
    record_id: int,
    source: str,
    values: dict[str, Any],
    updated_days: float | None = None,
    received_days: float = 0,
) -> Contribution:
    updated = T0 + dt.timedelta(days=updated_days) if updated_days is not None else None
    return Contribution(
        record_id,
        source,
        f"{source}-{record_id}",
        values,
        updated,
        T0 + dt.timedelta(days=received_days),
    )


def policy(default: tuple[str, ...] = DEFAULT_RULES, **kwargs: Any) -> EntityPolicy:
    return EntityPolicy("customer", system_of_record="crm", default_rules=default, **kwargs)


def winner(result: Survived, name: str) -> tuple[Any, str, str]:
    """The golden value of `name`, the source_id it came from and the rule."""
    prov = result.provenance[name]
    return result.attributes[name], prov["source_id"], prov["rule"]


# -- one test per rule ----------------------------------------------------------------


def test_system_of_record_wins_even_when_older_and_yields_nothing_without_a_value() -> None:
    p = policy(("system_of_record", "most_recent"))
    records = [
        rec(1, "crm", {"name": "Acme GmbH"}, updated_days=1),
        rec(2, "erp", {"name": "ACME", "phone": "+49 1"}, updated_days=9),
    ]
    result = survive(records, p)
    assert winner(result, "name") == ("Acme GmbH", "crm-1", "system_of_record")
    assert winner(result, "phone") == ("+49 1", "erp-2", "most_recent")


def test_source_priority_system_of_record_then_configured_order_then_the_rest() -> None:
    p = policy(("source_priority",), source_order=("psa", "erp"))
    assert p.priority == ("crm", "psa", "erp")
    records = [
        rec(1, "crm", {"a": "crm"}),
        rec(2, "erp", {"a": "erp", "b": "erp", "c": "erp"}, updated_days=1),
        rec(3, "psa", {"a": "psa", "b": "psa"}),
        rec(4, "hcm", {"c": "hcm-old", "d": "hcm-old"}, updated_days=1),
        rec(5, "xyz", {"c": "xyz", "d": "xyz-new"}, updated_days=2),
    ]
    result = survive(records, p)
    assert winner(result, "a") == ("crm", "crm-1", "source_priority")
    assert winner(result, "b") == ("psa", "psa-3", "source_priority")
    assert winner(result, "c") == ("erp", "erp-2", "source_priority")
    # two unlisted sources rank alike: the more recent one wins
    assert winner(result, "d") == ("xyz-new", "xyz-5", "source_priority")


def test_source_priority_lists_the_system_of_record_once_even_if_configured() -> None:
    p = policy(("source_priority",), source_order=("erp", "crm", "psa"))
    assert p.priority == ("crm", "erp", "psa")


def test_most_recent_uses_the_sources_update_time_not_arrival() -> None:
    p = policy(("most_recent",))
    result = survive(
        [
            rec(1, "psa", {"phone": "+1"}, updated_days=5, received_days=0),
            rec(2, "erp", {"phone": "+2"}, updated_days=2, received_days=9),
            rec(3, "crm", {"phone": "+3"}, received_days=4),  # no source time: arrival counts
        ],
        p,
    )
    assert winner(result, "phone") == ("+1", "psa-1", "most_recent")


def test_most_recent_ties_go_to_the_later_arrival_then_the_higher_record_id() -> None:
    p = policy(("most_recent",))
    same_time = [rec(1, "psa", {"x": 1}, 3, 0), rec(2, "erp", {"x": 2}, 3, 1)]
    assert survive(same_time, p).attributes["x"] == 2
    same_arrival = [rec(7, "psa", {"x": 7}, 3, 1), rec(2, "erp", {"x": 2}, 3, 1)]
    assert survive(same_arrival, p).attributes["x"] == 7


def test_oldest_and_its_ties_go_to_the_more_recent_arrival() -> None:
    p = policy(("oldest",))
    result = survive(
        [
            rec(1, "crm", {"since": "a"}, updated_days=5),
            rec(2, "erp", {"since": "b"}, updated_days=1, received_days=1),
            rec(3, "psa", {"since": "c"}, updated_days=1, received_days=2),
        ],
        p,
    )
    assert winner(result, "since") == ("c", "psa-3", "oldest")


def test_most_frequent_counts_records_and_breaks_ties_by_recency() -> None:
    p = policy(("most_frequent",))
    records = [
        rec(1, "crm", {"industry": "IT", "size": "S"}, updated_days=9),
        rec(2, "erp", {"industry": "Consulting", "size": "M"}, updated_days=1),
        rec(3, "psa", {"industry": "Consulting", "size": "L"}, updated_days=2),
    ]
    result = survive(records, p)
    # the most recent record giving the most frequent value is the one credited
    assert winner(result, "industry") == ("Consulting", "psa-3", "most_frequent")
    assert winner(result, "size") == ("S", "crm-1", "most_frequent")


def test_most_frequent_compares_dicts_by_content() -> None:
    p = policy(("most_frequent",))
    records = [
        rec(1, "crm", {"address": {"city": "Berlin", "country": "DE"}}, updated_days=1),
        rec(2, "erp", {"address": {"country": "DE", "city": "Berlin"}}, updated_days=2),
        rec(3, "psa", {"address": {"city": "Bonn", "country": "DE"}}, updated_days=3),
    ]
    assert survive(records, p).provenance["address"]["source_id"] == "erp-2"


def test_longest_string_wins_and_non_strings_fall_through() -> None:
    p = policy(("longest", "oldest"))
    records = [
        rec(1, "crm", {"legal_name": "Acme GmbH", "rate": 7}, updated_days=1),
        rec(2, "erp", {"legal_name": "Acme Consulting GmbH", "rate": 9}, updated_days=2),
        rec(3, "psa", {"legal_name": "Acme Consulting  ", "rate": 8}, updated_days=3),
    ]
    result = survive(records, p)
    assert winner(result, "legal_name") == ("Acme Consulting GmbH", "erp-2", "longest")
    assert winner(result, "rate") == (7, "crm-1", "oldest")


def test_longest_ties_go_to_the_most_recent() -> None:
    p = policy(("longest",))
    records = [rec(1, "crm", {"n": "abcd"}, 5), rec(2, "erp", {"n": "wxyz"}, 6)]
    assert winner(survive(records, p), "n") == ("wxyz", "erp-2", "longest")


def test_most_complete_counts_non_empty_fields() -> None:
    p = policy(("most_complete", "system_of_record"))
    full = {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}
    records = [
        rec(1, "crm", {"address": {"city": "Berlin", "country": "DE"}, "name": "Acme"}, 9),
        rec(2, "erp", {"address": full}, updated_days=1),
        rec(3, "psa", {"address": {"line1": "x", "city": "y", "region": None, "zip": ""}}, 5),
    ]
    result = survive(records, p)
    assert winner(result, "address") == (full, "erp-2", "most_complete")
    # a string has no fields: the next rule decides
    assert winner(result, "name") == ("Acme", "crm-1", "system_of_record")


def test_max_and_min_compare_iso_dates_and_numbers() -> None:
    p = policy(
        ("most_recent",),
        attribute_rules={"start_date": ("min",), "end_date": ("max",), "headcount": ("max",)},
    )
    records = [
        rec(1, "psa", {"start_date": "2026-02-01", "end_date": "2026-06-30", "headcount": 9}, 5),
        rec(2, "erp", {"start_date": "2026-01-15", "end_date": "2026-12-31", "headcount": 12}, 1),
        rec(3, "crm", {"start_date": "2026-03-01", "end_date": "2026-09-30", "headcount": 10.5}),
    ]
    result = survive(records, p)
    assert winner(result, "start_date") == ("2026-01-15", "erp-2", "min")
    assert winner(result, "end_date") == ("2026-12-31", "erp-2", "max")
    assert winner(result, "headcount") == (12, "erp-2", "max")


def test_max_prefers_numbers_over_strings_and_falls_through_on_dicts() -> None:
    p = policy(("max", "oldest"))
    records = [
        rec(1, "crm", {"v": "zzz", "d": {"a": 1}}, updated_days=1),
        rec(2, "erp", {"v": 3, "d": {"a": 2}}, updated_days=2),
    ]
    result = survive(records, p)
    assert winner(result, "v") == (3, "erp-2", "max")
    assert winner(result, "d") == ({"a": 1}, "crm-1", "oldest")


def test_max_ties_go_to_the_most_recent() -> None:
    p = policy(("max",))
    records = [rec(1, "crm", {"end": "2026-12-31"}, 1), rec(2, "erp", {"end": "2026-12-31"}, 2)]
    assert survive(records, p).provenance["end"]["source_id"] == "erp-2"


def test_aggregate_keeps_every_distinct_value_most_recent_first() -> None:
    p = policy(attribute_rules={"email": (AGGREGATE,)})
    records = [
        rec(1, "hcm", {"email": "anna@firm.com"}, updated_days=1),
        rec(2, "psa", {"email": ["anna.s@firm.com", "anna@firm.com", ""]}, updated_days=3),
        rec(3, "erp", {"email": "anna@gmail.com"}, updated_days=2),
        rec(4, "crm", {"email": None}, updated_days=4),
    ]
    result = survive(records, p)
    assert result.attributes["email"] == ["anna.s@firm.com", "anna@firm.com", "anna@gmail.com"]
    assert result.provenance["email"] == {
        "source": "psa",
        "source_id": "psa-2",
        "rule": "aggregate",
        "sources": [["psa", "psa-2"], ["erp", "erp-3"], ["hcm", "hcm-1"]],
    }


def test_trust_prefers_the_trusted_source_while_its_value_is_fresh() -> None:
    p = policy(
        ("trust", "most_recent"),
        trust={"erp": SourceTrust(0.9, half_life_days=30), "psa": SourceTrust(0.5, 30)},
    )
    fresh = [rec(1, "erp", {"x": "erp"}, updated_days=0), rec(2, "psa", {"x": "psa"}, 10)]
    assert winner(survive(fresh, p), "x") == ("erp", "erp-1", "trust")


def test_trust_decays_an_old_trusted_value_below_a_fresh_less_trusted_one() -> None:
    p = policy(
        ("trust", "most_recent"),
        trust={"erp": SourceTrust(0.9, half_life_days=30), "psa": SourceTrust(0.5, 30)},
    )
    # two half-lives: 0.9 / 4 = 0.225 < 0.5
    stale = [rec(1, "erp", {"x": "erp"}, updated_days=0), rec(2, "psa", {"x": "psa"}, 60)]
    assert winner(survive(stale, p), "x") == ("psa", "psa-2", "trust")


def test_trust_without_half_life_never_decays_and_untrusted_sources_fall_through() -> None:
    p = policy(("trust", "oldest"), trust={"erp": SourceTrust(0.3)})
    records = [
        rec(1, "erp", {"x": "erp"}, updated_days=0),
        rec(2, "crm", {"x": "crm", "y": "crm"}, updated_days=3650),
        rec(3, "psa", {"y": "psa"}, updated_days=5),
    ]
    result = survive(records, p)
    assert winner(result, "x") == ("erp", "erp-1", "trust")
    assert winner(result, "y") == ("psa", "psa-3", "oldest")


def test_trust_measures_age_from_now_when_given() -> None:
    p = policy(
        ("trust",), trust={"erp": SourceTrust(0.6), "psa": SourceTrust(0.9, half_life_days=10)}
    )
    records = [rec(1, "erp", {"x": "erp"}, 0), rec(2, "psa", {"x": "psa"}, 0)]
    # by default age counts from the newest contribution: both are fresh
    assert survive(records, p).attributes["x"] == "psa"
    # twenty days on, psa's 0.9 has halved twice (0.225) and erp's 0.6 holds
    later = T0 + dt.timedelta(days=20)
    assert survive(records, p, now=later).attributes["x"] == "erp"


def test_a_chain_where_no_rule_yields_ends_with_the_most_recent_value() -> None:
    p = policy(("longest", "max"))
    records = [rec(1, "crm", {"a": {"k": 1}}, 1), rec(2, "erp", {"a": {"k": 2}}, 2)]
    assert winner(survive(records, p), "a") == ({"k": 2}, "erp-2", "most_recent")


def test_empty_values_never_win() -> None:
    p = policy(("system_of_record", "most_recent"))
    empties: list[Any] = [None, "", "   ", [], {}, {"city": None, "line1": ""}, [None, ""]]
    for empty in empties:
        records = [rec(1, "crm", {"x": empty}, 9), rec(2, "erp", {"x": "value"}, 1)]
        assert survive(records, p).attributes == {"x": "value"}, empty
    assert survive([rec(1, "crm", {"x": ""})], p) == Survived({}, {})
    assert all(is_empty(e) for e in empties) and not is_empty(0) and not is_empty(False)


def test_every_provenance_has_source_source_id_and_rule() -> None:
    for rule in sorted(RULES):
        p = policy(attribute_rules={"x": (rule,)}, trust={"erp": SourceTrust(1.0)})
        records = [rec(1, "crm", {"x": "a"}, 1), rec(2, "erp", {"x": "b"}, 2)]
        prov = survive(records, p).provenance["x"]
        assert {"source", "source_id", "rule"} <= prov.keys(), rule


# -- groups ---------------------------------------------------------------------------


TAX = AttributeGroup("tax", ("tax_id", "tax_country"))


def test_a_group_survives_from_one_record_and_never_mixes_sources() -> None:
    p = policy(("source_priority",), groups=(TAX,), source_order=("erp",))
    records = [
        rec(1, "crm", {"name": "Acme", "tax_id": "136695976"}, updated_days=1),
        rec(2, "erp", {"tax_id": "999999999", "tax_country": "AT"}, updated_days=5),
    ]
    result = survive(records, p)
    # crm wins the group; erp's country does not fill the gap, it belongs to another id
    assert result.attributes == {"name": "Acme", "tax_id": "136695976"}
    assert result.provenance["tax_id"] == {
        "source": "crm",
        "source_id": "crm-1",
        "rule": "source_priority",
    }


def test_a_group_has_its_own_rules_and_most_complete_counts_its_parts() -> None:
    group = AttributeGroup("tax", ("tax_id", "tax_country"), ("most_complete",))
    p = policy(("source_priority",), groups=(group,))
    records = [
        rec(1, "crm", {"tax_id": "136695976"}, updated_days=9),
        rec(2, "erp", {"tax_id": "999999999", "tax_country": "AT"}, updated_days=1),
    ]
    result = survive(records, p)
    assert result.attributes == {"tax_id": "999999999", "tax_country": "AT"}
    assert {result.provenance[n]["source_id"] for n in ("tax_id", "tax_country")} == {"erp-2"}
    assert result.provenance["tax_country"]["rule"] == "most_complete"


def test_a_group_is_decided_by_the_whole_record_under_most_frequent() -> None:
    name = AttributeGroup("name", ("given_name", "family_name"), ("most_frequent",))
    p = policy(groups=(name,))
    records = [
        rec(1, "hcm", {"given_name": "Anna", "family_name": "Schmidt"}, 1),
        rec(2, "psa", {"given_name": "Anna", "family_name": "Schmidt-Weber"}, 2),
        rec(3, "erp", {"given_name": "Anna", "family_name": "Schmidt-Weber"}, 3),
    ]
    result = survive(records, p)
    assert result.attributes == {"given_name": "Anna", "family_name": "Schmidt-Weber"}
    assert result.provenance["given_name"]["source_id"] == "erp-3"


# -- steward overrides ----------------------------------------------------------------


def test_a_pin_wins_whatever_the_rules_say() -> None:
    p = policy(("source_priority",))
    records = [rec(1, "crm", {"name": "Acme GmbH"}), rec(2, "erp", {"name": "ACME"})]
    pins = {
        "name": Pin("Acme Consulting GmbH", actor="jane", reason="per register"),
        "industry": Pin("IT services", actor=""),
    }
    result = survive(records, p, Overrides(pins=pins))
    assert result.attributes == {"name": "Acme Consulting GmbH", "industry": "IT services"}
    assert result.provenance["name"] == {
        "source": "steward",
        "source_id": "jane",
        "rule": "pin",
        "actor": "jane",
    }
    assert result.provenance["industry"]["source_id"] == ""


def test_a_pin_must_have_a_value() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Pin("  ", actor="jane")


def test_an_ignored_value_is_never_used() -> None:
    p = policy(("system_of_record", "most_recent"))
    records = [
        rec(1, "crm", {"name": "Acme", "phone": "+49 wrong"}, 1),
        rec(2, "erp", {"name": "ACME", "phone": "+49 1"}, 0),
        rec(3, "psa", {"email": "x@acme.de"}, 0),
    ]
    ignores = frozenset({("phone", "crm", "crm-1"), ("email", "psa", "psa-3")})
    result = survive(records, p, Overrides(ignores=ignores))
    assert winner(result, "phone") == ("+49 1", "erp-2", "most_recent")
    assert "email" not in result.attributes  # its only value is ignored
    assert result.attributes["name"] == "Acme"  # the ignore is for one attribute only


def test_ignoring_one_part_of_a_group_takes_the_record_out_of_the_group() -> None:
    p = policy(("source_priority",), groups=(TAX,))
    records = [
        rec(1, "crm", {"tax_id": "136695976", "tax_country": "AT"}),
        rec(2, "erp", {"tax_id": "136695976", "tax_country": "DE"}),
    ]
    result = survive(records, p, Overrides(ignores=frozenset({("tax_country", "crm", "crm-1")})))
    assert result.attributes == {"tax_id": "136695976", "tax_country": "DE"}
    assert {result.provenance[n]["source_id"] for n in ("tax_id", "tax_country")} == {"erp-2"}


# -- the original rule set stays available ----------------------------------------------


def test_a_system_of_record_name_instead_of_a_policy_keeps_the_original_rules() -> None:
    records = [rec(1, "crm", {"name": "Acme"}, 1), rec(2, "erp", {"name": "X", "phone": "+1"}, 9)]
    expected = survive(records, policy())
    assert survive(records, "crm") == survive(records, system_of_record="crm") == expected
    assert expected.provenance["name"]["rule"] == "system_of_record"
    assert expected.provenance["phone"]["rule"] == "most_recent"
    with pytest.raises(TypeError):
        survive(records, "crm", system_of_record="crm")
    with pytest.raises(TypeError):
        survive(records, policy(), system_of_record="crm")


# -- configuration ----------------------------------------------------------------------


CATALOG = load_sources()


def test_the_packaged_configuration_loads_for_all_four_entities() -> None:
    packaged = default_policy(CATALOG, attributes=SCHEMA_ATTRIBUTES)
    assert isinstance(packaged, SurvivorshipPolicy)
    for entity in ENTITIES:
        entity_policy = packaged.for_entity(entity)
        assert entity_policy.entity == entity
        assert entity_policy.system_of_record == CATALOG.system_of_record(entity)
        assert entity_policy.priority[0] == CATALOG.system_of_record(entity)
    with pytest.raises(UnknownEntity):
        packaged.for_entity("vendor")


def test_the_packaged_worker_rules_keep_names_whole_and_every_email() -> None:
    worker = default_policy(CATALOG).for_entity("worker")
    records = [
        rec(1, "hcm", {"family_name": "Schmidt", "given_name": "Anna", "email": "a@firm.com"}, 1),
        rec(2, "psa", {"family_name": "Schmidt", "middle_name": "M.", "email": "as@firm.com"}, 5),
    ]
    result = survive(records, worker)
    assert result.attributes == {
        "family_name": "Schmidt",
        "given_name": "Anna",
        "email": ["as@firm.com", "a@firm.com"],
    }


def test_the_system_of_record_comes_from_the_catalog_mapping_or_function() -> None:
    text = '[customer]\ndefault = ["source_priority"]\nsources = ["psa"]\n'
    from_mapping = parse_policy(text, {"customer": "erp"}).for_entity("customer")
    from_function = parse_policy(text, lambda entity: "erp").for_entity("customer")
    assert from_mapping.priority == from_function.priority == ("erp", "psa")
    assert parse_policy(text, CATALOG).for_entity("customer").priority == ("crm", "psa")


def test_an_entity_left_out_gets_system_of_record_then_most_recent() -> None:
    project = parse_policy("", CATALOG).for_entity("project")
    assert project.default_rules == DEFAULT_RULES and project.system_of_record == "psa"


def test_a_full_configuration_parses() -> None:
    text = """
    [customer]
    default = "source_priority"
    sources = ["erp"]
    [customer.attributes]
    website = ["longest", "most_recent"]
    [customer.groups]
    tax = { attributes = ["tax_id", "tax_country"], rules = ["trust", "most_complete"] }
    [customer.trust]
    erp = { trust = 0.9, half_life_days = 365 }
    psa = 0.4
    """
    customer = parse_policy(text, CATALOG, attributes=SCHEMA_ATTRIBUTES).for_entity("customer")
    assert customer.default_rules == ("source_priority",)
    assert customer.attribute_rules == {"website": ("longest", "most_recent")}
    assert customer.groups == (
        AttributeGroup("tax", ("tax_id", "tax_country"), ("trust", "most_complete")),
    )
    assert customer.trust == {"erp": SourceTrust(0.9, 365.0), "psa": SourceTrust(0.4)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[customer]\ndefault = ['newest']", r"customer\.default: unknown rule 'newest'"),
        ("[customer.attributes]\nemail = ['most_recent', 'freshest']", "unknown rule 'freshest'"),
        ("[custmer]\ndefault = ['most_recent']", "unknown entity 'custmer'"),
        ("[customer]\ndefualt = ['most_recent']", "unknown key 'defualt'"),
        (
            "[customer.groups]\ntax = ['tax_id', 'tax_country']\nids = ['duns', 'tax_id']",
            "'tax_id' is also in group 'tax'; groups may not overlap",
        ),
        ("[customer.groups]\ntax = ['tax_id', 'tax_id']", "also in itself"),
        ("[customer.groups]\ntax = ['tax_id']", "at least two attributes"),
        (
            "[customer.attributes]\ntax_id = ['max']\n[customer.groups]\ntax = ['tax_id', 'duns']",
            "'tax_id' also has its own rules",
        ),
        (
            "[customer.groups]\ntax = { attributes = ['tax_id', 'duns'], rules = ['longest'] }",
            "'longest' compares single values and cannot decide a group",
        ),
        ("[customer]\ndefault = ['longest']\n[customer.groups]\nt = ['tax_id', 'duns']", "group"),
        ("[worker.attributes]\nemail = ['aggregate', 'most_recent']", "must be the only rule"),
        ("[worker]\ndefault = ['aggregate']", "not the default"),
        ("[worker.attributes]\nemail = []", "the rule chain is empty"),
        ("[worker]\nsources = ['erp', 'erp']", "names a source twice"),
        ("[worker]\nsources = 'erp'", "expected a list of names"),
        ("[worker.trust]\nerp = 1.5", r"trust must be within \[0, 1\]"),
        ("[worker.trust]\nerp = { trust = 0.5, half_life_days = 0 }", "must be positive"),
        ("[worker.trust]\nerp = { trust = 0.5, decay = 3 }", "unknown key 'decay'"),
        ("[worker.trust]\nerp = 'high'", "are numbers"),
        ("[worker.attributes]\nemial = ['aggregate']", "unknown attribute 'emial'"),
        ("[worker\n", "not valid TOML"),
    ],
)
def test_configuration_mistakes_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, CATALOG, attributes=SCHEMA_ATTRIBUTES)
    assert issubclass(PolicyError, ValueError)


# -- properties ------------------------------------------------------------------------

SOURCES = ("crm", "erp", "psa", "hcm")
GROUP = AttributeGroup("cd", ("c", "d"))
values = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "a", "bb", "ccc", "2026-01-01", "2025-12-31"]),
    st.integers(-2, 2),
    st.just([]),
    st.lists(st.sampled_from(["x@a.de", "y@a.de", "", "z@b.de"]), max_size=3),
    st.dictionaries(st.sampled_from(["city", "line1"]), st.sampled_from(["B", "", None])),
)
record_values = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), values, max_size=5)
records_strategy = st.lists(
    st.tuples(
        st.sampled_from(SOURCES),
        record_values,
        st.one_of(st.none(), st.integers(0, 3)),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=6,
).map(lambda specs: [rec(i, s, v, u, r) for i, (s, v, u, r) in enumerate(specs, start=1)])
chains = st.lists(st.sampled_from(sorted(RULES - {AGGREGATE})), min_size=1, max_size=3).map(tuple)
policies = st.builds(
    lambda default, a, b, group, order, trust: EntityPolicy(
        "customer",
        system_of_record="crm",
        default_rules=default,
        attribute_rules={"a": a, "b": b},
        groups=(AttributeGroup("cd", ("c", "d"), group),),
        source_order=tuple(order),
        trust=trust,
    ),
    chains,
    st.one_of(chains, st.just((AGGREGATE,))),
    st.just((AGGREGATE,)),
    st.lists(st.sampled_from(sorted(RECORD_RULES)), min_size=1, max_size=3).map(tuple),
    st.lists(st.sampled_from(SOURCES), unique=True),
    st.dictionaries(
        st.sampled_from(SOURCES),
        st.builds(SourceTrust, st.sampled_from([0.2, 0.5, 0.9]), st.sampled_from([None, 1, 2])),
    ),
)


@st.composite
def overrides_for(draw: st.DrawFn, records: list[Contribution]) -> Overrides:
    keys = [(n, c.source, c.source_id) for c in records for n in c.values]
    ignores = draw(st.sets(st.sampled_from(keys))) if keys else set()
    pins = draw(st.dictionaries(st.sampled_from(["a", "e", "f"]), st.just(Pin("P", "jane"))))
    return Overrides(pins=pins, ignores=frozenset(ignores))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@given(st.data(), records_strategy, policies)
def test_the_result_does_not_depend_on_the_order_of_the_contributions(
    data: st.DataObject, records: list[Contribution], p: EntityPolicy
) -> None:
    overrides = data.draw(overrides_for(records))
    shuffled = data.draw(st.permutations(records))
    assert survive(shuffled, p, overrides) == survive(records, p, overrides)


@given(st.data(), records_strategy, policies)
def test_every_golden_value_comes_from_a_contribution_or_a_pin(
    data: st.DataObject, records: list[Contribution], p: EntityPolicy
) -> None:
    overrides = data.draw(overrides_for(records))
    result = survive(records, p, overrides)
    by_id = {(c.source, c.source_id): c for c in records}
    for name, value in result.attributes.items():
        prov = result.provenance[name]
        assert {"source", "source_id", "rule"} <= prov.keys()
        if name in overrides.pins:
            assert value == overrides.pins[name].value and prov["rule"] == "pin"
            continue
        assert not is_empty(value)
        if p.rules_for(name) == (AGGREGATE,):
            continue
        source = by_id[prov["source"], prov["source_id"]]
        assert source.values[name] == value
        ignored_group = GROUP.attributes if name in GROUP.attributes else (name,)
        assert not any(overrides.ignored(n, source) for n in ignored_group)
    # a group's parts come from one record
    group_ids = {
        result.provenance[n]["source_id"] for n in GROUP.attributes if n in result.provenance
    }
    assert len(group_ids) <= 1


# Few distinct values, so that records often repeat each other's.
few_values = st.sampled_from([None, "", "x", "y", ["x", "z"], ["", "y"], {"k": "x"}, 1])
aggregate_records = st.lists(
    st.tuples(st.sampled_from(SOURCES), few_values, few_values, st.integers(0, 3)),
    min_size=1,
    max_size=6,
).map(lambda specs: [rec(i, s, {"a": a, "b": b}, u) for i, (s, a, b, u) in enumerate(specs, 1)])


@given(st.data(), aggregate_records, policies)
def test_aggregate_holds_every_distinct_non_empty_value_exactly_once(
    data: st.DataObject, records: list[Contribution], p: EntityPolicy
) -> None:
    overrides = Overrides(ignores=data.draw(overrides_for(records)).ignores)
    result = survive(records, p, overrides)
    for name in ("a", "b"):
        if p.rules_for(name) != (AGGREGATE,):
            continue
        expected = set()
        for c in records:
            value = c.values.get(name)
            if is_empty(value) or overrides.ignored(name, c):
                continue
            for item in value if isinstance(value, list) else [value]:
                if not is_empty(item):
                    expected.add(canonical(item))
        got = [canonical(v) for v in result.attributes.get(name, [])]
        assert len(got) == len(set(got))
        assert set(got) == expected
