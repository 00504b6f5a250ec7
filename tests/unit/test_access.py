"""Masking and the authentication settings, without a server."""

from __future__ import annotations

from mdm.api.sensitive import MASK, compared_fields, mask
from schemas.entities import SENSITIVE_ATTRIBUTES

S = SENSITIVE_ATTRIBUTES


def test_the_schemas_mark_the_three_sensitive_attributes() -> None:
    assert frozenset({"national_id", "date_of_birth", "cost_rate"}) == S


def test_mask_replaces_values_wherever_they_are_and_keeps_the_rest() -> None:
    answer = {
        "attributes": {
            "family_name": "Lovelace",
            "national_id": "7561234567897",
            "cost_rate": {"amount": "187.50", "currency": "EUR"},
            "date_of_birth": None,
        },
        "provenance": {"national_id": {"source": "hcm", "source_id": "H-1", "rule": "pin"}},
        "versions": [{"changed": ["national_id"], "attributes": {"national_id": "1"}}],
        "explanation": {
            "fields": [
                {"field": "date_of_birth", "left": "1983-07-19", "right": "1983-07-19"},
                {"field": "family_name", "left": "lovelace", "right": "lovelace"},
            ]
        },
        "pins": [{"attribute": "national_id", "value": "7561234567897", "actor": "anna"}],
    }
    masked = mask(answer, S)
    assert masked["attributes"] == {
        "family_name": "Lovelace",
        "national_id": MASK,
        "cost_rate": MASK,
        "date_of_birth": None,  # nothing to hide
    }
    assert masked["provenance"] == answer["provenance"]
    assert masked["versions"][0] == {
        "changed": ["national_id"],
        "attributes": {"national_id": MASK},
    }
    assert masked["explanation"]["fields"][0] == {
        "field": "date_of_birth",
        "left": MASK,
        "right": MASK,
    }
    assert masked["explanation"]["fields"][1] == answer["explanation"]["fields"][1]
    assert masked["pins"][0] == {"attribute": "national_id", "value": MASK, "actor": "anna"}
    assert answer["attributes"]["national_id"] == "7561234567897"  # a copy, not in place


def test_mask_hides_whether_sensitive_values_agree() -> None:
    row = {"field": "national_id", "level": "exact", "level_index": 0, "left": "7561234567897"}
    row |= {"right": "7561234567897", "weight": 19.9, "tf_adjustment": 0.0, "member": 0}
    answer = {
        "explanation": {"weight": 3.5, "fields": [row]},
        "different": ["address", "date_of_birth"],
    }
    masked = mask(answer, S)
    assert masked["explanation"]["fields"][0] == {
        **{k: MASK for k in row if k not in ("field", "member")},
        "field": "national_id",
        "member": 0,
    }
    assert masked["explanation"]["weight"] == 3.5
    assert masked["different"] == ["address"]


def test_a_sensitive_attribute_masks_every_match_field_that_reads_it() -> None:
    names = frozenset({"family_name"})
    fields = compared_fields(names)
    assert {"family_name", "given_name"} <= fields  # a worker's given_name field reads both
    answer = {
        "attributes": {"given_name": "Ada", "family_name": "Lovelace"},
        "fields": [{"field": "given_name", "level": "exact", "left": "ada", "right": "ada"}],
    }
    masked = mask(answer, names, fields)
    assert masked["attributes"] == {"given_name": "Ada", "family_name": MASK}
    assert masked["fields"][0] == {
        "field": "given_name",
        "level": MASK,
        "left": MASK,
        "right": MASK,
    }


def test_auth_settings_from_the_environment() -> None:
    from mdm.settings import Settings

    embedded = Settings.from_env({})
    assert embedded.auth.require_credentials is False  # embedded mode: a dev key is printed
    assert embedded.auth.jwt is None
    production = Settings.from_env(
        {
            "MDM_DATABASE_URL": "postgresql://mdm@db/mdm",
            "MDM_ADMIN_KEY": "k",
            "MDM_RATE_LIMIT": "0",
            "MDM_SENSITIVE_ATTRIBUTES": "employee_number, phone",
        }
    )
    assert production.auth.require_credentials is True
    assert production.auth.admin_key == "k"
    assert production.auth.read_rate == production.auth.write_rate == 0
    assert production.auth.sensitive_attributes == ("employee_number", "phone")
