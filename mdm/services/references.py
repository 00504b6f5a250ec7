"""Resolving the references of golden records while they are recomputed.

`ReferenceResolution` is used by every recomputation (mdm/services/events.py):
it resolves the surviving references through the cross-reference in one
query, gives each event the references as golden ids and every known system's
ids, stores them in golden_reference and refuses hierarchy cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mdm.domain.errors import FieldProblem, ValidationFailed
from mdm.domain.golden import GoldenRecord
from mdm.domain.ports import UnitOfWork
from mdm.domain.relationships import (
    HIERARCHIES,
    REFERENCES,
    Reference,
    TargetKey,
    resolve_references,
    stated_references,
)
from mdm.domain.stored import StoredXref
from mdm.domain.survivorship import Contribution, Overrides, Survived
from mdm.services.context import RequestContext
from schemas.events import EventReference, EventXref


def reference_locks(entity: str, source: str, values: Iterable[Mapping[str, object]]) -> list[str]:
    """The source-record lock names of the records these values refer to.

    Ingestion takes them with its own locks (one sorted acquisition, so no
    deadlock): a referrer and the record it names never commit unseen by each
    other, so a reference cannot stay pending after its target arrived.
    """
    fields = REFERENCES.get(entity, {})
    return sorted(
        {
            f"sr:{fields[name]}:{source}:{value}"
            for v in values
            for name, value in stated_references(entity, v).items()
        }
    )


async def lock_referenced(
    uow: UnitOfWork, entity: str, source: str, values: Iterable[Mapping[str, object]]
) -> None:
    """Lock the existing source records these values refer to, FOR SHARE until commit.

    Ingestion calls it before it locks any golden record: a merge or unmerge
    that moves one of those records (and then re-points what refers to it)
    either waits for this unit of work and sees its references, or this one
    waits for it and resolves to where it moved the record.
    """
    fields = REFERENCES.get(entity, {})
    keys = {
        (fields[name], source, value)
        for v in values
        for name, value in stated_references(entity, v).items()
    }
    await uow.relationships.lookup(keys, lock=True)


@dataclass(slots=True)
class ReferenceResolution:
    """The references of one recomputation's golden records, resolved in one query."""

    lookup: dict[TargetKey, str]
    target_xrefs: dict[str, list[StoredXref]]
    pins: dict[str, tuple[str, str]] = field(default_factory=dict)  # see current_ids
    found: dict[str, dict[str, Reference]] = field(default_factory=dict)

    @classmethod
    async def prepare(
        cls,
        uow: UnitOfWork,
        goldens: Mapping[str, GoldenRecord],
        contributions: Mapping[str, Sequence[Contribution]],
        overrides: Mapping[str, Overrides],
    ) -> ReferenceResolution:
        keys: set[TargetKey] = set()
        pinned: set[str] = set()
        for golden_id, live in contributions.items():
            entity = goldens[golden_id].entity
            fields = REFERENCES.get(entity, {})
            for c in live:
                for name, value in stated_references(entity, c.values).items():
                    keys.add((fields[name], c.source, value))
            pins = overrides[golden_id].pins if golden_id in overrides else {}
            pinned.update(str(p.value) for name, p in pins.items() if name in fields)
        store = uow.relationships
        lookup = await store.lookup(keys)
        current = await store.current_ids(pinned)
        targets = sorted({*lookup.values(), *(now for _, now in current.values())})
        return cls(lookup, await uow.records.xrefs(targets) if targets else {}, current)

    def _pinned(self, entity: str, golden_id: str) -> str | None:
        found = self.pins.get(golden_id)
        return found[1] if found is not None and found[0] == entity else None

    def survivorship(
        self, golden_id: str, entity: str, survive: Callable[[Sequence[Contribution]], Survived]
    ) -> Callable[[Sequence[Contribution]], Survived]:
        """`survive`, then each surviving reference replaced by the golden id it names."""

        def apply(contributions: Sequence[Contribution]) -> Survived:
            survived, found = resolve_references(
                entity, survive(contributions), self.lookup.get, self._pinned
            )
            self.found[golden_id] = found
            return survived

        return apply

    def event_references(self, golden_id: str) -> dict[str, EventReference]:
        return {
            name: EventReference(
                entity=r.entity,
                source=r.source,
                source_id=r.source_id,
                golden_id=r.golden_id,
                xrefs=[
                    EventXref(source=x.source, source_id=x.source_id)
                    for x in self.target_xrefs.get(r.golden_id or "", [])
                ],
            )
            for name, r in self.found.get(golden_id, {}).items()
        }

    async def save(
        self,
        uow: UnitOfWork,
        goldens: Mapping[str, GoldenRecord],
        ctx: RequestContext,
        created: Collection[str] = (),
    ) -> None:
        """Store the references of every recomputed golden record; refuse hierarchy cycles.

        A record that lost a merge refers to nothing any more (its source records,
        and so its references, are the survivor's now). `created`: those of them
        made in this unit of work, which have no stored references to replace.
        """
        store = uow.relationships
        await store.replace(sorted(goldens), self.found, ctx.received_at, created)
        for entity, name in HIERARCHIES.items():
            mine = sorted(
                g
                for g, golden in goldens.items()
                if golden.entity == entity and name in self.found.get(g, {})
            )
            looping = await store.in_cycles(name, mine)
            if looping:
                raise ValidationFailed(
                    f"{name} would make {', '.join(looping)} its own ancestor; nothing was stored",
                    [FieldProblem(f"$.attributes.{name}", "the reference makes a cycle")],
                )
