"""Probabilistic matching inside a unit of work: candidates, scores, decisions.

Candidates come from the blocking index in PostgreSQL (match_key: every live
source record's blocking keys), at most `cap` records per key: a key shared by
more is generic and skipped, so one record touches tens of candidates however
many golden records there are. Each candidate golden record is scored as a whole
against all its live source records (matching.scoring.score_cluster) and the
model's bands decide: link, review (a new golden record plus a review task, or
the best of several strong matches plus a task for the others), or new.

Records earlier in the same batch are candidates too (`BatchPool`), so a batch
that holds two near-duplicates makes one golden record, as two requests would.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from matching import standardize_record
from matching.blocking import blocking_keys
from matching.model import MatchModel, default_model, upgraded
from matching.prepare import Prepared, prepare
from matching.scoring import (
    ClusterScore,
    CountedFrequencies,
    Decision,
    below,
    ceiling,
    compile_model,
    decide,
    score_cluster,
    score_clusters,
    strangers,
    term_values,
    weight_of,
)
from matching.training import train_with_report
from mdm.domain.errors import FieldProblem, ValidationFailed
from mdm.domain.mastering import ActiveModel, MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import Member

#: A blocking key shared by more live source records than this is skipped as generic.
GENERIC_KEY_CAP = 50


def generic_key(carriers: int, cap: int = GENERIC_KEY_CAP) -> bool:
    """Whether a blocking key carried by `carriers` live records is generic: it names
    no candidates, however alike the records (a common name, a big city). The one
    rule of the database's index (mdm.adapters.matching.MatchStore.candidate_owners)
    and of a bulk load's in-memory one (mdm.adapters.bulk_index.MemoryIndex); reading
    `cap + 1` carriers of a key is enough to apply it."""
    return carriers > cap


#: At most this many candidate golden records are scored for one record (best-keyed first).
MAX_CANDIDATES = 40
#: Review tasks opened for one record at most.
MAX_REVIEWS = 3


@dataclass(frozen=True, slots=True)
class Features:
    prepared: Prepared
    blocking: list[str]


def features(active: ActiveModel, entity: str, values: Mapping[str, Any]) -> Features:
    prepared = prepare(active.model, entity, values)
    return Features(prepared, blocking_keys(active.model, prepared))


def _rank(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


@dataclass(slots=True)
class BatchPool:
    """Candidates from the database, plus the records this unit of work has linked so far."""

    generic: set[str] = field(default_factory=set)
    db_owners: dict[str, set[str]] = field(default_factory=dict)
    members: dict[str, list[Prepared]] = field(default_factory=dict)
    batch_owners: dict[str, set[str]] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)  # loser -> survivor, in this unit
    # (golden id, features, source id) of each record linked in this unit
    added: list[tuple[str, Features, str]] = field(default_factory=list)

    def resolve(self, golden_id: str) -> str:
        while golden_id in self.merged:
            golden_id = self.merged[golden_id]
        return golden_id

    def candidates(self, keys: Iterable[str]) -> list[str]:
        """Golden ids sharing a non-generic key, the ones sharing most keys first."""
        votes: Counter[str] = Counter()
        for key in keys:
            if key in self.generic:
                continue
            db = self.db_owners.get(key)
            batch = self.batch_owners.get(key)
            found = (db | batch) if db and batch else (db or batch)
            if found:  # one vote per key and golden record
                votes.update({self.resolve(g) for g in found} if self.merged else found)
        if len(votes) <= MAX_CANDIDATES:
            return sorted(votes, key=lambda g: (-votes[g], g))
        return [g for g, _ in heapq.nsmallest(MAX_CANDIDATES, votes.items(), key=_rank)]

    def merge(self, loser: str, survivor: str) -> None:
        self.merged[loser] = survivor
        self.members.setdefault(survivor, []).extend(self.members.pop(loser, []))

    def add(self, golden_id: str, f: Features, source_id: str = "") -> None:
        for key in f.blocking:
            self.batch_owners.setdefault(key, set()).add(golden_id)
        self.members.setdefault(golden_id, []).append(f.prepared)
        self.added.append((golden_id, f, source_id))


class CandidateSource(Protocol):
    """Where a unit of work's candidates come from: PostgreSQL's index (MatchStore) or
    the in-memory index of a bulk load (mdm.adapters.bulk_index), which answers the same."""

    async def candidate_owners(
        self, entity: str, keys: Sequence[str], cap: int
    ) -> tuple[dict[str, set[str]], set[str]]: ...

    async def members(self, golden_ids: Iterable[str]) -> dict[str, list[Member]]: ...


async def load_pool(
    store: CandidateSource, entity: str, keys: Sequence[str], cap: int = GENERIC_KEY_CAP
) -> BatchPool:
    """The database's candidates for every key of a unit of work, and their members."""
    owners, generic = await store.candidate_owners(entity, keys, cap)
    goldens = {g for found in owners.values() for g in found}
    members = await store.members(goldens)
    return BatchPool(
        generic=generic,
        db_owners=owners,
        members={g: [m.features for m in ms] for g, ms in members.items()},
    )


class PoolSource(Protocol):
    """Builds a unit of work's BatchPool (ingest_records' `candidates`)."""

    async def pool(self, entity: str, keys: Sequence[str]) -> BatchPool: ...


@dataclass(frozen=True, slots=True)
class MatchResult:
    decision: Decision
    scores: dict[str, ClusterScore]

    def score(self, golden_id: str | None) -> ClusterScore | None:
        return self.scores.get(golden_id) if golden_id is not None else None


def match(active: ActiveModel, f: Features, pool: BatchPool, prune: bool = False) -> MatchResult:
    """Score the candidate golden records of one record and decide.

    With `prune`, a candidate whose score is certainly below the review threshold
    (matching.scoring.below: most candidates, strangers who share a blocking key)
    is left out instead of scored: the decision is the same, and the scores hold
    only the candidates that can matter to it (search() shows them all).
    """
    model, tf = active.model, active.frequencies
    scores: dict[str, ClusterScore] = {}
    left_out = 0
    if prune:
        compiled = compile_model(model)
        top = ceiling(compiled, f.prepared, tf)
        floor = weight_of(model.thresholds.review)
    for golden_id in pool.candidates(f.blocking):
        members = pool.members.get(golden_id)
        if not members:
            continue
        if prune and below(compiled, f.prepared, members, tf, top, floor):
            left_out += 1
            continue
        scores[golden_id] = score_cluster(model, f.prepared, members, tf)
    return MatchResult(decide(model, scores, left_out), scores)


def same_on_their_own(
    active: ActiveModel, pool: BatchPool, left: str, right: str
) -> ClusterScore | None:
    """The two golden records' score against each other, if it reaches auto_link
    without a conflict (matching.scoring.conflict) and no member of one is another
    entity than a member of the other (matching.scoring.strangers).

    A record that matched both is left out: only their own members are compared,
    so a merge this allows is evidence that they are one, not a chain through it.
    """
    a, b = pool.members.get(left), pool.members.get(right)
    if not a or not b:
        return None
    score = score_clusters(active.model, a, b, active.frequencies)
    if not score.links(active.model) or strangers(active.model, a, b):
        return None
    return score


def explanation(score: ClusterScore) -> dict[str, Any]:
    """The waterfall stored with a link or a review task."""
    return score.to_dict()


# -- search before create, and training ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchResult:
    decision: Decision
    model_version: int
    auto_link: float
    review: float
    scores: list[tuple[str, ClusterScore]]  # best first
    warnings: list[dict[str, str]]


async def search(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    attributes: Mapping[str, Any],
    limit: int = 10,
) -> SearchResult:
    """Rank the golden records an incoming record would be compared with; store nothing."""
    std = standardize_record(entity, attributes)
    if std.errors:
        raise ValidationFailed(
            "the record is invalid",
            [FieldProblem(f"$.attributes.{e.path}", e.message) for e in std.errors],
        )
    active = await rules.models.current(uow.matches, entity)
    f = features(active, entity, std.values)
    pool = await load_pool(uow.matches, entity, f.blocking)
    result = match(active, f, pool)
    ranked = sorted(result.scores.items(), key=lambda item: (-item[1].weight, item[0]))
    warnings = [{"path": w.path, "code": w.code, "message": w.message} for w in std.warnings]
    t = active.model.thresholds
    return SearchResult(
        result.decision, active.model.version, t.auto_link, t.review, ranked[:limit], warnings
    )


@dataclass(frozen=True, slots=True)
class Trained:
    entity: str
    version: int
    records: int
    prior: float


@dataclass(frozen=True, slots=True)
class Fitted:
    """A model fitted to the held records, not stored yet."""

    entity: str
    current: ActiveModel  # the model in force it started from
    model: MatchModel
    frequencies: dict[str, dict[str, int]]  # value counts of the sample
    records: int
    converged: bool

    def active(self) -> ActiveModel:
        return ActiveModel(self.model, CountedFrequencies(self.frequencies))


async def fit_model(
    uow: UnitOfWork, rules: MasteringRules, entity: str, *, sample: int = 200_000, seed: int = 0
) -> Fitted:
    """Fit m, u and the prior by EM on a sample of the held records (stores nothing).

    The value frequencies of the sample come with it for term-frequency
    adjustment. Unsupervised: no labels, only the records the hub holds.
    """
    active = await rules.models.current(uow.matches, entity)
    records = await uow.matches.sample_features(entity, sample, seed=0.5)
    if len(records) < 2:
        raise ValueError(f"only {len(records)} live {entity} record(s) to train on")
    # Fitted in this release's shape (new levels, identity rules), from the fit in force.
    start = upgraded(active.model, default_model(entity))
    model, report = train_with_report(start, records, seed=seed)
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        for name, value in term_values(model, record).items():
            bucket = counts.setdefault(name, {})
            bucket[value] = bucket.get(value, 0) + 1
    return Fitted(entity, active, model, counts, len(records), report.converged)


async def store_model(
    uow: UnitOfWork, fitted: Fitted, *, adopted: bool = True, adoption: dict[str, Any] | None = None
) -> int:
    """Store `fitted` as the next version (in force when `adopted`); the version."""
    # JSON builtins only (the EM works in numpy, whose floats the JSON encoder refuses).
    stored = msgspec.json.decode(msgspec.json.encode(fitted.model, enc_hook=float))
    return await uow.matches.add_model(
        fitted.entity,
        stored,
        fitted.frequencies,
        fitted.records,
        adopted=adopted,
        adoption=adoption,
    )


async def train_model(
    uow: UnitOfWork, rules: MasteringRules, entity: str, *, sample: int = 200_000, seed: int = 0
) -> Trained:
    """Fit the model (`fit_model`) and store it as the next version in force, unchecked
    (`mdm train` checks it first: mdm/services/adoption.py)."""
    fitted = await fit_model(uow, rules, entity, sample=sample, seed=seed)
    version = await store_model(uow, fitted)
    return Trained(entity, version, fitted.records, fitted.model.prior)
