"""Identifiers are evidence, not verdicts; people of one household are not one person.

The packaged default models, scored as the hub scores a candidate golden record
(`score_cluster` and `decide`), without term frequencies.
"""

from __future__ import annotations

from typing import Any

from matching import standardize_record
from matching.model import MatchModel, ModelError, default_model
from matching.prepare import Prepared, prepare
from matching.scoring import (
    ClusterScore,
    decide,
    score_cluster,
    score_clusters,
    strangers,
    vouches,
)

WORKER = default_model("worker")
HOME = {"line1": "Rosenweg 12", "postal_code": "79098", "city": "Freiburg", "country": "DE"}
NID = "12345678901"


def _worker(**attrs: Any) -> Prepared:
    return prepare(WORKER, "worker", standardize_record("worker", attrs).values)


def _company(entity: str, **attrs: Any) -> Prepared:
    model = default_model(entity)
    return prepare(model, entity, standardize_record(entity, attrs).values)


def _outcome(model: MatchModel, incoming: Prepared, members: list[Prepared]) -> str:
    return decide(model, {"g": score_cluster(model, incoming, members)}).outcome


def _score(incoming: Prepared, members: list[Prepared]) -> ClusterScore:
    return score_cluster(WORKER, incoming, members)


# --- identifiers weighed with the names -------------------------------------------


def test_a_shared_national_id_on_a_different_name_goes_to_review_at_most() -> None:
    held = _worker(given_name="Jonas", family_name="Keller", national_id=NID, address=HOME)
    form = _worker(given_name="Miriam", family_name="Okafor", national_id=NID, address=HOME)
    score = _score(form, [held])
    assert score.conflict == "no name agrees"
    assert score.probability >= WORKER.thresholds.auto_link  # the weights alone would link
    assert _outcome(WORKER, form, [held]) == "review"
    assert not vouches(WORKER, form, held)


def test_a_shared_national_id_with_a_compatible_name_vouches() -> None:
    held = _worker(given_name="William", family_name="Keller", national_id=NID)
    for other in (
        _worker(given_name="Bill", family_name="Kellner", national_id=NID),  # nickname, fuzzy
        _worker(given_name="William", family_name="Brandt", national_id=NID),  # married
        _worker(given_name="Keller", family_name="William", national_id=NID),  # swapped
    ):
        assert vouches(WORKER, other, held)
    assert not vouches(WORKER, _worker(given_name="William", family_name="Keller"), held)


def test_swapped_names_with_a_typo_are_a_compatible_name() -> None:
    # Swapped, and one of the two names mistyped: only one crossed comparison holds.
    held = _worker(given_name="Mia", family_name="Fenwick", national_id=NID)
    swapped = _worker(given_name="Fenwick", family_name="Mi", national_id=NID)
    assert vouches(WORKER, swapped, held)
    assert _score(swapped, [held]).conflict is None


def test_one_person_with_two_national_ids_links() -> None:
    held = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1984-03-17",
                   national_id=NID, address=HOME)  # fmt: skip
    other = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1984-03-17",
                    national_id="98765432109", address=HOME)  # fmt: skip
    score = _score(other, [held])
    assert {f.field: f.level for f in score.fields}["national_id"] == "else"
    assert score.conflict is None
    assert _outcome(WORKER, other, [held]) == "link"


def test_a_national_id_one_typo_or_transposition_off_is_near_agreement() -> None:
    held = _worker(given_name="Jonas", family_name="Keller", national_id=NID)
    for typo in ("12345678907", "12345687901"):
        score = _score(_worker(given_name="Jonas", family_name="Keller", national_id=typo), [held])
        row = {f.field: f for f in score.fields}["national_id"]
        assert row.level == "damerau_levenshtein<=1" and row.weight > 5


def test_national_ids_further_apart_keep_namesakes_apart() -> None:
    held = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1984-03-17",
                   national_id=NID)  # fmt: skip
    other = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1984-03-17",
                    national_id="12345670981")  # fmt: skip
    assert {f.field: f.level for f in _score(other, [held]).fields}["national_id"] == "else"
    assert _outcome(WORKER, other, [held]) != "link"


# --- people of one household ---------------------------------------------------


def test_household_members_are_not_linked() -> None:
    father = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                     address=HOME, national_id=NID)  # fmt: skip
    cases = {
        "given_name disagrees": _worker(
            given_name="Miriam", family_name="Keller", date_of_birth="1963-11-20", address=HOME
        ),
        "twin": _worker(
            given_name="Lukas", family_name="Keller", date_of_birth="1961-05-02", address=HOME
        ),
        "twin with his own national id": _worker(
            given_name="Lukas", family_name="Keller", date_of_birth="1961-05-02", address=HOME,
            national_id="55566677788",
        ),
        "junior": _worker(
            given_name="Jonas", family_name="Keller", date_of_birth="1989-05-01", address=HOME,
            national_id="55566677788",
        ),
        "no birth date": _worker(given_name="Miriam", family_name="Keller", address=HOME),
    }  # fmt: skip
    for case, record in cases.items():
        score = _score(record, [father])
        assert score.conflict is not None, case
        assert _outcome(WORKER, record, [father]) != "link", case


def test_work_addresses_of_one_company_do_not_excuse_a_household() -> None:
    # Twins working for the same firm: their e-mail addresses share the domain only,
    # which says nothing about who either of them is.
    lukas = _worker(given_name="Lukas", family_name="Keller", date_of_birth="1961-05-02",
                    address=HOME, email="lukas.keller@meridian-partners.com")  # fmt: skip
    jonas = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                    address=HOME, email="jonas.keller@meridian-partners.com")  # fmt: skip
    score = _score(jonas, [lukas])
    assert {f.field: f.level for f in score.fields}["email"] == "other_mailbox"
    assert score.conflict == "given_name disagrees"
    assert _outcome(WORKER, jonas, [lukas]) != "link"


def test_another_mailbox_at_one_firm_is_another_person() -> None:
    # Namesakes at one firm: the firm numbered the second one's mailbox. His PSA record
    # holds his name and mailbox only.
    held = [
        _worker(given_name="Ivo", family_name="Matthai", date_of_birth="1966-01-01",
                national_id=NID, email="ivo.matthai3@meridian-partners.com", address=HOME),
        _worker(given_name="Ivo", family_name="Matthai",
                email="ivo.matthai3@meridian-partners.com"),
    ]  # fmt: skip
    psa = _worker(
        given_name="Ivo", family_name="Matthai", email="ivo.matthai@meridian-partners.com"
    )
    score = _score(psa, held)
    assert score.conflict == "email disagrees"
    assert _outcome(WORKER, psa, held) != "link"
    # One person's alias comes with an identifier that agrees: no conflict.
    alias = _worker(given_name="Ivo", family_name="Matthai", national_id=NID,
                    email="i.matthai@meridian-partners.com")  # fmt: skip
    assert _score(alias, held).conflict is None
    # ... but not when another identifier speaks against it: a namesake at the same
    # address whose form carries the other's national id, with his own employee number.
    junior = [
        _worker(given_name="James", family_name="Klomp", national_id=NID, address=HOME,
                employee_number="E102855", email="james.klomp@meridian-partners.com"),
    ]  # fmt: skip
    form = _worker(given_name="James", family_name="Klomp", national_id=NID, address=HOME,
                   employee_number="E104872",
                   email="james.klomp3@meridian-partners.com")  # fmt: skip
    assert _score(form, junior).conflict == "email disagrees"
    assert not vouches(WORKER, form, junior[0])
    # Free-mail providers are no firm: two mailboxes there say nothing.
    free = [_worker(given_name="Ivo", family_name="Matthai", email="ivo.m@gmail.com")]
    other = _worker(given_name="Ivo", family_name="Matthai", email="ivo.matthai@gmail.com")
    assert {f.field: f.level for f in _score(other, free).fields}["email"] == "same_domain"
    assert _score(other, free).conflict is None


def test_the_same_person_with_a_mistyped_birth_date_links() -> None:
    held = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                   address=HOME)  # fmt: skip
    other = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-03",
                    address=HOME)  # fmt: skip
    assert _score(other, [held]).conflict is None
    assert _outcome(WORKER, other, [held]) == "link"


def test_an_identifier_and_the_birth_date_of_one_record_outweigh_replaced_names() -> None:
    # Both names replaced (FEBRL's corruption); the national id (exact or one digit
    # off) and the birth date of the same source record say it is the same person.
    held = _worker(given_name="Charlotte", family_name="Suth", date_of_birth="1961-05-02",
                   address=HOME, national_id=NID)  # fmt: skip
    for nid in (NID, "12345678907"):
        other = _worker(given_name="Rupert", family_name="Brandt", date_of_birth="1961-05-02",
                        address=HOME, national_id=nid)  # fmt: skip
        assert _score(other, [held]).conflict is None, nid
        assert _outcome(WORKER, other, [held]) == "link", nid
    # A housemate's form carrying the number has another birth date; a birth date
    # merely close (a day off) does not corroborate either.
    for born in ("1963-11-20", "1961-05-03"):
        form = _worker(given_name="Miriam", family_name="Okafor", date_of_birth=born,
                       address=HOME, national_id=NID)  # fmt: skip
        assert _score(form, [held]).conflict == "no name agrees", born
        assert _outcome(WORKER, form, [held]) != "link", born


def test_an_agreeing_identifier_excuses_a_given_name_disagreement() -> None:
    # A record whose given name was replaced (FEBRL's corruption) but whose national
    # id, family name, birth date and address agree is the same person.
    held = _worker(given_name="Charlotte", family_name="Suth", date_of_birth="1961-05-02",
                   address=HOME, national_id=NID)  # fmt: skip
    other = _worker(given_name="Rupert", family_name="Suth", date_of_birth="1961-05-02",
                    address=HOME, national_id=NID)  # fmt: skip
    assert _score(other, [held]).conflict is None
    assert _outcome(WORKER, other, [held]) == "link"


# --- entity-centric scoring: no chimera -------------------------------------------


def test_evidence_from_a_member_of_another_name_does_not_count() -> None:
    # One member has the name, another (of a different name) the national id and the
    # address: per field the best level with any member would add them up.
    named = _worker(given_name="Jonas", family_name="Keller")
    other = _worker(given_name="Miriam", family_name="Okafor", national_id=NID, address=HOME)
    incoming = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                       national_id=NID, address=HOME)  # fmt: skip
    score = _score(incoming, [named, other])
    rows = {f.field: f for f in score.fields}
    assert rows["national_id"].level == "null" and rows["address"].level == "null"
    assert rows["given_name"].member == 0
    assert _outcome(WORKER, incoming, [named, other]) != "link"
    # The same members with names that agree do add up.
    kin = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                  national_id=NID)  # fmt: skip
    assert _outcome(WORKER, incoming, [named, kin]) == "link"


def test_a_member_agreeing_on_no_name_is_weighed_apart_from_one_agreeing_on_a_name() -> None:
    # The second member agrees on the birth date and the national id, on no name: it
    # may be the same person with both names replaced, and is weighed as such, on its
    # own; the first member's name does not add to it.
    named = _worker(given_name="Jonas", family_name="Keller")
    renamed = _worker(given_name="Miriam", family_name="Okafor", date_of_birth="1961-05-02",
                      national_id=NID)  # fmt: skip
    incoming = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                       national_id=NID, address=HOME)  # fmt: skip
    score = _score(incoming, [named, renamed])
    assert score.conflict is None
    assert {f.field: f.level for f in score.fields}["given_name"] == "else"
    assert score.weight == _score(incoming, [renamed]).weight
    # With the national id one digit off, and no home address to confirm it, the
    # renamed member is another person: only the named member's evidence counts.
    typo = _worker(given_name="Miriam", family_name="Okafor", date_of_birth="1961-05-02",
                   national_id="12345678907")  # fmt: skip
    assert _score(incoming, [typo]).conflict == "no name agrees"
    score = _score(incoming, [named, typo])
    assert {f.field: f.level for f in score.fields}["national_id"] == "null"
    assert score.weight == _score(incoming, [named]).weight
    assert _outcome(WORKER, incoming, [named, typo]) != "link"


def test_two_golden_records_of_a_household_are_not_merged_on_their_own() -> None:
    left = [_worker(given_name="Lukas", family_name="Keller", date_of_birth="1961-05-02",
                    address=HOME)]  # fmt: skip
    right = [_worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                     address=HOME)]  # fmt: skip
    assert score_clusters(WORKER, left, right).conflict == "given_name disagrees"


def test_an_identifier_contradicted_by_another_excuses_nothing() -> None:
    # A mother and her daughter of one name and address; the daughter's form carries
    # her mother's national id. Their employee numbers differ: the shared number does
    # not excuse birth dates thirty years apart.
    mother = _worker(given_name="Jill", family_name="Bailey", date_of_birth="1963-12-01",
                     national_id=NID, employee_number="E103174", address=HOME)  # fmt: skip
    daughter = _worker(given_name="Jill", family_name="Bailey", date_of_birth="1993-12-03",
                       national_id=NID, employee_number="E103125", address=HOME)  # fmt: skip
    score = _score(daughter, [mother])
    assert score.conflict == "date_of_birth disagrees"
    assert _outcome(WORKER, daughter, [mother]) != "link"
    # With the employee number agreeing too, the birth date is the one mistyped value.
    same = _worker(given_name="Jill", family_name="Bailey", date_of_birth="1993-12-03",
                   national_id=NID, employee_number="E103174", address=HOME)  # fmt: skip
    assert _score(same, [mother]).conflict is None


def test_a_golden_record_holding_another_person_by_birth_date_takes_no_link() -> None:
    # A father's golden record: his HCM record, and a PSA record of his with the name
    # and the town only. His son's HCM record agrees with the PSA record on all it holds,
    # and is born 34 years later than the father.
    town = {"city": "Freiburg", "country": "DE"}
    father = [
        _worker(given_name="Jaime", family_name="Black", email="jaime.black@acme.example",
                address=town),
        _worker(given_name="Jaime", family_name="Black", date_of_birth="1964-04-01",
                email="jaime.black@acme.example", address=HOME),
    ]  # fmt: skip
    son = _worker(given_name="Jaime", family_name="Black", date_of_birth="1998-04-21",
                  address=HOME)  # fmt: skip
    assert _score(son, father[:1]).conflict is None  # the PSA record alone cannot tell
    score = _score(son, father)
    assert score.conflict == "date_of_birth disagrees"
    assert _outcome(WORKER, son, father) != "link"
    # Two golden records, one of which holds the son, are not merged either.
    assert strangers(WORKER, [son], father)
    assert not strangers(WORKER, [son], father[:1])
    # Names vary among one person's records: a member with another given name does not
    # hold the score when the member it comes from agrees.
    nickname = _worker(given_name="James", family_name="Black", date_of_birth="1964-04-01",
                       address=HOME)  # fmt: skip
    held = _worker(given_name="Jaime", family_name="Black", date_of_birth="1964-04-01",
                   address=HOME)  # fmt: skip
    assert _score(nickname, [held, _worker(given_name="Mike", family_name="Black",
                                             address=HOME)]).conflict is None  # fmt: skip


def test_a_golden_record_holding_the_birth_date_already_is_not_held_by_a_mistyped_one() -> None:
    # One person's golden record: her HCM record, and an ERP record with the birth date
    # mistyped, taken on its national id and given name. A third record, written like
    # the first, disagrees with the mistyped date only: the golden record holds its
    # birth date already.
    person = [
        _worker(given_name="Isabella", family_name="Priest", date_of_birth="1916-05-03",
                national_id=NID, address=HOME),
        _worker(given_name="Isabella", family_name="Priest", date_of_birth="1961-08-30",
                national_id=NID, address=HOME),
    ]  # fmt: skip
    third = _worker(given_name="Isabella", family_name="Prise", date_of_birth="1916-05-03",
                    address=HOME)  # fmt: skip
    assert _score(third, person[1:]).conflict == "date_of_birth disagrees"
    assert _score(third, person).conflict is None
    assert _outcome(WORKER, third, person) == "link"


def test_a_golden_record_holding_a_namesakes_mailbox_takes_no_link() -> None:
    # A PSA record of one Howard Mills (name and mailbox), and an ERP record of the other
    # that joined it on the name. The second one's HCM record agrees with the ERP record
    # on the employee number, and names another mailbox at the firm than the PSA record.
    golden = [
        _worker(given_name="Howard", family_name="Mills", email="howard.mills@meridian.example"),
        _worker(given_name="Howaard", family_name="Mills", employee_number="E101055",
                address=HOME),
    ]  # fmt: skip
    hcm = _worker(given_name="Howard", family_name="Mills", date_of_birth="1953-03-01",
                  employee_number="E101055", email="howard.mills3@meridian.example",
                  address=HOME)  # fmt: skip
    assert _score(hcm, golden[1:]).conflict is None
    score = _score(hcm, golden)
    assert score.conflict == "email disagrees"
    assert _outcome(WORKER, hcm, golden) != "link"
    # One person's mailbox held by a member that is no other entity is no namesake's.
    alias = _worker(given_name="Howard", family_name="Mills", employee_number="E101055",
                    email="howard.mills@meridian.example")  # fmt: skip
    assert _score(hcm, [*golden, alias]).conflict is None


def test_a_member_holds_the_score_on_any_of_its_reasons() -> None:
    # A PSA record of one Noah Neuzerling, and the ERP record of a namesake that joined it
    # on the name. The first one's HCM record names the PSA record's mailbox, another
    # national id than the ERP record's and another birth date: the national id is the
    # first reason against the ERP record, the birth date the one that holds the score.
    golden = [
        _worker(given_name="Noah", family_name="Neuzerling",
                email="noah.neuzerling@meridian.example"),
        _worker(given_name="Noah", family_name="Neuzerling", date_of_birth="1975-06-30",
                national_id="14088492011", email="noah.neuzerling4@harbour.example"),
    ]  # fmt: skip
    hcm = _worker(given_name="Noah", family_name="Neuzerling", date_of_birth="1971-08-18",
                  national_id=NID, email="noah.neuzerling@meridian.example")  # fmt: skip
    assert _score(hcm, golden[:1]).conflict is None
    assert _score(hcm, golden[1:]).conflict == "national_id disagrees"
    assert _score(hcm, golden).conflict == "date_of_birth disagrees"
    assert _outcome(WORKER, hcm, golden) != "link"


# --- companies -----------------------------------------------------------------


def test_a_tax_id_on_a_completely_different_company_name_goes_to_review_at_most() -> None:
    for entity in ("customer", "legal_entity"):
        model = default_model(entity)
        extra = {"tax_country": "DE"} if entity == "customer" else {"country": "DE"}
        held = _company(entity, name="Acme Maschinenbau GmbH", tax_id="DE136695976", **extra)
        other = _company(entity, name="Blue Harbour Logistics GmbH", tax_id="DE136695976",
                         **extra)  # fmt: skip
        same = _company(entity, name="ACME Maschinenbau", tax_id="DE136695976", **extra)
        assert score_cluster(model, other, [held]).conflict == "no name agrees", entity
        assert _outcome(model, other, [held]) != "link", entity
        assert not vouches(model, other, held) and vouches(model, same, held), entity
        assert _outcome(model, same, [held]) == "link", entity


def test_a_tax_id_and_the_address_of_one_record_outweigh_a_new_name() -> None:
    # A company renamed: its tax id and its address agree, no name does.
    site = {"line1": "Industriestr. 4", "postal_code": "79098", "city": "Freiburg",
            "country": "DE"}  # fmt: skip
    for entity in ("customer", "legal_entity"):
        model = default_model(entity)
        extra = {"tax_country": "DE"} if entity == "customer" else {"country": "DE"}
        held = _company(entity, name="Acme Maschinenbau GmbH", tax_id="DE136695976",
                        address=site, **extra)  # fmt: skip
        renamed = _company(entity, name="Blue Harbour Logistics GmbH", tax_id="DE136695976",
                           address=site, **extra)  # fmt: skip
        assert score_cluster(model, renamed, [held]).conflict is None, entity


def test_a_hand_typed_name_keeping_its_first_word_is_the_company_at_its_address() -> None:
    # Typed into a CRM by hand: the first word mistyped, the rest left out. At the same
    # address it is the same customer (in a hub holding 5,000 customers); without the
    # first word, a steward decides.
    site = {"line1": "Eigenwilligstrasse 9", "postal_code": "71269", "city": "Eckernförde",
            "country": "DE"}  # fmt: skip
    model = default_model("customer").at_size(5_000)
    held = _company("customer", name="Mangold Health Care GmbH", address=site)
    typed = _company("customer", name="mangpld", address=site)
    assert score_cluster(model, typed, [held]).conflict is None
    assert _outcome(model, typed, [held]) == "link"
    other = _company("customer", name="Harbour Logistics", address=site)
    assert _outcome(model, other, [held]) != "link"


# --- the model's identity section -------------------------------------------------


def test_identity_names_fields_of_the_model() -> None:
    data = WORKER.to_dict()
    data["identity"] = {"names": ["nickname"]}
    try:
        MatchModel.validated(data)
    except ModelError as exc:
        assert "identity.names" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("an identity naming no field was accepted")


def test_a_model_stored_without_identity_takes_the_packaged_one() -> None:
    data = WORKER.to_dict()
    del data["identity"]
    older = MatchModel.validated(data)
    assert older.identity is None
    assert older.identity_rules() == WORKER.identity
    held = _worker(given_name="Jonas", family_name="Keller", national_id=NID)
    form = _worker(given_name="Miriam", family_name="Okafor", national_id=NID)
    assert score_cluster(older, form, [held]).conflict == "no name agrees"


def test_national_ids_apart_are_two_people_unless_the_home_address_agrees() -> None:
    held = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                   national_id=NID)  # fmt: skip
    # Namesakes, one birth date unknown: two numbers are two people.
    apart = _worker(given_name="Jonas", family_name="Keller", national_id="63897604266")
    assert _score(apart, [held]).conflict == "national_id disagrees"
    assert _outcome(WORKER, apart, [held]) != "link"
    # ... and so with a nickname, whatever the birth date.
    jo = _worker(given_name="Jo", family_name="Keller", date_of_birth="1961-05-02",
                 national_id="63897604266")  # fmt: skip
    assert _score(jo, [held]).conflict == "national_id disagrees"
    # One digit off is a typo, not another number.
    typo = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                   national_id="12345678907")  # fmt: skip
    assert _score(typo, [held]).conflict is None
    # At one home address, an old and a new number of one person.
    at_home = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                      national_id=NID, address=HOME)  # fmt: skip
    renumbered = _worker(given_name="Jonas", family_name="Keller", date_of_birth="1961-05-02",
                         national_id="63897604266", address=HOME)  # fmt: skip
    assert _score(renumbered, [at_home]).conflict is None
    assert _outcome(WORKER, renumbered, [at_home]) == "link"


def test_the_same_full_name_birth_date_and_address_leave_another_national_id_to_the_weights() -> (
    None
):
    # A number replaced or mistyped beyond a typo, everything else written alike, the
    # address with a typo or without its house number: no conflict, and the store's
    # size decides, as for any evidence.
    near = {"line1": "Rosenweg", "postal_code": "79098", "city": "Freiburg", "country": "DE"}
    held = _worker(given_name="Zachary", family_name="Lodge", date_of_birth="1979-06-13",
                   national_id=NID, address=HOME)  # fmt: skip

    def form(given: str, family: str, address: dict[str, str] | None = near) -> Prepared:
        return _worker(given_name=given, family_name=family, date_of_birth="1979-06-13",
                       national_id="63897604266", address=address)  # fmt: skip

    other = form("Zachary", "Lodge")
    assert {f.field: f.level for f in _score(other, [held]).fields}["address"] == "same_street"
    assert _score(other, [held]).conflict is None
    assert _outcome(WORKER.at_size(1_000_000), other, [held]) == "link"
    # With the town alone agreeing, the other number holds it at review in a large store.
    town = form("Zachary", "Lodge", {"line1": "Am Bahnhof 3", "city": "Freiburg", "country": "DE"})
    assert _score(town, [held]).conflict is None
    assert _outcome(WORKER.at_size(2_000), town, [held]) == "link"
    assert _outcome(WORKER.at_size(1_000_000), town, [held]) == "review"
    # Without an address to agree, two numbers are two people (however alike).
    assert _score(form("Zachary", "Lodge", None), [held]).conflict == "national_id disagrees"
    # A typo in the family name is still one family name; one in the given name is
    # another given name (twins of one birth date: Jayden and Jaden).
    assert _score(form("Zachary", "Lodgee"), [held]).conflict is None
    assert _score(form("Zackary", "Lodge"), [held]).conflict == "national_id disagrees"
    # Names swapped are the same names.
    assert _score(form("Lodge", "Zachary"), [held]).conflict is None


def test_two_employee_numbers_are_two_people_unless_the_home_address_agrees() -> None:
    # Namesakes at one firm, one of whose forms carries the other's national id: their
    # employee numbers differ, and the shared number does not make them one.
    held = _worker(given_name="James", family_name="Klomp", national_id=NID,
                   employee_number="E102855")  # fmt: skip
    other = _worker(given_name="James", family_name="Klomp", national_id=NID,
                    employee_number="E104872")  # fmt: skip
    assert _score(other, [held]).conflict == "employee_number disagrees"
    assert _outcome(WORKER, other, [held]) != "link"
    assert not vouches(WORKER, other, held)
    # At one home address, one person re-hired under a new number.
    rehired = _worker(given_name="James", family_name="Klomp", national_id=NID,
                      employee_number="E104872", address=HOME)  # fmt: skip
    at_home = _worker(given_name="James", family_name="Klomp", national_id=NID,
                      employee_number="E102855", address=HOME)  # fmt: skip
    assert _score(rehired, [at_home]).conflict is None


def test_a_relatives_number_does_not_excuse_another_given_name() -> None:
    # A form filled in with a housemate's national id: another given name, the family
    # name and the number agree, no birth date to say it is one person.
    held = _worker(given_name="Thomas", family_name="Lamotte", date_of_birth="1979-07-08",
                   national_id=NID, address=HOME)  # fmt: skip
    form = _worker(given_name="Robert", family_name="Lamotte", national_id=NID)
    assert _score(form, [held]).conflict == "given_name disagrees"
    assert _outcome(WORKER, form, [held]) != "link"
    # ... nor another birth date (a son born decades later, the father's number).
    son = _worker(given_name="Steven", family_name="Lamotte", date_of_birth="1994-04-09",
                  national_id=NID, address=HOME)  # fmt: skip
    assert _score(son, [held]).conflict is not None
    assert _outcome(WORKER, son, [held]) != "link"


def test_a_relatives_number_with_the_family_name_is_no_strong_key() -> None:
    # The family name agrees and so does the number, but the given name is another:
    # not the strong-key shortcut (nor, without a birth date, a link by the model).
    held = _worker(given_name="Thomas", family_name="Lamotte", national_id=NID)
    form = _worker(given_name="Robert", family_name="Lamotte", national_id=NID)
    assert not vouches(WORKER, form, held)
    assert _outcome(WORKER, form, [held]) != "link"
    # A nickname is the same given name: the shortcut holds.
    assert vouches(WORKER, _worker(given_name="Tom", family_name="Lamotte", national_id=NID), held)


def test_a_mistyped_short_form_of_the_given_name_is_the_same_given_name() -> None:
    # "Rchard" is no name; one edit away is Richard, of whom Rick is a short form. The
    # work e-mail and the family name agree: one person, linked.
    held = _worker(given_name="Rick", family_name="Segebahn", email="r.segebahn@acme.example",
                   address=HOME)  # fmt: skip
    form = _worker(given_name="Rchard", family_name="Segebahn", email="r.segebahn@acme.example",
                   address=HOME)  # fmt: skip
    score = _score(form, [held])
    assert {f.field: f.level for f in score.fields}["given_name"] == "nickname_typo"
    assert score.conflict is None
    assert _outcome(WORKER, form, [held]) == "link"
    # A sibling's name at the same address is still another person's.
    sibling = _worker(given_name="Gerald", family_name="Segebahn", address=HOME)
    assert _score(sibling, [held]).conflict == "given_name disagrees"
