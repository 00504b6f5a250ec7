"""Resolving references of a golden record, without a database."""

from __future__ import annotations

from mdm.domain.relationships import REFERENCES, RELATIONS, resolve_references, stated_references
from mdm.domain.survivorship import Survived
from mdm.services.references import reference_locks

KNOWN = {("customer", "psa", "CL-9"): "cus_1", ("legal_entity", "erp", "LE-1"): "leg_1"}


def _survived(attributes: dict, sources: dict[str, str]) -> Survived:
    provenance = {
        name: {"source": sources.get(name, "psa"), "source_id": "P-1", "rule": "source_priority"}
        for name in attributes
    }
    return Survived(attributes, provenance)


def test_a_known_reference_becomes_the_golden_id_and_keeps_its_provenance() -> None:
    survived = _survived({"name": "Rollout", "customer_ref": "CL-9"}, {})
    out, refs = resolve_references("project", survived, KNOWN.get)
    assert out.attributes == {"name": "Rollout", "customer_ref": "cus_1"}
    assert out.provenance["customer_ref"]["source"] == "psa"
    assert refs["customer_ref"].golden_id == "cus_1"
    assert refs["customer_ref"].key == ("customer", "psa", "CL-9")
    assert survived.attributes["customer_ref"] == "CL-9"  # the input is not changed


def test_the_winning_source_decides_whose_id_it_is() -> None:
    # The same id from ERP means ERP's customer CL-9, which the hub does not know.
    survived = _survived({"name": "Rollout", "customer_ref": "CL-9"}, {"customer_ref": "erp"})
    out, refs = resolve_references("project", survived, KNOWN.get)
    assert "customer_ref" not in out.attributes and "customer_ref" not in out.provenance
    assert refs["customer_ref"].golden_id is None
    assert refs["customer_ref"].source == "erp"


def test_several_references_and_attributes_that_are_not_references() -> None:
    survived = _survived(
        {"name": "Rollout", "customer_ref": "CL-9", "legal_entity_ref": "LE-1", "code": "X"},
        {"legal_entity_ref": "erp"},
    )
    out, refs = resolve_references("project", survived, KNOWN.get)
    assert out.attributes == {
        "name": "Rollout",
        "customer_ref": "cus_1",
        "legal_entity_ref": "leg_1",
        "code": "X",
    }
    assert set(refs) == {"customer_ref", "legal_entity_ref"}
    plain, none = resolve_references("customer", _survived({"name": "Acme"}, {}), KNOWN.get)
    assert plain.attributes == {"name": "Acme"} and none == {}


def test_stated_references_and_their_lock_names() -> None:
    values = {"name": "Ng", "manager_ref": "W-2", "employer_ref": "", "job_title": "Dev"}
    assert stated_references("worker", values) == {"manager_ref": "W-2"}
    assert reference_locks("worker", "hcm", [values, {"employer_ref": "LE-1"}]) == [
        "sr:legal_entity:hcm:LE-1",
        "sr:worker:hcm:W-2",
    ]


def test_every_relation_follows_a_reference_field() -> None:
    fields = {f for by_field in REFERENCES.values() for f in by_field}
    for relations in RELATIONS.values():
        for field, direction in relations.values():
            assert field in fields and direction in {"up", "down", "group"}


def test_a_pinned_reference_is_a_golden_id() -> None:
    survived = Survived(
        {"name": "Rollout", "customer_ref": "cus_old"},
        {"customer_ref": {"source": "steward", "source_id": "anna", "rule": "pin"}},
    )
    current = {("customer", "cus_old"): "cus_new"}
    out, refs = resolve_references(
        "project", survived, KNOWN.get, lambda entity, gid: current.get((entity, gid))
    )
    assert out.attributes["customer_ref"] == "cus_new"
    assert (refs["customer_ref"].source, refs["customer_ref"].golden_id) == ("steward", "cus_new")
    unknown, refs = resolve_references("project", survived, KNOWN.get)
    assert "customer_ref" not in unknown.attributes and refs["customer_ref"].golden_id is None
