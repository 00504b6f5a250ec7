"""Ingesting source records: standardize, store, match, survive, announce.

One call is one unit of work on one connection: the caller owns the
transaction, so a batch's records, its golden versions, their history rows and
their outbox events commit together or not at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from matching import standardize_record, strong_keys
from matching.scoring import ClusterScore, strangers, vouches
from mdm.domain.errors import FieldProblem, NotFound
from mdm.domain.golden import GoldenRecord, XrefDelta
from mdm.domain.ids import new_golden_id
from mdm.domain.mastering import ActiveModel, MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import SourceRecordWrite, StoredSourceRecord
from mdm.domain.survivorship import Contribution
from mdm.services.context import RequestContext
from mdm.services.events import SYSTEM_CAUSE, Cause, GoldenChangeSet, Touch, record_changes
from mdm.services.matcher import (
    MAX_REVIEWS,
    BatchPool,
    Features,
    PoolSource,
    explanation,
    features,
    load_pool,
    match,
    same_on_their_own,
)
from mdm.services.references import lock_referenced, reference_locks
from mdm.services.review_events import announce_opened
from schemas.api import BATCH_ITEM, OUT_OF_RANGE, in_utc_range
from schemas.text import explain

_hash_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class IncomingRecord:
    source_id: str
    attributes: dict[str, Any]  # JSON builtins, already schema-validated
    source_updated_at: dt.datetime | None = None


@dataclass(slots=True)
class Accepted:
    golden_id: str
    outcome: str
    version: int = 0
    warnings: list[dict[str, str]] = field(default_factory=list)
    match_probability: float | None = None  # of the golden record it was linked to by the model
    review: list[str] = field(default_factory=list)  # golden ids a steward will compare it with


@dataclass(frozen=True, slots=True)
class Rejected:
    errors: list[FieldProblem]


@dataclass(slots=True)
class _Prepared:
    index: int
    record: IncomingRecord
    values: dict[str, Any]
    warnings: list[dict[str, str]]
    keys: list[str]
    content_hash: bytes
    features: Features | None = None
    model_version: int | None = None  # of the model the features were prepared for


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


def decode_item(
    entity: str, index: int, item: Any, strict: bool = True
) -> IncomingRecord | Rejected:
    """One batch item ({source_id, attributes, source_updated_at?}) checked against the
    entity's schema, as POST .../batch and `mdm load` take it; problems name `$[index]...`."""
    try:
        parsed: Any = msgspec.convert(item, BATCH_ITEM[entity], strict=strict)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        path = where.rstrip("`") if where else "$"
        return Rejected([FieldProblem(f"$[{index}]{path[1:]}", explain(message))])
    return incoming(parsed.source_id, parsed, f"$[{index}]")


def incoming(source_id: str, parsed: Any, at: str) -> IncomingRecord | Rejected:
    """A body of the entity's UPSERT_BODY or BATCH_ITEM type, as msgspec took it, as the
    record to ingest; `at` is its path in the request (`$`, `$[3]`)."""
    updated = parsed.source_updated_at
    if updated is not None and not in_utc_range(updated):
        return Rejected([FieldProblem(f"{at}.source_updated_at", OUT_OF_RANGE)])
    return IncomingRecord(
        source_id=source_id,
        attributes=msgspec.to_builtins(parsed.attributes),
        source_updated_at=updated,
    )


def content_hash(record: IncomingRecord) -> bytes:
    """What makes a replay a replay: the attributes and the source's update time."""
    payload = _hash_encoder.encode([record.attributes, record.source_updated_at])
    return hashlib.blake2b(payload, digest_size=16).digest()


def _prepare(
    entity: str, index: int, record: IncomingRecord, active: ActiveModel | None = None
) -> _Prepared | Rejected:
    std = standardize_record(entity, record.attributes)
    if std.errors:
        return Rejected([FieldProblem(f"$.attributes.{e.path}", e.message) for e in std.errors])
    warnings = [{"path": w.path, "code": w.code, "message": w.message} for w in std.warnings]
    return _Prepared(
        index=index,
        record=record,
        values=std.values,
        warnings=warnings,
        keys=strong_keys(entity, std.values, std.warnings),
        content_hash=content_hash(record),
        features=features(active, entity, std.values) if active is not None else None,
        model_version=active.model.version if active is not None else None,
    )


Prepared = _Prepared


def prepare_records(
    entity: str, records: Sequence[IncomingRecord], active: ActiveModel | None = None
) -> list[_Prepared | Rejected]:
    """Standardization, strong keys, content hash and (given the model) match features:
    the part of ingestion that needs no database, so a bulk load runs it in another
    process (mdm.adapters.bulk) and hands the results to `ingest_records(prepared=)`."""
    return [_prepare(entity, i, r, active) for i, r in enumerate(records)]


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


async def ingest_records(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    source: str,
    records: Sequence[IncomingRecord],
    ctx: RequestContext,
    candidates: PoolSource | None = None,
    prepared_records: Sequence[_Prepared | Rejected] | None = None,
) -> list[Accepted | Rejected]:
    """Upsert `records` of `source` for `entity`; one result per record, in order.

    `candidates` replaces the database's blocking index as the source of candidate
    golden records (a bulk load keeps the index in memory: mdm.adapters.bulk).
    `prepared_records` is `prepare_records(entity, records, ...)` done already
    (elsewhere); features prepared for another model version than the one in
    force are prepared again.

    It is `plan_records` (locks, reads, matching: who links to what) followed by
    `apply_plan` (the writes), in the caller's transaction.
    """
    plan = await plan_records(
        uow, rules, entity, source, records, ctx, candidates, prepared_records
    )
    return await apply_plan(uow, rules, plan, ctx)


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
    prepared_records: Sequence[_Prepared | Rejected] | None = None,
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
    prepared: list[_Prepared] = []
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
        await _take_locks(uow, plan)
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
            survivor, loser = _roles(golden_id, other, new_goldens)
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
        writes, deltas = _follow_redirects(merged, writes, deltas)
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


async def _take_locks(uow: UnitOfWork, plan: Plan) -> None:
    await uow.lock(plan.lock_names)
    await lock_referenced(uow, plan.entity, plan.source, plan.referenced)


async def apply_plan(
    uow: UnitOfWork, rules: MasteringRules, plan: Plan, ctx: RequestContext
) -> list[Accepted | Rejected]:
    """Write what `plan_records` decided: source records, keys, review tasks, merges,
    golden versions with history and events (taking the plan's locks first if the
    plan did not)."""
    results = plan.results
    if plan.active is None:  # nothing to write: every record was rejected
        return [r for r in results if r is not None]
    entity, source, active = plan.entity, plan.source, plan.active
    if not plan.locked:
        await _take_locks(uow, plan)
    writes, deltas, new_goldens = plan.writes, plan.deltas, plan.new_goldens
    reviews, db_merges, unchanged = plan.reviews, plan.db_merges, plan.unchanged
    keys_by_source_id = plan.keys_by_source_id
    # Lock the existing golden records this batch links to before writing. A
    # merge that committed after our candidate lookup has moved their records:
    # follow its redirect so nothing is linked to a merged-away record.
    db_losers = {loser for found in db_merges.values() for loser, _, _ in found}
    locked = await uow.records.lock_goldens(sorted((set(deltas) | db_losers) - new_goldens.keys()))
    redirect = {g: r.merged_into for g, r in locked.items() if r.merged_into is not None}
    if redirect:
        locked.update(
            await uow.records.lock_goldens(sorted(set(redirect.values()) - locked.keys()))
        )
        writes, deltas = _follow_redirects(redirect, writes, deltas)
        for r in results:
            if isinstance(r, Accepted) and r.golden_id in redirect:
                r.golden_id = redirect[r.golden_id]

    if writes:
        ids = await uow.records.write_source_records(list(writes.values()))
        await uow.records.replace_match_keys(
            entity,
            {ids[sid]: keys for sid, keys in keys_by_source_id.items()},
            new={ids[w.source_id] for w in writes.values() if w.id is None},
        )
        tasks: list[dict[str, Any]] = [
            {
                "entity": entity,
                "record_id": ids[sid],
                "golden_id": redirect.get(golden_id, golden_id),
                "candidate_id": redirect.get(candidate, candidate),
                "reason": reason,
                "weight": score.weight,
                "probability": score.probability,
                "model_version": active.model.version,
                "explanation": explanation(score),
                "created_at": ctx.received_at,
            }
            for sid, golden_id, candidate, reason, score in reviews
            if redirect.get(golden_id, golden_id) != redirect.get(candidate, candidate)
        ]
        task_ids = await uow.matches.add_review_tasks(tasks)
        source_ids = {ids[sid]: sid for sid in writes}
        await announce_opened(
            uow,
            [
                {**t, "id": i, "source": source, "source_id": source_ids[t["record_id"]]}
                for t, i in zip(tasks, task_ids, strict=True)
            ],
            ctx,
        )
        causes = {
            w.golden_id: Cause(kind="source_record", source=source, source_id=w.source_id)
            for w in writes.values()
        }
        touches = {g: Touch(xrefs=d, cause=causes.get(g, SYSTEM_CAUSE)) for g, d in deltas.items()}
        for survivor, found in db_merges.items():
            touches.update(
                await _auto_merge(
                    uow, entity, source, survivor, found, locked, redirect, deltas, ctx
                )
            )
        fresh: dict[str, list[Contribution]] = {g: [] for g in new_goldens}
        for w in writes.values():  # in id order, as the database would answer
            if w.golden_id in fresh:
                fresh[w.golden_id].append(
                    Contribution(
                        ids[w.source_id],
                        source,
                        w.source_id,
                        w.standardized,
                        # as PostgreSQL answers a timestamptz: in UTC
                        w.source_updated_at.astimezone(dt.UTC) if w.source_updated_at else None,
                        w.received_at.astimezone(dt.UTC),
                    )
                )
        changes = await record_changes(
            uow, rules, entity, touches, ctx, {**locked, **new_goldens}, fresh=fresh
        )
        versions = changes.versions
    else:
        versions = {}
    missing = sorted({g for _, g in unchanged} - versions.keys())
    versions.update(await uow.records.golden_versions(missing))
    for r in results:
        if isinstance(r, Accepted):
            r.version = versions[r.golden_id]
    return [r for r in results if r is not None]


def _roles(linked: str, other: str, new_goldens: Mapping[str, GoldenRecord]) -> tuple[str, str]:
    """(survivor, loser): an existing golden record keeps its id over one made just now,
    else the older one (golden ids begin with their creation time)."""
    if (linked in new_goldens) != (other in new_goldens):
        return (other, linked) if linked in new_goldens else (linked, other)
    return (min(linked, other), max(linked, other))


async def _auto_merge(
    uow: UnitOfWork,
    entity: str,
    source: str,
    survivor: str,
    found: Sequence[tuple[str, ClusterScore, str]],
    locked: Mapping[str, GoldenRecord],
    redirect: Mapping[str, str],
    deltas: Mapping[str, XrefDelta],
    ctx: RequestContext,
) -> dict[str, Touch]:
    """Merge existing golden records that match `survivor` on their own evidence.

    Like a steward's merge (mdm/services/lifecycle.py): records move, redirects,
    inherited pins, a merge_event (actor "matcher") that an unmerge can undo,
    golden.merged and golden.lost_merge events.
    """
    if survivor in redirect or survivor not in locked:
        return {}  # merged away meanwhile by someone else: leave it to a steward
    losers = sorted(
        {loser for loser, _, _ in found if loser in locked and locked[loser].status == "active"}
    )
    if not losers:
        return {}
    best, bridge = max(((own, b) for _, own, b in found), key=lambda x: x[0].probability)
    reason = (
        f"the golden records match on their own evidence (probability {best.probability:.6f}) "
        f"when {source}:{bridge} matched both"
    )
    store = uow.merges
    moved = await store.move_all(losers, survivor)
    await store.repoint_redirects(losers, survivor)
    await uow.overrides.inherit_pins(losers, survivor)
    merge_id = await store.record_merge(
        entity, survivor, losers, moved, "matcher", reason, ctx.received_at
    )
    cause = Cause(
        kind="source_record", source=source, source_id=bridge, reason=reason, merge_id=merge_id
    )
    delta = deltas.get(survivor, XrefDelta())
    linked = frozenset((m.source, m.source_id) for m in moved if not m.deleted)
    touches = {
        survivor: Touch(
            xrefs=XrefDelta(linked=delta.linked | linked, unlinked=delta.unlinked),
            cause=cause,
            event_type="golden.merged",
            merged_from=tuple(losers),
        )
    }
    touches.update({loser: Touch(cause=cause, merged_into=survivor) for loser in losers})
    return touches


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
    p: _Prepared, owners: Mapping[str, set[str]], active: ActiveModel, pool: BatchPool
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
    p: _Prepared,
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


def _follow_redirects(
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


async def delete_record(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    source: str,
    source_id: str,
    ctx: RequestContext,
) -> Accepted:
    """Mark a source record deleted and recompute (or retire) its golden record."""
    rules.authorize_write(source, entity)
    await uow.lock([f"sr:{entity}:{source}:{source_id}"])
    current = (await uow.records.source_records(entity, source, [source_id])).get(source_id)
    if current is None:
        raise NotFound(f"{source} has no {entity} record {source_id!r}")
    if current.deleted_at is not None:
        version = (await uow.records.golden_versions([current.golden_id]))[current.golden_id]
        return Accepted(current.golden_id, "unchanged", version)
    await uow.records.mark_deleted(current.id, ctx.received_at)
    cause = Cause(kind="source_record", source=source, source_id=source_id)
    touch = Touch(xrefs=XrefDelta(unlinked=frozenset({(source, source_id)})), cause=cause)
    changes: GoldenChangeSet = await record_changes(
        uow, rules, entity, {current.golden_id: touch}, ctx
    )
    return Accepted(current.golden_id, "deleted", changes.versions[current.golden_id])
