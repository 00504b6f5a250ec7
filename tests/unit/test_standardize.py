"""Standardizers and strong keys of the matching library (pure, no I/O)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import (
    Issue,
    StandardizedRecord,
    company_key,
    fold,
    standardize_record,
    strong_keys,
)
from matching import standardize as s
from matching.text import _clean_unicode, _fold_unicode, clean_text

# --- text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Müller-Lüdenscheidt, S.A. ", "muller ludenscheidt s a"),
        ("Straße", "strasse"),
        ("Søren Kierkegård", "soren kierkegard"),
        ("Æbleskiver", "aebleskiver"),
        ("Łódź", "lodz"),
        ("Œuvre  &  Co.", "oeuvre co"),
        ("ÉCOLE\tPOLYTECHNIQUE\n", "ecole polytechnique"),
        ("Macy's", "macys"),
        ("", ""),
    ],
)
def test_fold(raw: str, expected: str) -> None:
    assert fold(raw) == expected


def test_clean_text_keeps_case_and_accents_but_not_extra_space() -> None:
    assert clean_text("  José \t  García\u200b ") == "José García"
    # NFC: a decomposed "é" becomes the single code point.
    assert clean_text("Jose\u0301") == "José"


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_takes_a_shortcut_to_the_same_answer(text: str) -> None:
    assert fold(text) == _fold_unicode(text)
    assert clean_text(text) == _clean_unicode(text)


@given(st.text())
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(st.text())
def test_fold_has_no_uppercase_and_single_spaces(text: str) -> None:
    folded = fold(text)
    assert not any(c.isupper() for c in folded)
    assert "  " not in folded
    assert folded == folded.strip()


# --- names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["The Acme Corp.", "ACME Corporation", "Acme Corp. Ltd", "acme, inc.", "Acme GmbH", "ACME LLC"],
)
def test_company_key_drops_legal_suffixes(raw: str) -> None:
    assert company_key(raw) == "acme"


def test_company_key_ampersand_accents_and_initials() -> None:
    assert company_key("Procter & Gamble Co.") == "procter and gamble"
    assert company_key("Procter and Gamble Company") == "procter and gamble"
    assert company_key("Müller-Lüdenscheidt, S.A.") == "muller ludenscheidt"
    assert company_key("I.B.M. Corp") == company_key("IBM") == "ibm"
    assert company_key("Smith & Co") == company_key("Smith and Co.") == "smith"


def test_company_key_never_strips_a_name_to_nothing() -> None:
    assert company_key("Company Ltd") == "company"
    assert company_key("Ltd") == "ltd"
    assert company_key("") == ""


def test_legal_form() -> None:
    assert s.legal_form("Acme Ltd") == "Limited"
    assert s.legal_form("Acme Corp. Ltd") == "Limited"  # the last suffix decides
    assert s.legal_form("Müller GmbH & Co. KG") == "Limited Partnership"
    assert s.legal_form("Acme") is None
    # cleanco lists "S.A." under two types: ambiguous, so no answer.
    assert s.legal_form("Acme S.A.") is None


def test_person_name() -> None:
    assert s.person_name("  Anne-Marie   O'Neil ") == s.Standardized("Anne-Marie O'Neil")
    bad = s.person_name("12345")
    assert (bad.value, bad.code) == ("12345", "invalid")
    assert bad.warning


def test_company_name_is_display_clean_and_keeps_suffix() -> None:
    assert s.company_name("  ACME   Corp. ").value == "ACME Corp."


# --- contact data --------------------------------------------------------------


def test_email() -> None:
    assert s.email("  John.Doe@Example.COM ") == s.Standardized("john.doe@example.com")
    assert s.email("mailto:a@b.io").value == "a@b.io"
    for raw in ["john", "john@localhost", "a b@c.de", "a@@b.de", "@b.de", "a@b..de"]:
        result = s.email(raw)
        assert result.value == raw and result.warning, raw


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("030 901820", "DE", "+4930901820"),
        ("+49 30 901820", None, "+4930901820"),
        ("0049 30 901820", None, "+4930901820"),
        ("(202) 456-1111", "US", "+12024561111"),
        ("202.456.1111", "us", "+12024561111"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 7911 123456", "DE", "+447911123456"),  # a "+" number ignores the region
    ],
)
def test_phone_valid(raw: str, country: str | None, expected: str) -> None:
    assert s.phone(raw, country) == s.Standardized(expected)


@pytest.mark.parametrize(
    ("raw", "country"),
    [("12345", "DE"), ("(123) 456-7890", "US"), ("020 7946 095", "GB"), ("call me", "GB")],
)
def test_phone_invalid_keeps_raw(raw: str, country: str) -> None:
    result = s.phone(raw, country)
    assert result.value == raw
    assert result.code == "invalid"


def test_phone_without_country_is_unverified() -> None:
    result = s.phone("030 901820", None)
    assert (result.value, result.code) == ("030 901820", "unverified")


def test_website_and_domain() -> None:
    assert s.website("HTTPS://WWW.Acme.COM/About/").value == "https://www.acme.com/About"
    assert s.website("www.Acme.com/") == s.Standardized("www.acme.com")
    assert s.website("localhost").warning
    assert s.website_domain("https://www.Acme.com/contact") == "acme.com"
    assert s.website_domain("acme.co.uk") == "acme.co.uk"
    assert s.website_domain("not a site") is None


# --- countries, currencies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("de", "DE"),
        ("DEU", "DE"),
        ("Germany", "DE"),
        ("Deutschland", "DE"),
        ("UK", "GB"),
        ("England", "GB"),
        ("Scotland", "GB"),
        ("United Kingdom", "GB"),
        ("U.S.A.", "US"),
        ("USA", "US"),
        ("United States of America", "US"),
        ("Holland", "NL"),
        ("the Netherlands", "NL"),
        ("Côte d'Ivoire", "CI"),
    ],
)
def test_country(raw: str, expected: str) -> None:
    assert s.country(raw) == s.Standardized(expected)


def test_unknown_country_keeps_raw() -> None:
    result = s.country("Narnia")
    assert (result.value, result.code) == ("Narnia", "invalid")


def test_currency() -> None:
    assert s.currency(" eur ") == s.Standardized("EUR")
    assert s.currency("€").value == "EUR"
    assert s.currency("XYZ").warning
    assert s.currency("euro").value == "euro"


# --- identifiers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        # Canonical form: stdnum's compact national form, no VAT prefix.
        ("DE136695976", None, "136695976"),
        ("DE 136 695 976", "DE", "136695976"),
        ("136695976", "DE", "136695976"),
        ("136.695.976", "Germany", "136695976"),
        ("FR40303265045", None, "40303265045"),
        ("FR 40 303 265 045", "fr", "40303265045"),
        ("40303265045", "FR", "40303265045"),
        ("ATU13585627", None, "U13585627"),
        ("EL094259216", None, "094259216"),
        ("094259216", "GR", "094259216"),
        ("GB980780684", None, "980780684"),
        ("91-1144442", "US", "911144442"),  # an EIN
        ("83 914 571 673", "AU", "83914571673"),  # an ABN
    ],
)
def test_tax_id_valid(raw: str, country: str | None, expected: str) -> None:
    assert s.tax_id(raw, country) == s.Standardized(expected)


def test_tax_id_invalid_is_compacted_and_warned() -> None:
    result = s.tax_id("de 136.695-977", "DE")
    assert (result.value, result.code) == ("DE136695977", "invalid")
    assert s.tax_id("DE136695977", None).code == "invalid"  # prefix known, number wrong
    # A valid French number declared as German.
    assert s.tax_id("FR40303265045", "DE").warning == "tax id is a FR VAT number, not a DE one"


def test_tax_id_without_country_is_not_validated() -> None:
    result = s.tax_id("123 456 789", None)
    assert result == s.Standardized(
        "123456789", "tax id not validated: country unknown", "unverified"
    )


def test_infer_tax_country() -> None:
    assert s.infer_tax_country("DE 136 695 976") == "DE"
    assert s.infer_tax_country("EL094259216") == "GR"
    assert s.infer_tax_country("GB980780684") == "GB"
    assert s.infer_tax_country("DE136695977") is None  # bad check digit
    assert s.infer_tax_country("911144442") is None


def test_duns() -> None:
    assert s.duns("15-048-3782") == s.Standardized("150483782")
    assert s.duns("12345").warning


def test_national_id() -> None:
    assert s.national_id("536-90-4399", "US") == s.Standardized("536904399")
    assert s.national_id("078-05-1120", "US").code == "invalid"  # a blacklisted SSN
    # No country, or no stdnum module for it: compacted, no warning.
    assert s.national_id("ab 12.34-56 c", None) == s.Standardized("AB123456C")
    assert s.national_id("AB 12 34 56 C", "GB") == s.Standardized("AB123456C")


def test_simple_identifiers() -> None:
    assert s.registration_number(" hrb 12345 ").value == "HRB12345"
    assert s.employee_number(" e 00 42 ").value == "E0042"
    assert s.postal_code(" sw1a   1aa ", "GB").value == "SW1A 1AA"
    assert s.iso_date("2024-01-31").value == "2024-01-31"
    assert s.iso_date("31/01/2024").warning


# --- records -------------------------------------------------------------------------


def test_customer_record_is_standardized() -> None:
    result = standardize_record(
        "customer",
        {
            "name": "  ACME   GmbH ",
            "legal_name": "ACME  Gesellschaft mbH",
            "tax_id": "DE 136 695 976",
            "tax_country": "Germany",
            "email": " Billing@ACME.de ",
            "phone": "030 901820",
            "website": "WWW.ACME.DE/",
            "address": {"line1": " Hauptstr.  1 ", "postal_code": "10115", "country": "deu"},
            "status": "active",
            "crm_segment": ["A", 1],
        },
    )
    assert isinstance(result, StandardizedRecord)
    assert result.errors == () and result.warnings == ()
    assert result.values == {
        "name": "ACME GmbH",
        "legal_name": "ACME Gesellschaft mbH",
        "tax_id": "136695976",
        "tax_country": "DE",
        "email": "billing@acme.de",
        "phone": "+4930901820",  # read with the address country
        "website": "www.acme.de",
        "address": {"line1": "Hauptstr. 1", "postal_code": "10115", "country": "DE"},
        "status": "active",
        "crm_segment": ["A", 1],  # unknown attributes pass through
    }


def test_required_field_blank_is_an_error() -> None:
    for entity, name in [
        ("customer", "name"),
        ("legal_entity", "name"),
        ("project", "name"),
    ]:
        result = standardize_record(entity, {name: "   \t "})
        assert result.errors == (Issue(name, "required", f"{name} must not be empty"),)
    # A worker: a family or a given name (test_a_worker_needs_a_family_or_a_given_name).
    worker = standardize_record("worker", {"family_name": "   \t "})
    assert worker.errors == (
        Issue("family_name", "required", "a worker needs a family_name or a given_name"),
    )


def test_invalid_optional_value_is_kept_raw_with_warning() -> None:
    result = standardize_record(
        "worker", {"family_name": "Smith", "email": "not-an-email", "phone": "12"}
    )
    assert result.errors == ()
    assert result.values["email"] == "not-an-email"
    assert result.values["phone"] == "12"
    assert {(w.path, w.code) for w in result.warnings} == {
        ("email", "invalid"),
        ("phone", "unverified"),  # no address country to read it in
    }


def test_nested_paths_in_warnings() -> None:
    result = standardize_record(
        "worker",
        {
            "family_name": "Smith",
            "address": {"country": "Atlantis"},
            "cost_rate": {"amount": "12,5O", "currency": "bitcoin"},
        },
    )
    assert {w.path for w in result.warnings} == {
        "address.country",
        "cost_rate.amount",
        "cost_rate.currency",
    }
    assert result.values["cost_rate"] == {"amount": "12,5O", "currency": "bitcoin"}


def test_money_currency_is_upper_cased() -> None:
    result = standardize_record(
        "project", {"name": "Migration", "contract_value": {"amount": "12.50", "currency": "eur"}}
    )
    assert result.values["contract_value"] == {"amount": "12.50", "currency": "EUR"}
    assert result.warnings == ()


def test_unknown_entity_raises() -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        standardize_record("supplier", {"name": "x"})
    with pytest.raises(ValueError, match="unknown entity"):
        strong_keys("supplier", {})


def test_tax_country_is_inferred_silently() -> None:
    result = standardize_record("customer", {"name": "Acme", "tax_id": "FR40303265045"})
    assert result.values["tax_country"] == "FR"
    assert result.values["tax_id"] == "40303265045"
    assert result.warnings == ()


def test_customer_tax_id_falls_back_to_address_country() -> None:
    result = standardize_record(
        "customer", {"name": "Acme Inc.", "tax_id": "91-1144442", "address": {"country": "USA"}}
    )
    assert result.values["tax_id"] == "911144442"
    assert result.values["tax_country"] == "US"
    assert strong_keys("customer", result.values, result.warnings) == ["tax:US:911144442"]


# --- strong keys ------------------------------------------------------------------------


def _keys(entity: str, attributes: dict[str, object]) -> list[str]:
    result = standardize_record(entity, attributes)
    return strong_keys(entity, result.values, result.warnings)


def test_same_company_from_two_systems_gets_the_same_tax_key() -> None:
    crm = _keys(
        "customer", {"name": "ACME GmbH", "tax_id": "DE 136 695 976", "tax_country": "Germany"}
    )
    erp = _keys("customer", {"name": "Acme", "tax_id": "DE136695976"})
    assert crm == erp == ["tax:DE:136695976"]


def test_invalid_tax_id_gives_no_key() -> None:
    keys = _keys("customer", {"name": "Acme", "tax_id": "DE136695977", "duns": "15-048-3782"})
    assert keys == ["duns:150483782"]
    assert _keys("customer", {"name": "Acme", "tax_id": "123456789"}) == []  # no country


def test_customer_email_is_not_a_key() -> None:
    assert _keys("customer", {"name": "Acme", "email": "billing@agency.com"}) == []


def test_legal_entity_keys() -> None:
    keys = _keys(
        "legal_entity",
        {
            "name": "Acme SAS",
            "country": "France",
            "tax_id": "FR 40 303 265 045",
            "registration_number": "rcs 303 265 045",
        },
    )
    assert keys == ["reg:FR:RCS303265045", "tax:FR:40303265045"]


def test_worker_keys() -> None:
    keys = _keys(
        "worker",
        {
            "family_name": "Smith",
            "email": "J.Smith@Example.com",
            "national_id": "536-90-4399",
            "employee_number": "e 1001",
            "address": {"country": "United States"},
        },
    )
    assert keys == ["email:j.smith@example.com", "emp:E1001", "nid:US:536904399"]
    assert _keys("worker", {"family_name": "Smith", "national_id": "ab123456c"}) == [
        "nid:??:AB123456C"
    ]
    # An invalid SSN never links workers.
    assert (
        _keys(
            "worker",
            {"family_name": "Smith", "national_id": "078-05-1120", "address": {"country": "US"}},
        )
        == []
    )


def test_project_code_key() -> None:
    assert _keys("project", {"name": "Migration", "code": " prj 0042 "}) == ["code:PRJ0042"]


def test_keys_skip_values_with_warnings() -> None:
    values = {"tax_id": "136695976", "tax_country": "DE", "duns": "150483782"}
    warnings = [Issue("tax_id", "invalid", "made up")]
    assert strong_keys("customer", values, warnings) == ["duns:150483782"]


# --- properties ---------------------------------------------------------------------

_OPTIONAL_TEXT = {
    "customer": [
        "legal_name",
        "tax_id",
        "tax_country",
        "duns",
        "website",
        "email",
        "phone",
        "industry",
    ],
    "worker": [
        "given_name",
        "date_of_birth",
        "email",
        "phone",
        "national_id",
        "employee_number",
        "job_title",
    ],
    "legal_entity": ["registration_number", "tax_id", "country", "base_currency"],
    "project": ["code", "start_date", "status"],
}
_REQUIRED = {"customer": "name", "worker": "family_name", "legal_entity": "name", "project": "name"}
_ADDRESS_KEYS = ["line1", "line2", "city", "region", "postal_code", "country"]


@st.composite
def _records(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    entity = draw(st.sampled_from(sorted(_OPTIONAL_TEXT)))
    fields = draw(st.lists(st.sampled_from(_OPTIONAL_TEXT[entity]), unique=True))
    attrs: dict[str, object] = {_REQUIRED[entity]: draw(st.text())}
    attrs.update({f: draw(st.text()) for f in fields})
    if entity != "project" and draw(st.booleans()):
        attrs["address"] = draw(st.dictionaries(st.sampled_from(_ADDRESS_KEYS), st.text()))
    return entity, attrs


@settings(max_examples=300, deadline=None)
@given(_records())
def test_standardize_record_never_raises_and_stays_json(record: tuple[str, dict]) -> None:
    entity, attrs = record
    result = standardize_record(entity, attrs)
    json.dumps(result.values)  # JSONB-storable
    keys = strong_keys(entity, result.values, result.warnings)
    assert keys == sorted(set(keys))
    # Standardizing twice changes nothing more (except errors stay errors).
    again = standardize_record(entity, result.values)
    assert again.values == result.values


def test_a_worker_needs_a_family_or_a_given_name() -> None:
    only_given = standardize_record("worker", {"given_name": "Madonna"})
    assert not only_given.errors
    assert [(w.path, w.code) for w in only_given.warnings] == [("family_name", "missing")]
    neither = standardize_record("worker", {"email": "x@example.com"})
    assert [(e.path, e.code) for e in neither.errors] == [("family_name", "required")]
    blank = standardize_record("worker", {"family_name": "  ", "given_name": ""})
    assert [(e.path, e.code) for e in blank.errors] == [("family_name", "required")]
    both = standardize_record("worker", {"family_name": "Ciccone", "given_name": "Madonna"})
    assert not both.errors and not both.warnings
