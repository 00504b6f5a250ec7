"""Keeping references between golden records right when cross-references change.

After a unit of work changed cross-references (a record arrived, moved in a
merge or unmerge, was deleted or registered), `follow_references` recomputes
the golden records whose references name those records, in the same
transaction: a pending reference resolves, one to a merged-away record now
names the survivor, an unmerge re-points by the source's id. Each of those
gets a new version and an event with the same cause (a merge's names its
merge_id). Resolution itself happens in every recomputation
(mdm/services/references.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from mdm.adapters.relationships import RelationshipStore
from mdm.adapters.repository import Repository
from mdm.domain.mastering import MasteringRules
from mdm.services.context import RequestContext
from mdm.services.events import Touch, record_changes
from mdm.services.references import lock_referenced, reference_locks
from schemas.events import Causation

__all__ = ["follow_references", "lock_referenced", "reference_locks"]


async def follow_references(
    repo: Repository,
    rules: MasteringRules,
    entity: str,
    touches: Mapping[str, Touch],
    ctx: RequestContext,
) -> dict[str, int]:
    """Recompute the golden records whose references the `touches` may have changed.

    `touches` are the changes a unit of work just recorded for golden records of
    `entity`; answers the new version of each referrer that changed.
    """
    keys = {
        (entity, source, source_id)
        for touch in touches.values()
        for source, source_id in touch.xrefs.linked | touch.xrefs.unlinked
    }
    gone = [g for g, t in touches.items() if t.merged_into is not None]
    found = await RelationshipStore(repo.conn).referrers(keys, gone)
    # Each referrer's change has the cause of the change that moved what it names.
    by_key = {
        (entity, source, source_id): touch.cause
        for _, touch in sorted(touches.items())
        for source, source_id in sorted(touch.xrefs.linked | touch.xrefs.unlinked)
    }
    referrers: dict[str, tuple[str, Causation]] = {}
    for r in found:
        if r.golden_id in touches or r.golden_id in referrers:
            continue
        cause = by_key.get(r.target) or touches.get(r.target_golden_id or "", Touch()).cause
        referrers[r.golden_id] = (r.entity, cause)
    if not referrers:
        return {}
    versions: dict[str, int] = {}
    by_entity: dict[str, dict[str, Touch]] = {}
    for golden_id, (referring_entity, cause) in referrers.items():
        by_entity.setdefault(referring_entity, {})[golden_id] = Touch(cause=cause)
    for referring_entity, group in sorted(by_entity.items()):
        changes = await record_changes(repo, rules, referring_entity, group, ctx)
        versions.update({e.golden_id: e.version for e in changes.events})
    return versions
