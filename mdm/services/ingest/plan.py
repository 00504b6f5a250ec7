"""Ingestion, step 2 of 3: plan (reads and matching, no writes).

Under the record's locks, each prepared record is given its golden record: the
one its strong keys or the match model link it to, or a new one; with the merges
the matcher decides and the review tasks it opens. The result is a `Plan`;
step 3 (mdm.services.ingest.apply) writes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matching.scoring import ClusterScore, strangers, vouches
from mdm.domain.golden import GoldenRecord, XrefDelta
from mdm.domain.ids import new_golden_id
from mdm.domain.mastering import ActiveModel, MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import SourceRecordWrite, StoredSourceRecord
from mdm.services.context import RequestContext
from mdm.services.ingest.prepare import IncomingRecord, PreparedRecord, Rejected, prepare_records
from mdm.services.matcher import (
    MAX_REVIEWS,
    BatchPool,
    PoolSource,
    explanation,
    features,
    load_pool,
    match,
    same_on_their_own,
)
from mdm.services.references import lock_referenced, reference_locks


@dataclass(slots=True)
class Accepted:
    golden_id: str
    outcome: str
    version: int = 0
    warnings: list[dict[str, str]] = field(default_factory=list)
    match_probability: float | None = None  # of the golden record it was linked to by the model
    review: list[str] = field(default_factory=list)  # golden ids a steward will compare it with


#: Match keys are locked by bucket: a batch of a thousand records with a dozen
#: keys each takes at most this many advisory locks (PostgreSQL's shared lock
#: table holds max_locks_per_transaction x max_connections, 6,400 by default),
#: while two single records collide on one only rarely (and then merely wait).
KEY_LOCK_BUCKETS = 1024


def key_locks(entity: str, keys: Sequence[str]) -> list[str]:
    """Lock names that two units of work sharing any match key have in common.

    The bucket is a CRC-32 of the key (stable across processes, and cheap: a batch
    has some twenty thousand keys), the lock names' own ids are cached."""
    buckets = {zlib.crc32(key.encode()) % KEY_LOCK_BUCKETS for key in keys}
    return [f"mk:{entity}:{b}" for b in sorted(buckets)]


def _choose(keys: list[str], owners: dict[str, set[str]]) -> tuple[str | None, list[str]]:
    """The golden record sharing most strong keys (the oldest on a tie), and all candidates."""
    votes: dict[str, int] = {}
    for key in keys:
        for golden_id in owners.get(key, ()):
            votes[golden_id] = votes.get(golden_id, 0) + 1
    if not votes:
        return None, []
    if len(votes) == 1:
        return next(iter(votes)), list(votes)
    # Golden ids start with their creation time, so the smallest id is the oldest.
    best = min(votes, key=lambda g: (-votes[g], g))
    return best, sorted(votes)


@dataclass(slots=True)
class Plan:
    """What a unit of work decided, before it writes anything (`plan_records`)."""

    entity: str
    source: str
    results: list[Accepted | Rejected | None]
    active: ActiveModel | None = None
    #: lock names and referenced values, when `apply_plan` is to take the locks
    lock_names: list[str] = field(default_factory=list)
    referenced: list[dict[str, Any]] = field(default_factory=list)
    locked: bool = True
    deltas: dict[str, XrefDelta] = field(default_factory=dict)
    new_goldens: dict[str, GoldenRecord] = field(default_factory=dict)
    writes: dict[str, SourceRecordWrite] = field(default_factory=dict)
    keys_by_source_id: dict[str, list[str]] = field(default_factory=dict)
    #: the strong identifiers of each written record (source id -> keys)
    strong_keys: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[tuple[int, str]] = field(default_factory=list)
    reviews: list[tuple[str, str, str, str, ClusterScore]] = field(default_factory=list)
    db_merges: dict[str, list[tuple[str, ClusterScore, str]]] = field(default_factory=dict)
    #: records of the same request refused before they reached the plan (a batch item
    #: that is not a record at all), counted with its outcomes
    refused: int = 0

    @property
    def only_new(self) -> bool:
        """Every write is a source record seen for the first time (no update, no restore)."""
        return all(w.id is None for w in self.writes.values())


#: The record loop of `plan_records` lets other tasks run after this many records
#: (a batch of a thousand otherwise holds the event loop for its whole matching).
YIELD_EVERY = 25


async def plan_records(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    source: str,
    records: Sequence[IncomingRecord],
    ctx: RequestContext,
    candidates: PoolSource | None = None,
    prepared_records: Sequence[PreparedRecord | Rejected] | None = None,
    lock: bool = True,
    owners_known: Mapping[str, set[str]] | None = None,
    resolve: Callable[[str], str] | None = None,
    active: ActiveModel | None = None,
) -> Plan:
    """Decide, for each record, its golden record (and merges, review tasks).

    `lock=False` leaves the locks to `apply_plan` (a bulk load plans its next
    chunk while the previous one is still being written: mdm.adapters.bulk).
    `owners_known` adds strong-key owners that the database does not show yet
    (that previous chunk's), and `resolve` follows golden ids merged away in
    units of work not committed yet. `active`: the model to decide with (a bulk load
    decides every chunk with one model and one prior), else the model in force.
    """
    rules.authorize_write(source, entity)
    results: list[Accepted | Rejected | None] = [None] * len(records)
    plan = Plan(entity, source, results)
    prepared: list[PreparedRecord] = []
    if prepared_records is None:
        prepared_records = prepare_records(entity, records)
    for i, item in enumerate(prepared_records):
        if isinstance(item, Rejected):
            results[i] = item
        else:
            prepared.append(item)
    if not prepared:
        return plan

    if active is None:
        active = await rules.models.current(uow.matches, entity)
    for p in prepared:
        if p.features is None or p.model_version != active.model.version:
            p.features = features(active, entity, p.values)
            p.model_version = active.model.version
    all_keys = sorted({k for p in prepared for k in p.keys})
    blocking = sorted({k for p in prepared if p.features for k in p.features.blocking})
    plan.active = active
    plan.lock_names = (
        [f"sr:{entity}:{source}:{p.record.source_id}" for p in prepared]
        + key_locks(entity, [*all_keys, *blocking])
        + reference_locks(entity, source, [p.values for p in prepared])
    )
    plan.referenced = [p.values for p in prepared]
    plan.locked = lock
    if lock:
        await take_locks(uow, plan)
    stored = await uow.records.source_records(
        entity, source, [p.record.source_id for p in prepared]
    )
    owners = await uow.records.key_owners(entity, all_keys)
    if owners_known:
        for key in all_keys:
            if key in owners_known:
                owners.setdefault(key, set()).update(owners_known[key])
    if resolve is not None:
        owners = {k: {resolve(g) for g in found} for k, found in owners.items()}
    if candidates is None:
        pool = await load_pool(uow.matches, entity, blocking)
    else:
        pool = await candidates.pool(entity, blocking)
    original = dict(stored)
    reviews: list[tuple[str, str, str, str, ClusterScore]] = []
    # (survivor, loser, their score against each other, the record that matched both)
    auto_merges: list[tuple[str, str, ClusterScore, str]] = []
    merges_store = uow.merges

    deltas = plan.deltas
    new_goldens = plan.new_goldens
    writes = plan.writes
    keys_by_source_id = plan.keys_by_source_id
    unchanged = plan.unchanged

    for n, p in enumerate(prepared, 1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        sid = p.record.source_id
        current = stored.get(sid)
        if current and current.deleted_at is None and current.content_hash == p.content_hash:
            unchanged.append((p.index, current.golden_id))
            results[p.index] = Accepted(current.golden_id, "unchanged", warnings=p.warnings)
            continue
        link = _link(entity, p, current, owners, new_goldens, active, pool)
        golden_id, outcome, rule = link.golden_id, link.outcome, link.rule
        asked = [candidate for candidate, _, _ in link.reviews]
        for other, own in link.merges:
            survivor, loser = roles(golden_id, other, new_goldens)
            if loser not in new_goldens and await merges_store.apart(survivor, loser):
                continue  # a steward said these are not the same: neither merge nor ask again
            pool.merge(loser, survivor)
            auto_merges.append((survivor, loser, own, sid))
            golden_id = pool.resolve(golden_id)
        for candidate, reason, score in link.reviews:
            if golden_id not in new_goldens and await merges_store.apart(golden_id, candidate):
                # A steward said not a match (or unmerged them): never proposed again.
                asked.remove(candidate)
                continue
            reviews.append((sid, golden_id, candidate, reason, score))
        if current is None or current.deleted_at is not None or current.golden_id != golden_id:
            _add(deltas, golden_id, linked=(source, sid))
            if (
                current is not None
                and current.golden_id != golden_id
                and current.deleted_at is None
            ):
                _add(deltas, current.golden_id, unlinked=(source, sid))
        else:
            deltas.setdefault(golden_id, XrefDelta())
        for key in p.keys:
            owners.setdefault(key, set()).add(golden_id)
        assert p.features is not None
        pool.add(golden_id, p.features, sid)
        # Row id and version come from the database; a later record of this batch
        # with the same source_id replaces this write and compares against it.
        before = original.get(sid)
        version = (before.version if before else 0) + 1
        writes[sid] = SourceRecordWrite(
            id=before.id if before else None,
            entity=entity,
            source=source,
            source_id=sid,
            golden_id=golden_id,
            raw=p.record.attributes,
            standardized=p.values,
            warnings=p.warnings,
            content_hash=p.content_hash,
            version=version,
            source_updated_at=p.record.source_updated_at,
            received_at=ctx.received_at,
            link_rule=rule,
            match_features=p.features.prepared,
            link_weight=link.score.weight if link.score else None,
            link_probability=link.score.probability if link.score else None,
            link_model_version=active.model.version if rule != "existing" else None,
            link_explanation=explanation(link.score) if link.score else None,
        )
        keys_by_source_id[sid] = sorted({*p.keys, *p.features.blocking})
        plan.strong_keys[sid] = p.keys
        stored[sid] = StoredSourceRecord(
            before.id if before else 0, sid, golden_id, p.content_hash, version, None
        )
        results[p.index] = Accepted(
            golden_id,
            outcome,
            warnings=p.warnings,
            match_probability=link.score.probability if link.score else None,
            review=asked,
        )

    # Golden records merged in this unit of work: what linked to a loser goes to its
    # survivor. A loser created in this unit never existed for anyone else and
    # simply is not created; an existing one is merged like a steward's merge.
    merged = {loser: pool.resolve(loser) for loser in pool.merged}
    db_merges: dict[str, list[tuple[str, ClusterScore, str]]] = {}
    if merged:
        writes, deltas = follow_redirects(merged, writes, deltas)
        for r in results:
            if isinstance(r, Accepted):
                r.golden_id = merged.get(r.golden_id, r.golden_id)
                r.review = [g for g in dict.fromkeys(merged.get(g, g) for g in r.review)]
                r.review = [g for g in r.review if g != r.golden_id]
        for _, loser, own, bridge in auto_merges:
            if new_goldens.pop(loser, None) is None:
                db_merges.setdefault(merged[loser], []).append((loser, own, bridge))
        reviews = [
            (sid, pool.resolve(g), pool.resolve(c), reason, score)
            for sid, g, c, reason, score in reviews
        ]

    plan.writes, plan.deltas = writes, deltas
    plan.reviews = reviews
    plan.db_merges = db_merges
    return plan


async def take_locks(uow: UnitOfWork, plan: Plan) -> None:
    """The plan's locks: its source records, its keys' buckets, what it references."""
    await uow.lock(plan.lock_names)
    await lock_referenced(uow, plan.entity, plan.source, plan.referenced)


def roles(linked: str, other: str, new_goldens: Mapping[str, GoldenRecord]) -> tuple[str, str]:
    """(survivor, loser): an existing golden record keeps its id over one made just now,
    else the older one (golden ids begin with their creation time)."""
    if (linked in new_goldens) != (other in new_goldens):
        return (other, linked) if linked in new_goldens else (linked, other)
    return (min(linked, other), max(linked, other))


@dataclass(frozen=True, slots=True)
class _Link:
    golden_id: str
    outcome: str  # created | linked
    rule: str  # existing | strong_key | strong_key_ambiguous | restored | match | new | review
    score: ClusterScore | None = None  # the model's score against the linked golden record
    reviews: tuple[tuple[str, str, ClusterScore], ...] = ()  # (candidate, reason, score)
    # Golden records that also match this record and match the linked one on their
    # own evidence: merged into it (the score is theirs against each other).
    merges: tuple[tuple[str, ClusterScore], ...] = ()


def _vouched_owners(
    p: PreparedRecord, owners: Mapping[str, set[str]], active: ActiveModel, pool: BatchPool
) -> dict[str, set[str]]:
    """The golden records owning the record's strong keys that may take it at once: a
    member agrees with it on an identifier and on a name (matching.scoring.vouches),
    and no member is another entity (matching.scoring.strangers: the record of a
    senior whose number a junior's golden record holds). The others are left to the
    model, which weighs the identifier with the rest."""
    assert p.features is not None
    incoming = p.features.prepared
    verdict: dict[str, bool] = {}
    out: dict[str, set[str]] = {}
    for key in p.keys:
        for golden_id in {pool.resolve(g) for g in owners.get(key, ())}:
            if golden_id not in verdict:
                members = pool.members.get(golden_id) or ()
                verdict[golden_id] = any(
                    vouches(active.model, incoming, m) for m in members
                ) and not strangers(active.model, [incoming], members)
            if verdict[golden_id]:
                out.setdefault(key, set()).add(golden_id)
    return out


def _link(
    entity: str,
    p: PreparedRecord,
    current: StoredSourceRecord | None,
    owners: dict[str, set[str]],
    new_goldens: dict[str, GoldenRecord],
    active: ActiveModel,
    pool: BatchPool,
) -> _Link:
    """Which golden record this source record belongs to, and why."""
    if current is not None and current.deleted_at is None:
        # An update keeps its golden record; re-matching on change is the
        # stewards' business (review tasks), not a side effect of an update.
        return _Link(pool.resolve(current.golden_id), "linked", "existing")
    assert p.features is not None
    best, candidates = _choose(p.keys, _vouched_owners(p, owners, active, pool))
    if best is not None:
        rule = "strong_key" if len(candidates) == 1 else "strong_key_ambiguous"
        if len(candidates) > 1:
            p.warnings.append(
                {
                    "path": "$",
                    "code": "ambiguous_match",
                    "message": f"record shares strong identifiers with {len(candidates)} golden "
                    f"records ({', '.join(candidates)}); linked to {best}",
                }
            )
        return _Link(best, "linked", rule)
    if current is not None:
        # A deleted record that comes back returns to the golden record it had.
        return _Link(pool.resolve(current.golden_id), "linked", "restored")
    result = match(active, p.features, pool, prune=True)
    decision = result.decision
    if decision.outcome == "link":
        return _Link(decision.golden_id, "linked", "match", result.score(decision.golden_id))
    reviews: tuple[tuple[str, str, ClusterScore], ...] = ()
    if decision.outcome == "review":
        strong = [c.golden_id for c in decision.candidates if c.links(active.model)]
        if len(strong) > 1:
            # Several golden records match well: join the best. Another one that
            # matches it on their own evidence (without this record) is the same
            # and is merged into it; for the rest a steward decides: never a
            # chain merge through this record.
            best_id = strong[0]
            merges, several = [], []
            for g in strong[1 : MAX_REVIEWS + 1]:
                own = same_on_their_own(active, pool, best_id, g)
                if own is not None:
                    merges.append((g, own))
                else:
                    several.append((g, "several_matches", result.scores[g]))
            return _Link(
                best_id,
                "linked",
                "match",
                result.score(best_id),
                tuple(several),
                tuple(merges),
            )
        reviews = tuple(
            (c.golden_id, "review_band", result.scores[c.golden_id])
            for c in decision.candidates[:MAX_REVIEWS]
        )
    golden = GoldenRecord.new(new_golden_id(entity), entity)
    new_goldens[golden.golden_id] = golden
    return _Link(golden.golden_id, "created", "review" if reviews else "new", None, reviews)


def follow_redirects(
    redirect: dict[str, str],
    writes: dict[str, SourceRecordWrite],
    deltas: dict[str, XrefDelta],
) -> tuple[dict[str, SourceRecordWrite], dict[str, XrefDelta]]:
    moved = {
        sid: dataclasses.replace(w, golden_id=redirect.get(w.golden_id, w.golden_id))
        for sid, w in writes.items()
    }
    merged: dict[str, XrefDelta] = {}
    for golden_id, delta in deltas.items():
        target = redirect.get(golden_id, golden_id)
        _add(merged, target)
        for link in delta.linked:
            _add(merged, target, linked=link)
        for link in delta.unlinked:
            _add(merged, target, unlinked=link)
    return moved, merged


def _add(
    deltas: dict[str, XrefDelta],
    golden_id: str,
    linked: tuple[str, str] | None = None,
    unlinked: tuple[str, str] | None = None,
) -> None:
    d = deltas.get(golden_id, XrefDelta())
    deltas[golden_id] = XrefDelta(
        linked=d.linked | ({linked} if linked else set()),
        unlinked=d.unlinked | ({unlinked} if unlinked else set()),
    )
