"""Which source system may write which entity, and which one owns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mdm.domain.errors import UnknownEntity, UnknownSource, WriteForbidden

ENTITIES = ("customer", "worker", "project", "legal_entity")


class Role(StrEnum):
    SYSTEM_OF_RECORD = "system_of_record"
    CONTRIBUTOR = "contributor"
    REFERENCE_ONLY = "reference_only"


@dataclass(frozen=True, slots=True)
class SourceSystem:
    name: str
    description: str = ""
    roles: dict[str, Role] = field(default_factory=dict)

    def role_for(self, entity: str) -> Role:
        return self.roles.get(entity, Role.REFERENCE_ONLY)


@dataclass(frozen=True, slots=True)
class SourceCatalog:
    """The configured source systems. Validated once at load, then read-only."""

    systems: dict[str, SourceSystem]

    def __post_init__(self) -> None:
        for entity in ENTITIES:
            owners = [
                s.name for s in self.systems.values() if s.role_for(entity) is Role.SYSTEM_OF_RECORD
            ]
            if len(owners) > 1:
                raise ValueError(f"entity {entity!r} has several systems of record: {owners}")
        for system in self.systems.values():
            unknown = set(system.roles) - set(ENTITIES)
            if unknown:
                raise ValueError(f"source {system.name!r} names unknown entities {sorted(unknown)}")

    def get(self, source: str) -> SourceSystem:
        try:
            return self.systems[source]
        except KeyError:
            known = ", ".join(sorted(self.systems))
            raise UnknownSource(f"unknown source system {source!r}; configured: {known}") from None

    def system_of_record(self, entity: str) -> str | None:
        for system in self.systems.values():
            if system.role_for(entity) is Role.SYSTEM_OF_RECORD:
                return system.name
        return None

    def authorize_write(self, source: str, entity: str) -> Role:
        """The role `source` writes `entity` with; raises unless it may write it."""
        check_entity(entity)
        role = self.get(source).role_for(entity)
        if role is Role.REFERENCE_ONLY:
            raise WriteForbidden(
                f"source {source!r} is reference_only for {entity!r} and cannot write it"
            )
        return role


def check_entity(entity: str) -> None:
    if entity not in ENTITIES:
        raise UnknownEntity(f"unknown entity type {entity!r}; known: {', '.join(ENTITIES)}")
