"""Re-matching what the hub holds under the current model (`mdm rematch ENTITY`).

Records are matched once, as they arrive, by the model in force then. When the
model changes (`mdm train`), golden records that arrived split may now match:
a run compares the stored golden records with each other under the current
model and does what the matcher does when a record reveals two golden records
to be one (mdm/services/ingest/plan.py):

- a pair at or above `auto_link` on their own evidence (`score_clusters`) is
  merged with the lifecycle's merge (`merge_goldens`, actor `matcher`, the
  model version in the reason): evented, undoable by an unmerge;
- a pair in the review band gets a review task (`review_band`), unless an
  undecided task already asks about it; so does a pair at or above `auto_link`
  whose score says they are another entity (`ClusterScore.conflict`: people of
  one household, a number on another person's record), as at ingestion;
- a pair a steward kept apart (a `not_a_match` decision or an unmerge) is
  neither merged nor proposed again. A run never splits anything, so manual
  merges, unmerges and pins stay as they are.

Candidates come from the blocking index exactly as for an incoming record
(`MatchStore.candidate_owners`, the generic key cap, at most 40 golden records,
best-keyed first), read for a window of golden records at once (`_View`). Golden
records are taken in id order, in chunks of one transaction each; a golden
record is compared with candidates after it (so each pair is scored once), and
one that grew by a merge is compared again with all its candidates until nothing
more joins it: one merge at a time, each decided on the two golden records' own
evidence, never through a third one. The run's row (rematch_run) keeps the
cursor, committed with each chunk: a run killed midway continues after its last
committed chunk, and a run over records that did not change changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from matching.scoring import ClusterScore, score_clusters, strangers
from mdm.domain.errors import Conflict
from mdm.domain.mastering import ActiveModel, MasteringRules
from mdm.domain.ports import RunLock, UnitOfWork, Units
from mdm.domain.sources import check_entity
from mdm.domain.stored import TRAINING_LOCK_CLASS, Run
from mdm.services.context import RequestContext
from mdm.services.lifecycle import merge_goldens
from mdm.services.matcher import GENERIC_KEY_CAP, MAX_REVIEWS, BatchPool, explanation
from mdm.services.review_events import announce_opened, withdraw

#: Golden records per transaction.
CHUNK = 500
#: Golden records whose reads are made together (see _View).
WINDOW = 100
ACTOR = "matcher"

Transaction = Callable[[], AbstractAsyncContextManager[UnitOfWork]]
Progress = Callable[[int, int], None]  # (done, total)


class AlreadyRunning(Conflict):
    """Another run of the same entity holds its lock."""


@dataclass(slots=True)
class ChunkResult:
    merged: int = 0
    reviews: int = 0
    withdrawn: int = 0


class Rematch:
    """One run: `await Rematch.claim(...)`, then `await run.run()` (which releases it)."""

    def __init__(
        self,
        rules: MasteringRules,
        entity: str,
        lock: RunLock,
        run: Run,
        units: Units,
        resumed: bool,
    ) -> None:
        self.rules = rules
        self.entity = entity
        self.lock = lock
        self.state = run
        self.units = units
        self.resumed = resumed

    @classmethod
    async def claim(cls, units: Units, rules: MasteringRules, entity: str) -> Rematch:
        """Take the entity's run lock and the run to work on: the unfinished one, if it
        is for the model in force (it continues after its cursor), else a new one.

        Raises AlreadyRunning when another process is re-matching the entity."""
        check_entity(entity)
        lock = await units.session_lock(entity)
        if lock is None:
            raise AlreadyRunning(f"{entity} records are being re-matched already")
        try:
            async with units.transaction() as uow:
                active = await rules.models.current(uow.matches, entity)
                version = active.model.version
                runs = uow.runs
                last = await runs.latest(entity)
                if last is not None and last.status == "running":
                    if last.model_version == version:
                        return cls(rules, entity, lock, last, units, True)
                    await runs.abandon(last.id)
                run = await runs.start(entity, version, await runs.count_active(entity))
            return cls(rules, entity, lock, run, units, False)
        except BaseException:
            await lock.release()
            raise

    async def run(self, chunk_size: int = CHUNK, progress: Progress | None = None) -> Run:
        """Work the run to its end, a chunk a transaction; its final row."""
        try:
            if progress is not None:
                progress(self.state.done, self.state.total)
            while True:
                # A chunk that the store aborted to break a deadlock (with a batch that
                # locked some of its golden records) runs again.
                goldens, state = await self.units.run(lambda uow: self._chunk(uow, chunk_size))
                assert state is not None and state.id == self.state.id
                self.state = state
                if progress is not None:
                    progress(state.done, state.total)
                if not goldens:
                    return state
        finally:
            await self.release()

    async def _chunk(self, uow: UnitOfWork, chunk_size: int) -> tuple[list[str], Run | None]:
        """Re-match the next chunk after the cursor and advance it (or finish the run)."""
        runs = uow.runs
        goldens = await runs.next_goldens(self.entity, self.state.cursor, chunk_size)
        if not goldens:
            await runs.finish(self.state.id)
        else:
            result = await rematch_chunk(uow, self.rules, self.entity, goldens)
            await runs.advance(
                self.state.id,
                goldens[-1],
                len(goldens),
                result.merged,
                result.reviews,
                result.withdrawn,
            )
        return goldens, await runs.latest(self.entity)

    async def release(self) -> None:
        await self.lock.release()


@dataclass(slots=True)
class _View:
    """What the comparisons of some golden records read, fetched together: their keys,
    their candidates' pool, which of them are active, the pairs kept apart and the
    pairs an undecided task asks about. Exact until the next merge (which moves
    records, keys and decisions), so a merge drops it."""

    goldens: frozenset[str]
    candidates: dict[str, list[str]]  # pool.candidates(keys[g]) of each of them
    pool: BatchPool
    own: set[str]  # the goldens whose pool holds their own members (as load_pool's)
    active: set[str]
    apart: set[frozenset[str]]
    undecided: set[frozenset[str]]


async def _view(uow: UnitOfWork, entity: str, goldens: Sequence[str]) -> _View:
    """The reads of `load_pool` and of the merge and review checks for `goldens`, a few
    set-based queries in all: `pool.candidates(keys[g])` and the members answer for
    each of them what `load_pool(keys[g])` would (each key's owners are the same)."""
    keys = await uow.runs.keys(goldens)
    store = uow.matches
    owners, generic = await store.candidate_owners(
        entity, sorted({k for ks in keys.values() for k in ks}), GENERIC_KEY_CAP
    )
    pool = BatchPool(generic=generic, db_owners=owners)
    own = {g for g, ks in keys.items() if any(g in owners.get(k, ()) for k in ks)}
    candidates = {g: pool.candidates(keys.get(g, [])) for g in goldens}
    wanted = own.union(*candidates.values())
    members = await store.members(wanted)
    pool.members = {g: [m.features for m in ms] for g, ms in members.items()}
    return _View(
        goldens=frozenset(goldens),
        candidates=candidates,
        pool=pool,
        own=own,
        active=await uow.runs.active_among(goldens),
        apart=await uow.merges.apart_pairs(goldens),
        undecided=await uow.reviews.undecided_pairs(goldens),
    )


async def rematch_chunk(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    goldens: list[str],
    window: int | None = None,
) -> ChunkResult:
    """Compare each of `goldens` (in id order) with its candidates, in one transaction.

    Their reads are made `window` (WINDOW) golden records at a time (`_View`), again
    after a merge, so memory stays bounded whatever the chunk."""
    window = window or WINDOW
    active = await rules.models.current(uow.matches, entity)
    ctx = RequestContext()
    result = ChunkResult()
    view: _View | None = None
    for i, golden_id in enumerate(goldens):
        current: str | None = golden_id
        later_only = True
        while current is not None:
            if view is None or current not in view.goldens:
                view = await _view(uow, entity, [current, *goldens[i + 1 : i + window]])
            if current not in view.active:
                break
            merged = result.merged
            current = await _step(
                uow, rules, active, entity, view, current, later_only, ctx, result
            )
            if result.merged != merged:
                view = None
            later_only = False
    return result


async def _step(
    uow: UnitOfWork,
    rules: MasteringRules,
    active: ActiveModel,
    entity: str,
    view: _View,
    golden_id: str,
    later_only: bool,
    ctx: RequestContext,
    result: ChunkResult,
) -> str | None:
    """Score one golden record against its candidates and act on the best.

    With `later_only`, only candidates after it in id order (the pairs before it
    were scored when their first was). Merges the best candidate at or above
    auto_link and answers the survivor, to be compared again; otherwise opens the
    review tasks of the review band and answers None.
    """
    pool = view.pool
    own = pool.members.get(golden_id) if golden_id in view.own else None
    if not own:
        return None
    thresholds = active.model.thresholds
    scored: list[tuple[float, str, ClusterScore]] = []
    for candidate in view.candidates[golden_id]:
        if candidate == golden_id or (later_only and candidate < golden_id):
            continue
        other = pool.members.get(candidate)
        if not other:
            continue
        left, right = (own, other) if golden_id < candidate else (other, own)
        score = score_clusters(active.model, left, right, active.frequencies)
        if score.probability >= thresholds.review:
            scored.append((score.probability, candidate, score))
        elif frozenset((golden_id, candidate)) in view.undecided:
            result.withdrawn += await _withdraw(uow, active, golden_id, candidate, score, ctx)
    scored.sort(key=lambda s: (-s[0], s[1]))
    strong = [
        (c, s)
        for _, c, s in scored
        if s.links(active.model) and not strangers(active.model, own, pool.members[c])
    ]
    for candidate, score in strong:
        if frozenset((golden_id, candidate)) in view.apart:
            continue  # a steward said these are not the same: neither merge nor ask
        survivor, loser = min(golden_id, candidate), max(golden_id, candidate)
        await merge_goldens(
            uow,
            rules,
            entity,
            survivor,
            [loser],
            ACTOR,
            f"re-matched under model version {active.model.version}: the golden records "
            f"match on their own evidence (probability {score.probability:.6f})",
            ctx,
            cause_kind="system",
        )
        result.merged += 1
        return survivor
    linked = {c for c, _ in strong}
    band = [(c, s) for _, c, s in scored if c not in linked]
    result.reviews += await _open_reviews(uow, active, entity, view, golden_id, band, ctx)
    return None


async def _withdraw(
    uow: UnitOfWork,
    active: ActiveModel,
    golden_id: str,
    candidate: str,
    score: ClusterScore,
    ctx: RequestContext,
) -> int:
    """Close the open tasks an older model opened about a pair the model in force puts
    below the review band: the question is no longer asked. A deferred task, which a
    steward has taken up, stays; so does any task of the model in force."""
    store = uow.reviews
    stale = [
        task
        for task in await store.undecided_between(golden_id, candidate, exclude=0)
        if task["status"] == "open" and task["model_version"] < active.model.version
    ]
    why = (
        f"re-matched under model version {active.model.version}: probability "
        f"{score.probability:.6f}, below the review band"
    )
    for task in stale:
        await withdraw(uow, task, ACTOR, why, ctx)
    return len(stale)


async def _open_reviews(
    uow: UnitOfWork,
    active: ActiveModel,
    entity: str,
    view: _View,
    golden_id: str,
    band: list[tuple[str, ClusterScore]],
    ctx: RequestContext,
) -> int:
    """Review tasks for the pairs in the review band (at most MAX_REVIEWS, best first),
    as the ingest path opens them: none for a pair a steward kept apart or that an
    undecided task asks about already. The newer golden record is the one under
    review (its first live record), the older the candidate."""
    reviews = uow.reviews
    tasks: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for candidate, score in band:
        if len(tasks) == MAX_REVIEWS:
            break
        pair = frozenset((golden_id, candidate))
        if pair in view.apart or pair in view.undecided:
            continue
        newer, older = max(golden_id, candidate), min(golden_id, candidate)
        record = (await reviews.records(newer))[0]
        tasks.append(
            {
                "entity": entity,
                "record_id": record["id"],
                "golden_id": newer,
                "candidate_id": older,
                "reason": "review_band",
                "weight": score.weight,
                "probability": score.probability,
                "model_version": active.model.version,
                "explanation": explanation(score),
                "created_at": ctx.received_at,
            }
        )
        sources.append({"source": record["source"], "source_id": record["source_id"]})
        view.undecided.add(pair)
    ids = await uow.matches.add_review_tasks(tasks)
    await announce_opened(
        uow,
        [{**t, **s, "id": i} for t, s, i in zip(tasks, sources, ids, strict=True)],
        ctx,
    )
    return len(tasks)


# -- the status -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    entity: str
    model_version: int
    fitted_at: dt.datetime
    trained_on: int | None  # the records the model was fitted on (None: the packaged one)
    records: int  # live source records now
    records_since_fit: int  # of them, received after the model was fitted
    state: str  # idle | pending | running | training | training_due
    run: Run | None  # the latest run


async def status(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    due: Callable[[UnitOfWork, str], Awaitable[bool]] | None = None,
) -> Status:
    """Where re-matching stands for `entity`.

    Running: a re-matching run works. Training: the hub's automatic training of the
    entity (mdm serve's retraining check) is fitting and checking a model, and
    re-matching after it if it adopts one. Pending: a run was interrupted, or the
    model in force was fitted (not the packaged one) after records were held and no
    run under it has finished. Training due: nothing runs, but `due` (the hub's
    retraining policy, when it has one) says the entity is to be trained: its next
    check will.
    """
    check_entity(entity)
    await rules.models.current(uow.matches, entity)  # stores the packaged model if none is
    store = uow.runs
    info = await store.model_info(entity)
    assert info is not None
    last = await store.latest(entity)
    if await store.locked(entity):
        state = "running"
    elif await store.locked(entity, TRAINING_LOCK_CLASS):
        state = "training"
    elif last is not None and last.status == "running":
        state = "pending"
    else:
        done = await store.latest_finished(entity)
        stale = info.trained_on is not None and (done is None or done.model_version < info.version)
        state = "pending" if stale and await store.any_before(entity, info.fitted_at) else "idle"
        if state == "idle" and due is not None and await due(uow, entity):
            state = "training_due"
    return Status(
        entity=entity,
        model_version=info.version,
        fitted_at=info.fitted_at,
        trained_on=info.trained_on,
        records=await store.live_records(entity),
        records_since_fit=await store.live_records(entity, info.fitted_at),
        state=state,
        run=last,
    )
