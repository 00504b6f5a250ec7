"""The golden record aggregate: its state, and what a recomputation changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mdm.domain.survivorship import Contribution, Survived

Status = Literal["active", "retired", "merged"]


@dataclass(frozen=True, slots=True)
class XrefDelta:
    """Source records a change added to or removed from a golden record."""

    linked: frozenset[tuple[str, str]] = frozenset()
    unlinked: frozenset[tuple[str, str]] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.linked or self.unlinked)


@dataclass(frozen=True, slots=True)
class GoldenChange:
    """A new version of a golden record and the event type that announces it."""

    event_type: str
    version: int
    changed: list[str]


@dataclass(slots=True)
class GoldenRecord:
    golden_id: str
    entity: str
    status: Status
    version: int
    attributes: dict[str, Any]
    provenance: dict[str, dict[str, Any]]
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    merged_into: str | None = None

    @classmethod
    def new(cls, golden_id: str, entity: str) -> GoldenRecord:
        return cls(golden_id, entity, "active", 0, {}, {})

    def recompute(
        self,
        contributions: Sequence[Contribution],
        survivorship: Callable[[Sequence[Contribution]], Survived],
        xrefs: XrefDelta,
        event_type: str | None = None,
    ) -> GoldenChange | None:
        """Rerun survivorship; bump the version if anything a subscriber sees changed.

        `event_type` forces a new version with that type (a merge or unmerge is
        news even when no attribute changes).
        """
        survived = survivorship(contributions)
        status: Status = "active" if contributions else "retired"
        changed = sorted(
            name
            for name in survived.attributes.keys() | self.attributes.keys()
            if survived.attributes.get(name) != self.attributes.get(name)
            or survived.provenance.get(name) != self.provenance.get(name)
        )
        if event_type is not None:
            pass
        elif self.version == 0:
            event_type = "golden.created"
        elif status != self.status:
            event_type = "golden.retired" if status == "retired" else "golden.updated"
        elif changed:
            event_type = "golden.updated"
        elif xrefs:
            event_type = "xref.linked" if xrefs.linked else "xref.unlinked"
        else:
            return None
        self.attributes = survived.attributes
        self.provenance = survived.provenance
        self.status = status
        self.merged_into = None
        self.version += 1
        return GoldenChange(event_type=event_type, version=self.version, changed=changed)

    def mark_merged(self, survivor_id: str) -> GoldenChange:
        """This record lost a merge: it keeps its last attributes and redirects for good."""
        if survivor_id == self.golden_id:
            raise ValueError("a golden record cannot be merged into itself")
        self.status = "merged"
        self.merged_into = survivor_id
        self.version += 1
        return GoldenChange(event_type="golden.lost_merge", version=self.version, changed=[])
