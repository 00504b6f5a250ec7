"""References between golden records: which fields refer to what, and how they resolve.

A source system names a related record by its own id (PSA's project says
`customer_ref: "CL-9"`, PSA's id of the customer). The hub resolves that id
through the cross-reference to the customer's golden id; the golden project's
`customer_ref` is that golden id, so golden records refer to golden records.
Until the hub knows the referenced record the reference is pending: the
attribute is absent and the reference is listed for operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from mdm.domain.survivorship import PIN, STEWARD, Survived

#: entity -> reference field -> the entity it refers to.
REFERENCES: dict[str, dict[str, str]] = {
    "customer": {"parent_ref": "customer"},
    "legal_entity": {"parent_ref": "legal_entity"},
    "worker": {"employer_ref": "legal_entity", "manager_ref": "worker"},
    "project": {
        "customer_ref": "customer",
        "legal_entity_ref": "legal_entity",
        "project_manager_ref": "worker",
    },
}

#: Fields that form a hierarchy within one entity: a cycle is refused.
HIERARCHIES: dict[str, str] = {
    "customer": "parent_ref",
    "legal_entity": "parent_ref",
    "worker": "manager_ref",
}

Direction = Literal["up", "down", "group"]

#: The relations GET /v1/golden/{entity}/{id}/related answers: name -> (field, direction).
#: "up" follows the field from this record (parents, a manager chain), "down" finds
#: the records whose field names this one (children, reports, projects), "group" is
#: everything under the topmost ancestor.
RELATIONS: dict[str, dict[str, tuple[str, Direction]]] = {
    "customer": {
        "parents": ("parent_ref", "up"),
        "children": ("parent_ref", "down"),
        "group": ("parent_ref", "group"),
        "projects": ("customer_ref", "down"),
    },
    "legal_entity": {
        "parents": ("parent_ref", "up"),
        "children": ("parent_ref", "down"),
        "group": ("parent_ref", "group"),
        "projects": ("legal_entity_ref", "down"),
        "employees": ("employer_ref", "down"),
    },
    "worker": {
        "managers": ("manager_ref", "up"),
        "reports": ("manager_ref", "down"),
        "employer": ("employer_ref", "up"),
        "managed_projects": ("project_manager_ref", "down"),
    },
    "project": {
        "customer": ("customer_ref", "up"),
        "legal_entity": ("legal_entity_ref", "up"),
        "project_manager": ("project_manager_ref", "up"),
    },
}

#: (target entity, source, the source's id of the target)
TargetKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Reference:
    """One reference of a golden record as survivorship chose it, resolved or pending."""

    field: str
    entity: str  # the referenced entity
    source: str  # the system that stated it
    source_id: str  # that system's id of the referenced record
    golden_id: str | None  # None while the hub does not know that record

    @property
    def key(self) -> TargetKey:
        return (self.entity, self.source, self.source_id)


def stated_references(entity: str, values: Mapping[str, object]) -> dict[str, str]:
    """The reference fields a source record's values carry: field -> the source's id."""
    fields = REFERENCES.get(entity, {})
    return {f: v for f, v in values.items() if f in fields and isinstance(v, str) and v}


def resolve_references(
    entity: str,
    survived: Survived,
    lookup: Callable[[TargetKey], str | None],
    pinned: Callable[[str, str], str | None] = lambda _entity, _golden_id: None,
) -> tuple[Survived, dict[str, Reference]]:
    """Replace each surviving reference by the golden id it resolves to.

    The source that won the attribute in survivorship is the system whose id
    it is. A resolved reference's attribute becomes the target's golden id (its
    provenance still names the source record that stated it); a pending one is
    left out of the attributes and reported with golden_id None. A steward's
    pin is a golden id: `pinned(entity, id)` answers it, or its merge survivor,
    if it is one of that entity.
    """
    fields = REFERENCES.get(entity, {})
    attributes = dict(survived.attributes)
    provenance = dict(survived.provenance)
    found: dict[str, Reference] = {}
    for name, target in fields.items():
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            continue
        source = str(provenance.get(name, {}).get("source", ""))
        if provenance.get(name, {}).get("rule") == PIN:
            source, golden_id = STEWARD, pinned(target, value)
        else:
            golden_id = lookup((target, source, value))
        found[name] = Reference(name, target, source, value, golden_id)
        if golden_id is None:
            del attributes[name]
            provenance.pop(name, None)
        else:
            attributes[name] = golden_id
    return Survived(attributes, provenance), found
