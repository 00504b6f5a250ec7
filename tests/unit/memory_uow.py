"""A unit of work in memory: every port of mdm.domain.ports over plain dicts and lists.

The use-case tests (tests/unit/test_use_cases.py) run the services on it, with no
database and no NATS. Each store mirrors its PostgreSQL adapter (mdm/adapters/):
the same return shapes, the same orders where the SQL orders, JSONB columns
round-tripped through JSON as the engine's msgspec codec does, timestamps in UTC
as PostgreSQL answers a timestamptz, and the rows handed out are copies (a use
case mutating a GoldenRecord it read changes nothing until it saves it).

`MemoryUnits.transaction()` snapshots the state (a deep copy) and restores it when
the block raises, so a unit of work commits everything or nothing. Session locks
(re-matching runs) live outside the transactional state, as PostgreSQL's
session-level advisory locks outlive transactions.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

import msgspec

from mdm.domain.golden import GoldenRecord
from mdm.domain.relationships import Reference, TargetKey
from mdm.domain.sources import ENTITIES
from mdm.domain.stored import (
    UNDECIDED,
    Member,
    MemberRecord,
    ModelInfo,
    MovedRecord,
    PendingReference,
    Referrer,
    Related,
    ReviewFilter,
    ReviewSort,
    Run,
    SourceRecordWrite,
    StoredModel,
    StoredSourceRecord,
    StoredXref,
)
from mdm.domain.survivorship import NO_OVERRIDES, Contribution, Overrides, Pin
from schemas.events import Event, ReviewEvent

T = TypeVar("T")

NOT_NEEDED = "not needed by the use-case tests"

_encoder = msgspec.json.Encoder()


def jsonb(value: Any) -> Any:
    """`value` as a JSONB column gives it back (the engine's msgspec codec both ways)."""
    return msgspec.json.decode(_encoder.encode(value))


def _utc(at: dt.datetime | None) -> dt.datetime | None:
    return at.astimezone(dt.UTC) if at is not None else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class IntegrityError(Exception):
    """A constraint PostgreSQL would enforce (unique key, foreign key, check)."""


# -- the tables ---------------------------------------------------------------------


@dataclass(slots=True)
class SourceRow:
    id: int
    entity: str
    source: str
    source_id: str
    golden_id: str
    raw: Any
    standardized: Any
    warnings: Any
    content_hash: bytes
    version: int
    source_updated_at: dt.datetime | None
    received_at: dt.datetime
    link_rule: str
    match_features: Any = None
    link_weight: float | None = None
    link_probability: float | None = None
    link_model_version: int | None = None
    link_explanation: Any = None
    deleted_at: dt.datetime | None = None

    @property
    def live(self) -> bool:
        return self.deleted_at is None


@dataclass(slots=True)
class ModelRow:
    entity: str
    version: int
    model: Any
    term_frequencies: Any = field(default_factory=dict)
    trained_on: int | None = None
    adopted: bool = True
    adoption: Any = None
    created_at: dt.datetime = field(default_factory=_now)


@dataclass(slots=True)
class MemoryState:
    """The hub's tables, as dicts and lists. `outbox` holds the events themselves."""

    goldens: dict[str, GoldenRecord] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[int, SourceRow] = field(default_factory=dict)
    # (entity, key, source_record_id), the match_key table's primary key
    match_keys: set[tuple[str, str, int]] = field(default_factory=set)
    merge_events: list[dict[str, Any]] = field(default_factory=list)
    not_a_match: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    pins: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ignores: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    models: dict[tuple[str, int], ModelRow] = field(default_factory=dict)
    review_tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    review_decisions: list[dict[str, Any]] = field(default_factory=list)
    references: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    outbox: list[Event | ReviewEvent] = field(default_factory=list)
    # ingest_tally: (at, entity, source, outcome, records)
    tallies: list[tuple[dt.datetime, str, str, str, int]] = field(default_factory=list)
    # identity columns: the last id drawn per table; like a PostgreSQL sequence, not
    # rolled back with the transaction that drew it (an id is never used twice)
    sequences: dict[str, int] = field(default_factory=dict)

    def next_id(self, table: str) -> int:
        self.sequences[table] = self.sequences.get(table, 0) + 1
        return self.sequences[table]

    def snapshot(self) -> MemoryState:
        return copy.deepcopy(self)

    def restore(self, snapshot: MemoryState) -> None:
        """Back to `snapshot`: a rollback (the sequences keep what was drawn)."""
        for f in dataclasses.fields(self):
            if f.name != "sequences":
                setattr(self, f.name, getattr(snapshot, f.name))

    def check_foreign_keys(self) -> None:
        """The foreign keys PostgreSQL checks by commit (source_record.golden_id is
        deferred to it: a batch writes its records before their new golden records)."""
        goldens, sources = self.goldens, self.sources
        problems = [
            *(
                f"source_record {r.id} -> {r.golden_id}"
                for r in sources.values()
                if r.golden_id not in goldens
            ),
            *(
                f"golden_record {g.golden_id} merged into {g.merged_into}"
                for g in goldens.values()
                if g.merged_into is not None and g.merged_into not in goldens
            ),
            *(
                f"golden_reference of {r['golden_id']}"
                for r in self.references
                if r["golden_id"] not in goldens
            ),
            *(f"golden_pin of {g}" for g, _ in self.pins if g not in goldens),
            *(f"value_ignore of record {i}" for i, _ in self.ignores if i not in sources),
            *(
                f"not_a_match {a}, {b}"
                for a, b in self.not_a_match
                if a not in sources or b not in sources
            ),
            *(
                f"review_task {t['id']}"
                for t in self.review_tasks.values()
                if t["record_id"] not in sources
            ),
        ]
        if problems:
            raise IntegrityError("foreign key violations at commit: " + "; ".join(problems))

    # -- helpers shared by the stores

    def live_rows(self) -> list[SourceRow]:
        return [r for r in self.sorted_rows() if r.live]

    def sorted_rows(self) -> list[SourceRow]:
        return [self.sources[i] for i in sorted(self.sources)]


@dataclass(slots=True)
class SessionLocks:
    """Session-level advisory locks: (lock class, entity) pairs some session holds."""

    held: set[tuple[int, str]] = field(default_factory=set)


#: The first half of a run's lock (mdm/adapters/rematch.py's _LOCK_CLASS).
RUN_LOCK_CLASS = 0x4D444D52


# -- Records -------------------------------------------------------------------------


def _golden_copy(g: GoldenRecord) -> GoldenRecord:
    return GoldenRecord(
        golden_id=g.golden_id,
        entity=g.entity,
        status=g.status,
        version=g.version,
        attributes=jsonb(g.attributes),
        provenance=jsonb(g.provenance),
        created_at=g.created_at,
        updated_at=g.updated_at,
        merged_into=g.merged_into,
    )


class MemoryRecords:
    """mdm.adapters.repository.Repository."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    async def source_records(
        self, entity: str, source: str, source_ids: Sequence[str]
    ) -> dict[str, StoredSourceRecord]:
        wanted = set(source_ids)
        return {
            r.source_id: StoredSourceRecord(
                r.id, r.source_id, r.golden_id, r.content_hash, r.version, r.deleted_at
            )
            for r in self.s.sorted_rows()
            if r.entity == entity and r.source == source and r.source_id in wanted
        }

    async def key_owners(self, entity: str, keys: Sequence[str]) -> dict[str, set[str]]:
        if not keys:
            return {}
        wanted = set(keys)
        owners: dict[str, set[str]] = defaultdict(set)
        for e, key, record_id in sorted(self.s.match_keys):
            row = self.s.sources.get(record_id)
            if e == entity and key in wanted and row is not None and row.live:
                owners[key].add(row.golden_id)
        return owners

    async def write_source_records(self, writes: Sequence[SourceRecordWrite]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for w in writes:
            if w.id is not None:
                continue
            if any(
                (r.entity, r.source, r.source_id) == (w.entity, w.source, w.source_id)
                for r in self.s.sources.values()
            ):
                raise IntegrityError(f"source_record {w.source}:{w.source_id} exists")
            record_id = self.s.next_id("source_record")
            self.s.sources[record_id] = SourceRow(
                id=record_id,
                entity=w.entity,
                source=w.source,
                source_id=w.source_id,
                golden_id=w.golden_id,
                raw=jsonb(w.raw),
                standardized=jsonb(w.standardized),
                warnings=jsonb(w.warnings),
                content_hash=w.content_hash,
                version=w.version,
                source_updated_at=_utc(w.source_updated_at),
                received_at=_utc(w.received_at) or w.received_at,
                link_rule=w.link_rule,
                match_features=jsonb(w.match_features),
                link_weight=w.link_weight,
                link_probability=w.link_probability,
                link_model_version=w.link_model_version,
                link_explanation=jsonb(w.link_explanation),
            )
            ids[w.source_id] = record_id
        for w in writes:
            if w.id is None:
                continue
            row = self.s.sources.get(w.id)
            if row is not None:  # UPDATE ... WHERE id = :id
                row.golden_id = w.golden_id
                row.raw = jsonb(w.raw)
                row.standardized = jsonb(w.standardized)
                row.warnings = jsonb(w.warnings)
                row.content_hash = w.content_hash
                row.version = w.version
                row.source_updated_at = _utc(w.source_updated_at)
                row.received_at = _utc(w.received_at) or w.received_at
                row.link_rule = w.link_rule
                row.match_features = jsonb(w.match_features)
                # coalesce: an update that keeps its link passes None and keeps the stored one
                if w.link_weight is not None:
                    row.link_weight = w.link_weight
                if w.link_probability is not None:
                    row.link_probability = w.link_probability
                if w.link_model_version is not None:
                    row.link_model_version = w.link_model_version
                if w.link_explanation is not None:
                    row.link_explanation = jsonb(w.link_explanation)
                row.deleted_at = None
            ids[w.source_id] = w.id
        return ids

    async def mark_deleted(self, record_id: int, at: dt.datetime) -> None:
        row = self.s.sources.get(record_id)
        if row is not None:
            row.deleted_at = _utc(at)
            row.version += 1
        self.s.match_keys = {k for k in self.s.match_keys if k[2] != record_id}

    async def replace_match_keys(
        self, entity: str, keys_by_record: dict[int, list[str]], new: Collection[int] = ()
    ) -> None:
        if not keys_by_record:
            return
        known = {r for r in keys_by_record if r not in new}
        if known:
            self.s.match_keys = {k for k in self.s.match_keys if k[2] not in known}
        for record_id, keys in keys_by_record.items():
            for key in keys:
                row = (entity, key, record_id)
                if row in self.s.match_keys:
                    raise IntegrityError(f"match_key {row} exists")
                self.s.match_keys.add(row)

    async def contributions(self, golden_ids: Sequence[str]) -> dict[str, list[Contribution]]:
        if not golden_ids:
            return {}
        out: dict[str, list[Contribution]] = {g: [] for g in golden_ids}
        for r in self.s.live_rows():
            if r.golden_id in out:
                out[r.golden_id].append(
                    Contribution(
                        r.id,
                        r.source,
                        r.source_id,
                        jsonb(r.standardized),
                        r.source_updated_at,
                        r.received_at,
                    )
                )
        return out

    async def lock_goldens(self, golden_ids: Sequence[str]) -> dict[str, GoldenRecord]:
        return {
            g: _golden_copy(self.s.goldens[g])
            for g in sorted(set(golden_ids))
            if g in self.s.goldens
        }

    async def golden_versions(self, golden_ids: Sequence[str]) -> dict[str, int]:
        return {g: self.s.goldens[g].version for g in golden_ids if g in self.s.goldens}

    async def save_goldens(
        self, goldens: Sequence[GoldenRecord], history: Sequence[dict[str, Any]], at: dt.datetime
    ) -> None:
        if not goldens:
            return
        at = _utc(at) or at
        for g in goldens:
            if (g.status == "merged") != (g.merged_into is not None):
                raise IntegrityError(f"golden_record {g.golden_id}: status and merged_into")
            if g.version == 1:
                if g.golden_id in self.s.goldens:
                    raise IntegrityError(f"golden_record {g.golden_id} exists")
                stored = _golden_copy(g)
                stored.merged_into = None  # the INSERT leaves it NULL ...
                if stored.status == "merged":  # ... which the check constraint refuses
                    raise IntegrityError(f"golden_record {g.golden_id}: status and merged_into")
                stored.created_at = stored.updated_at = at
                self.s.goldens[g.golden_id] = stored
        for g in goldens:
            if g.version > 1 and g.golden_id in self.s.goldens:
                row = self.s.goldens[g.golden_id]
                row.status = g.status
                row.merged_into = g.merged_into
                row.version = g.version
                row.attributes = jsonb(g.attributes)
                row.provenance = jsonb(g.provenance)
                row.updated_at = at
        for h in history:
            if h["golden_id"] not in self.s.goldens:
                raise IntegrityError(f"history of unknown golden record {h['golden_id']}")
            if any(
                (x["golden_id"], x["version"]) == (h["golden_id"], h["version"])
                for x in self.s.history
            ):
                raise IntegrityError(f"history {h['golden_id']} v{h['version']} exists")
            version_row = dict(h)
            for column in ("attributes", "provenance", "xrefs", "changed", "cause"):
                version_row[column] = jsonb(version_row[column])
            version_row["changed_at"] = _utc(version_row.get("changed_at")) or _now()
            self.s.history.append(version_row)

    async def golden(self, golden_id: str) -> GoldenRecord | None:
        found = self.s.goldens.get(golden_id)
        return _golden_copy(found) if found is not None else None

    async def history(
        self,
        golden_id: str,
        limit: int,
        before_version: int | None = None,
        as_of: dt.datetime | None = None,
    ) -> list[Any]:
        """Rows with attribute access, as SQLAlchemy's rows have, newest first."""
        rows = [
            h
            for h in self.s.history
            if h["golden_id"] == golden_id
            and (before_version is None or h["version"] < before_version)
            and (as_of is None or h["changed_at"] <= as_of)
        ]
        rows.sort(key=lambda h: h["version"], reverse=True)
        return [SimpleNamespace(**copy.deepcopy(h)) for h in rows[:limit]]

    async def xrefs(self, golden_ids: Sequence[str]) -> dict[str, list[StoredXref]]:
        out: dict[str, list[StoredXref]] = {g: [] for g in golden_ids}
        rows = sorted(
            (r for r in self.s.live_rows() if r.golden_id in out),
            key=lambda r: (r.source, r.source_id),
        )
        for r in rows:
            out[r.golden_id].append(StoredXref(r.source, r.source_id, r.received_at))
        return out

    async def golden_ids_for(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], str]:
        wanted = set(keys)
        return {
            (r.entity, r.source, r.source_id): r.golden_id
            for r in self.s.live_rows()
            if (r.entity, r.source, r.source_id) in wanted
        }

    async def goldens_status(self, golden_ids: Sequence[str]) -> dict[str, str]:
        return {g: self.s.goldens[g].status for g in golden_ids if g in self.s.goldens}

    async def claim_idempotency_key(
        self, scope: str, key: str, request_hash: bytes
    ) -> tuple[bytes, int | None, bytes | None] | None:
        found = self.s.idempotency.get((scope, key))
        if found is None:
            self.s.idempotency[(scope, key)] = {
                "request_hash": request_hash,
                "status_code": None,
                "response": None,
            }
            return None
        return found["request_hash"], found["status_code"], found["response"]

    async def store_idempotent_response(
        self, scope: str, key: str, status_code: int, response: bytes
    ) -> None:
        found = self.s.idempotency.get((scope, key))
        if found is not None:
            found["status_code"], found["response"] = status_code, response

    async def release_idempotency_key(self, scope: str, key: str) -> None:
        self.s.idempotency.pop((scope, key), None)


# -- MatchIndex ----------------------------------------------------------------------


def _live_records(s: MemoryState, entity: str, received_after: dt.datetime | None) -> int:
    return sum(
        1
        for r in s.live_rows()
        if r.entity == entity and (received_after is None or r.received_at > received_after)
    )


class MemoryMatchIndex:
    """mdm.adapters.matching.MatchStore."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def _models(self, entity: str) -> list[ModelRow]:
        return sorted(
            (m for m in self.s.models.values() if m.entity == entity), key=lambda m: m.version
        )

    async def current_version(self, entity: str) -> int | None:
        adopted = [m.version for m in self._models(entity) if m.adopted]
        return max(adopted) if adopted else None

    async def live_records(self, entity: str, received_after: dt.datetime | None = None) -> int:
        return _live_records(self.s, entity, received_after)

    async def model(self, entity: str, version: int | None = None) -> StoredModel | None:
        if version is None:
            adopted = [m for m in self._models(entity) if m.adopted]
            row = adopted[-1] if adopted else None
        else:
            row = self.s.models.get((entity, version))
        if row is None:
            return None
        return StoredModel(row.entity, row.version, jsonb(row.model), jsonb(row.term_frequencies))

    async def ensure_model(self, entity: str, version: int, model: dict[str, Any]) -> None:
        if (entity, version) not in self.s.models:
            self.s.models[(entity, version)] = ModelRow(entity, version, jsonb(model))

    async def add_model(
        self,
        entity: str,
        model: dict[str, Any],
        term_frequencies: dict[str, Any],
        trained_on: int,
        *,
        adopted: bool = True,
        adoption: dict[str, Any] | None = None,
    ) -> int:
        versions = [m.version for m in self._models(entity)]
        version = (max(versions) if versions else 0) + 1
        self.s.models[(entity, version)] = ModelRow(
            entity,
            version,
            jsonb({**model, "version": version}),
            jsonb(term_frequencies),
            trained_on,
            adopted,
            jsonb(adoption),
        )
        return version

    async def newest_fit(self, entity: str) -> dt.datetime | None:
        models = self._models(entity)
        if not models:
            return None
        newest = models[-1]
        return newest.created_at if newest.trained_on is not None else None

    async def adoption(self, entity: str, version: int) -> tuple[bool, dict[str, Any] | None]:
        row = self.s.models[(entity, version)]  # .one(): raises when there is none
        return bool(row.adopted), jsonb(row.adoption)

    async def candidate_owners(
        self, entity: str, keys: Sequence[str], cap: int
    ) -> tuple[dict[str, set[str]], set[str]]:
        if not keys:
            return {}, set()
        by_key: dict[str, list[str]] = {}
        for key in sorted(set(keys)):
            found = [
                row.golden_id
                for e, k, record_id in sorted(self.s.match_keys, key=lambda x: x[2])
                if e == entity
                and k == key
                and (row := self.s.sources.get(record_id)) is not None
                and row.live
            ][: cap + 1]  # LIMIT cap + 1 per key
            if found:
                by_key[key] = found
        generic = {k for k, found in by_key.items() if len(found) > cap}
        owners = {k: set(found) for k, found in by_key.items() if k not in generic}
        return owners, generic

    async def members(self, golden_ids: Iterable[str]) -> dict[str, list[Member]]:
        ids = set(golden_ids)
        if not ids:
            return {}
        out: dict[str, list[Member]] = {}
        for r in self.s.live_rows():
            # jsonb_typeof(match_features) = 'object': a registered xref has none
            if r.golden_id in ids and isinstance(r.match_features, dict):
                out.setdefault(r.golden_id, []).append(
                    Member(r.id, r.golden_id, r.source, r.source_id, jsonb(r.match_features))
                )
        return out

    async def sample_features(self, entity: str, limit: int, seed: float) -> list[dict[str, Any]]:
        return [m.features for m in await self.sample_members(entity, limit, seed)]

    async def sample_members(self, entity: str, limit: int, seed: float) -> list[Member]:
        def draw(r: SourceRow) -> tuple[str, str, str]:
            digest = hashlib.md5(f"{seed!r}/{r.source}/{r.source_id}".encode()).hexdigest()
            return digest, r.source, r.source_id

        rows = sorted(
            (
                r
                for r in self.s.live_rows()
                if r.entity == entity and isinstance(r.match_features, dict)
            ),
            key=draw,
        )[:limit]
        return [
            Member(r.id, r.golden_id, r.source, r.source_id, jsonb(r.match_features)) for r in rows
        ]

    async def links(self, golden_id: str) -> list[dict[str, Any]]:
        return [
            {
                "source": r.source,
                "source_id": r.source_id,
                "link_rule": r.link_rule,
                "link_weight": r.link_weight,
                "link_probability": r.link_probability,
                "link_model_version": r.link_model_version,
                "link_explanation": jsonb(r.link_explanation),
                "received_at": r.received_at,
            }
            for r in self.s.live_rows()
            if r.golden_id == golden_id
        ]

    async def add_review_tasks(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        ids = []
        for row in rows:
            if row["record_id"] not in self.s.sources:
                raise IntegrityError(f"review_task of unknown record {row['record_id']}")
            task_id = self.s.next_id("review_task")
            self.s.review_tasks[task_id] = {
                "status": "open",
                "created_at": _now(),
                "decided_at": None,
                "decided_by": None,
                "comment": None,
                "assigned_to": None,
                "assigned_at": None,
                **row,
                "explanation": jsonb(row["explanation"]),
                "id": task_id,
            }
            ids.append(task_id)
        return ids


# -- Merges --------------------------------------------------------------------------


class MemoryMerges:
    """mdm.adapters.merges.MergeStore."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    async def move_all(self, from_goldens: Sequence[str], to_golden: str) -> list[MovedRecord]:
        losers = set(from_goldens)
        moved = []
        for r in self.s.sorted_rows():
            if r.golden_id in losers:
                moved.append(MovedRecord(r.id, r.source, r.source_id, r.golden_id, not r.live))
                r.golden_id = to_golden
        return moved

    async def repoint_redirects(self, from_goldens: Sequence[str], to_golden: str) -> None:
        losers = set(from_goldens)
        for g in self.s.goldens.values():
            if g.merged_into in losers:
                g.merged_into = to_golden

    async def members(self, golden_id: str) -> list[MemberRecord]:
        return [
            MemberRecord(r.id, r.source, r.source_id, not r.live)
            for r in self.s.sorted_rows()
            if r.golden_id == golden_id
        ]

    async def move(self, record_ids: Sequence[int], to_golden: str) -> None:
        for record_id in record_ids:
            if record_id in self.s.sources:
                self.s.sources[record_id].golden_id = to_golden

    async def record_merge(
        self,
        entity: str,
        survivor: str,
        losers: Sequence[str],
        moved: Sequence[MovedRecord],
        actor: str,
        reason: str | None,
        at: dt.datetime,
    ) -> int:
        if survivor not in self.s.goldens:
            raise IntegrityError(f"merge_event of unknown survivor {survivor}")
        merge_id = self.s.next_id("merge_event")
        self.s.merge_events.append(
            {
                "id": merge_id,
                "entity": entity,
                "survivor_id": survivor,
                "loser_ids": list(losers),
                "moved": [{"record_id": m.record_id, "from": m.from_golden} for m in moved],
                "actor": actor,
                "reason": reason,
                "created_at": _utc(at),
            }
        )
        return merge_id

    async def origins(self, golden_id: str, record_ids: Iterable[int]) -> dict[int, str]:
        wanted = set(record_ids)
        found: dict[int, str] = {}
        events = [e for e in self.s.merge_events if e["survivor_id"] == golden_id]
        for event in sorted(events, key=lambda e: e["id"], reverse=True):
            for item in event["moved"]:
                record_id = int(item["record_id"])
                if record_id in wanted and record_id not in found:
                    found[record_id] = item["from"]
        return found

    async def add_not_a_match(
        self, pairs: Iterable[tuple[int, int]], actor: str, reason: str | None, at: dt.datetime
    ) -> None:
        for a, b in pairs:
            if a == b:
                continue
            key = (min(a, b), max(a, b))
            self.s.not_a_match.setdefault(  # ON CONFLICT DO NOTHING
                key,
                {
                    "record_a": key[0],
                    "record_b": key[1],
                    "actor": actor,
                    "reason": reason,
                    "created_at": _utc(at),
                },
            )

    async def clear_not_a_match(self, left: Sequence[int], right: Sequence[int]) -> int:
        pairs = {(min(a, b), max(a, b)) for a in left for b in right if a != b}
        gone = [p for p in pairs if p in self.s.not_a_match]
        for p in gone:
            del self.s.not_a_match[p]
        return len(gone)

    async def not_a_match_pairs(self, record_ids: Sequence[int]) -> set[tuple[int, int]]:
        ids = set(record_ids)
        return {(a, b) for a, b in self.s.not_a_match if a in ids or b in ids}

    def _golden_pairs(self) -> list[tuple[str, str]]:
        out = []
        for a, b in self.s.not_a_match:
            ra, rb = self.s.sources.get(a), self.s.sources.get(b)
            if ra is not None and rb is not None:
                out.append((ra.golden_id, rb.golden_id))
        return out

    async def apart_pairs(self, golden_ids: Sequence[str]) -> set[frozenset[str]]:
        ids = set(golden_ids)
        return {
            frozenset((a, b)) for a, b in self._golden_pairs() if (a in ids or b in ids) and a != b
        }

    async def apart(self, golden_a: str, golden_b: str) -> bool:
        return any(
            (a, b) in ((golden_a, golden_b), (golden_b, golden_a)) for a, b in self._golden_pairs()
        )


# -- OverrideStore -------------------------------------------------------------------


class MemoryOverrides:
    """mdm.adapters.overrides.OverrideStore."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    async def overrides(self, golden_ids: Sequence[str]) -> dict[str, Overrides]:
        if not golden_ids:
            return {}
        ids = list(golden_ids)
        wanted = set(ids)
        pins: dict[str, dict[str, Pin]] = {}
        for (golden_id, attribute), row in self.s.pins.items():
            if golden_id in wanted:
                pins.setdefault(golden_id, {})[attribute] = Pin(
                    jsonb(row["value"]), row["actor"], row["reason"] or ""
                )
        ignores: dict[str, set[tuple[str, str, str]]] = {}
        for (record_id, attribute), _ in self.s.ignores.items():
            r = self.s.sources.get(record_id)
            if r is not None and r.golden_id in wanted and r.live:
                ignores.setdefault(r.golden_id, set()).add((attribute, r.source, r.source_id))
        out: dict[str, Overrides] = {}
        for golden_id in ids:
            p, i = pins.get(golden_id), ignores.get(golden_id)
            out[golden_id] = Overrides(p or {}, frozenset(i or ())) if p or i else NO_OVERRIDES
        return out

    async def pins(self, golden_id: str) -> list[dict[str, Any]]:
        rows = [
            {k: jsonb(v) if k == "value" else v for k, v in row.items() if k != "golden_id"}
            for (g, _), row in self.s.pins.items()
            if g == golden_id
        ]
        return sorted(rows, key=lambda r: r["attribute"])

    async def ignores(self, golden_id: str) -> list[dict[str, Any]]:
        rows = []
        for (record_id, attribute), row in self.s.ignores.items():
            r = self.s.sources.get(record_id)
            if r is not None and r.golden_id == golden_id:
                rows.append(
                    {
                        "attribute": attribute,
                        "source": r.source,
                        "source_id": r.source_id,
                        "actor": row["actor"],
                        "reason": row["reason"],
                        "created_at": row["created_at"],
                    }
                )
        return sorted(rows, key=lambda r: (r["attribute"], r["source"], r["source_id"]))

    async def set_pin(
        self,
        golden_id: str,
        attribute: str,
        value: Any,
        actor: str,
        reason: str | None,
        at: dt.datetime,
    ) -> None:
        if golden_id not in self.s.goldens:
            raise IntegrityError(f"pin of unknown golden record {golden_id}")
        self.s.pins[(golden_id, attribute)] = {  # ON CONFLICT DO UPDATE
            "golden_id": golden_id,
            "attribute": attribute,
            "value": jsonb(value),
            "actor": actor,
            "reason": reason,
            "inherited_from": None,
            "created_at": _utc(at),
        }

    async def delete_pin(self, golden_id: str, attribute: str) -> bool:
        return self.s.pins.pop((golden_id, attribute), None) is not None

    async def set_ignore(
        self, record_id: int, attribute: str, actor: str, reason: str | None, at: dt.datetime
    ) -> None:
        if record_id not in self.s.sources:
            raise IntegrityError(f"ignore of unknown record {record_id}")
        self.s.ignores[(record_id, attribute)] = {
            "record_id": record_id,
            "attribute": attribute,
            "actor": actor,
            "reason": reason,
            "created_at": _utc(at),
        }

    async def delete_ignore(self, record_id: int, attribute: str) -> bool:
        return self.s.ignores.pop((record_id, attribute), None) is not None

    async def inherit_pins(self, losers: Sequence[str], survivor: str) -> None:
        wanted = set(losers)
        rows = sorted(
            (row for (g, _), row in self.s.pins.items() if g in wanted),
            key=lambda row: row["golden_id"],
        )
        for row in rows:
            key = (survivor, row["attribute"])
            if key not in self.s.pins:  # ON CONFLICT DO NOTHING
                self.s.pins[key] = {
                    **row,
                    "golden_id": survivor,
                    "inherited_from": row["golden_id"],
                }

    async def drop_inherited(self, golden_id: str, from_golden: str) -> None:
        for key in [
            k
            for k, row in self.s.pins.items()
            if k[0] == golden_id and row["inherited_from"] == from_golden
        ]:
            del self.s.pins[key]


# -- References ----------------------------------------------------------------------


class MemoryReferences:
    """mdm.adapters.relationships.RelationshipStore."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    async def lookup(self, keys: Iterable[TargetKey], lock: bool = False) -> dict[TargetKey, str]:
        wanted = set(keys)
        if not wanted:
            return {}
        return {
            (r.entity, r.source, r.source_id): r.golden_id
            for r in self.s.live_rows()
            if (r.entity, r.source, r.source_id) in wanted
        }

    async def current_ids(self, golden_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        out = {}
        for golden_id in sorted(set(golden_ids)):
            g = self.s.goldens.get(golden_id)
            if g is not None:
                out[golden_id] = (g.entity, g.merged_into or g.golden_id)
        return out

    async def replace(
        self,
        golden_ids: Sequence[str],
        references: Mapping[str, Mapping[str, Reference]],
        at: dt.datetime,
        created: Collection[str] = (),
    ) -> None:
        if not golden_ids:
            return
        stored = {g for g in golden_ids if g not in created}
        self.s.references = [r for r in self.s.references if r["golden_id"] not in stored]
        for golden_id in golden_ids:
            for r in references.get(golden_id, {}).values():
                if any(
                    (x["golden_id"], x["field"]) == (golden_id, r.field) for x in self.s.references
                ):
                    raise IntegrityError(f"golden_reference {golden_id}.{r.field} exists")
                self.s.references.append(
                    {
                        "golden_id": golden_id,
                        "field": r.field,
                        "target_entity": r.entity,
                        "source": r.source,
                        "source_id": r.source_id,
                        "target_golden_id": r.golden_id,
                        "updated_at": _utc(at),
                    }
                )

    async def referrers(
        self, keys: Iterable[TargetKey], golden_ids: Iterable[str]
    ) -> list[Referrer]:
        wanted, targets = set(keys), set(golden_ids)
        if not wanted and not targets:
            return []
        found = []
        for r in self.s.references:
            g = self.s.goldens.get(r["golden_id"])
            if g is None or g.status != "active":
                continue
            key = (r["target_entity"], r["source"], r["source_id"])
            if key in wanted or r["target_golden_id"] in targets:
                found.append((g.golden_id, r["field"], g.entity, key, r["target_golden_id"]))
        found.sort(key=lambda x: (x[0], x[1]))
        return [Referrer(g, entity, key, target) for g, _, entity, key, target in found]

    def _edges(self, field_name: str) -> dict[str, list[str]]:
        edges: dict[str, list[str]] = {}
        for r in self.s.references:
            if r["field"] == field_name and r["target_golden_id"] is not None:
                edges.setdefault(r["golden_id"], []).append(r["target_golden_id"])
        return edges

    async def in_cycles(self, field: str, golden_ids: Sequence[str]) -> list[str]:
        """Those of `golden_ids` reachable from themselves along `field` (the SQL's walk)."""
        edges = self._edges(field)
        looping = set()
        for start in set(golden_ids):
            seen: set[str] = set()
            frontier = list(edges.get(start, []))
            while frontier:
                at = frontier.pop()
                if at == start:
                    looping.add(start)
                    break
                if at in seen:
                    continue
                seen.add(at)
                frontier.extend(edges.get(at, []))
        return sorted(looping)

    async def pending(
        self, entity: str | None, limit: int, offset: int
    ) -> tuple[list[PendingReference], int]:
        found = []
        for r in self.s.references:
            g = self.s.goldens.get(r["golden_id"])
            if (
                r["target_golden_id"] is None
                and g is not None
                and g.status == "active"
                and (entity is None or r["target_entity"] == entity)
            ):
                found.append(
                    PendingReference(
                        r["golden_id"],
                        g.entity,
                        r["field"],
                        r["target_entity"],
                        r["source"],
                        r["source_id"],
                        r["updated_at"],
                    )
                )
        found.sort(key=lambda p: (p.since, p.golden_id, p.field))
        return found[offset : offset + limit], len(found)

    async def related(
        self, golden_id: str, field: str, direction: str, depth: int, limit: int = 10000
    ) -> list[Related]:
        raise NotImplementedError(NOT_NEEDED)


# -- Reviews -------------------------------------------------------------------------

_TASK_COLUMNS = (
    "id",
    "entity",
    "source",
    "source_id",
    "record_id",
    "golden_id",
    "candidate_id",
    "reason",
    "weight",
    "probability",
    "model_version",
    "explanation",
    "status",
    "created_at",
    "assigned_to",
    "assigned_at",
    "decided_at",
    "decided_by",
    "comment",
)


class MemoryReviews:
    """mdm.adapters.reviews.ReviewStore."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def _row(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task joined with its source record, as the SQL's _columns()."""
        record = self.s.sources[task["record_id"]]
        joined = {**task, "source": record.source, "source_id": record.source_id}
        return {c: copy.deepcopy(joined[c]) for c in _TASK_COLUMNS}

    def _sorted_tasks(self) -> list[dict[str, Any]]:
        return [self.s.review_tasks[i] for i in sorted(self.s.review_tasks)]

    async def tasks(
        self, f: ReviewFilter, sort: ReviewSort, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        def keep(t: dict[str, Any]) -> bool:
            return (
                (f.entity is None or t["entity"] == f.entity)
                and (not f.statuses or t["status"] in f.statuses)
                and (f.min_probability is None or t["probability"] >= f.min_probability)
                and (f.max_probability is None or t["probability"] <= f.max_probability)
                and (f.created_before is None or t["created_at"] <= f.created_before)
                and (f.created_after is None or t["created_at"] >= f.created_after)
                and (
                    f.assignee is None
                    or (
                        t["assigned_to"] is None
                        if f.assignee == ""
                        else t["assigned_to"] == f.assignee
                    )
                )
                and (f.golden_id is None or f.golden_id in (t["golden_id"], t["candidate_id"]))
            )

        found = [t for t in self._sorted_tasks() if keep(t)]
        orders: dict[str, Callable[[dict[str, Any]], Any]] = {
            "created_at": lambda t: (t["created_at"], t["id"]),
            "probability": lambda t: (t["probability"], t["id"]),
            "-probability": lambda t: (-t["probability"], t["id"]),
            "id": lambda t: t["id"],
        }
        if sort == "-created_at":
            found.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
        elif sort == "-id":
            found.sort(key=lambda t: t["id"], reverse=True)
        else:
            found.sort(key=orders[sort])
        return [self._row(t) for t in found[offset : offset + limit]], len(found)

    async def task(self, task_id: int, *, lock: bool = False) -> dict[str, Any] | None:
        t = self.s.review_tasks.get(task_id)
        return self._row(t) if t is not None else None

    async def assign(self, task_id: int, assignee: str | None, at: dt.datetime) -> None:
        t = self.s.review_tasks.get(task_id)
        if t is not None:
            t["assigned_to"], t["assigned_at"] = assignee, _utc(at) if assignee else None

    async def set_status(
        self, task_ids: Sequence[int], status: str, actor: str, comment: str | None, at: dt.datetime
    ) -> None:
        for task_id in task_ids:
            t = self.s.review_tasks.get(task_id)
            if t is not None:
                t.update(status=status, decided_at=_utc(at), decided_by=actor, comment=comment)

    async def undecided_between(self, a: str, b: str, exclude: int) -> list[dict[str, Any]]:
        return [
            self._row(t)
            for t in self._sorted_tasks()
            if t["id"] != exclude
            and t["status"] in UNDECIDED
            and (t["golden_id"], t["candidate_id"]) in ((a, b), (b, a))
        ]

    async def undecided_within(self, golden_ids: Sequence[str]) -> list[dict[str, Any]]:
        ids = set(golden_ids)
        if len(ids) < 2:
            return []
        return [
            self._row(t)
            for t in self._sorted_tasks()
            if t["status"] in UNDECIDED and t["golden_id"] in ids and t["candidate_id"] in ids
        ]

    async def undecided_pairs(self, golden_ids: Sequence[str]) -> set[frozenset[str]]:
        ids = set(golden_ids)
        return {
            frozenset((t["golden_id"], t["candidate_id"]))
            for t in self._sorted_tasks()
            if t["status"] in UNDECIDED and (t["golden_id"] in ids or t["candidate_id"] in ids)
        }

    async def add_decision(self, row: dict[str, Any]) -> int:
        if row["task_id"] not in self.s.review_tasks:
            raise IntegrityError(f"decision on unknown task {row['task_id']}")
        decision_id = self.s.next_id("review_decision")
        self.s.review_decisions.append(
            {
                "outcome": {},
                "created_at": _now(),
                "comment": None,
                **copy.deepcopy(row),
                "id": decision_id,
            }
        )
        return decision_id

    async def decision_count(self, task_id: int) -> int:
        return sum(1 for d in self.s.review_decisions if d["task_id"] == task_id)

    async def decisions(
        self, *, task_id: int | None = None, golden_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        found = [
            copy.deepcopy(d)
            for d in self.s.review_decisions
            if (task_id is None or d["task_id"] == task_id)
            and (golden_id is None or golden_id in (d["golden_id"], d["candidate_id"]))
        ]
        found.sort(key=lambda d: d["id"], reverse=True)
        return found[:limit]

    async def records(self, golden_id: str) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "source": r.source,
                "source_id": r.source_id,
                "standardized": jsonb(r.standardized),
            }
            for r in self.s.live_rows()
            if r.golden_id == golden_id
        ]


# -- RematchRuns ---------------------------------------------------------------------


class MemoryRuns:
    """mdm.adapters.rematch.RematchStore; its session locks in `locks`."""

    def __init__(self, state: MemoryState, locks: SessionLocks) -> None:
        self.s = state
        self.locks = locks

    async def try_lock(self, entity: str) -> bool:
        ENTITIES.index(entity)  # the SQL's lock key: raises for an unknown entity
        if (RUN_LOCK_CLASS, entity) in self.locks.held:
            return False
        self.locks.held.add((RUN_LOCK_CLASS, entity))
        return True

    async def unlock(self, entity: str) -> None:
        self.locks.held.discard((RUN_LOCK_CLASS, entity))

    async def locked(self, entity: str, lock_class: int | None = None) -> bool:
        return (RUN_LOCK_CLASS if lock_class is None else lock_class, entity) in self.locks.held

    def _runs(self, entity: str) -> list[dict[str, Any]]:
        return [r for _, r in sorted(self.s.runs.items()) if r["entity"] == entity]

    async def latest(self, entity: str) -> Run | None:
        runs = self._runs(entity)
        return Run(**runs[-1]) if runs else None

    async def latest_finished(self, entity: str) -> Run | None:
        runs = [r for r in self._runs(entity) if r["status"] == "finished"]
        return Run(**runs[-1]) if runs else None

    async def start(self, entity: str, model_version: int, total: int) -> Run:
        run_id = self.s.next_id("rematch_run")
        now = _now()
        self.s.runs[run_id] = {
            "id": run_id,
            "entity": entity,
            "model_version": model_version,
            "status": "running",
            "cursor": None,
            "done": 0,
            "total": total,
            "merged": 0,
            "reviews": 0,
            "withdrawn": 0,
            "started_at": now,
            "updated_at": now,
            "finished_at": None,
        }
        return Run(**self.s.runs[run_id])

    async def abandon(self, run_id: int) -> None:
        if run_id in self.s.runs:
            self.s.runs[run_id].update(status="abandoned", updated_at=_now())

    async def advance(
        self, run_id: int, cursor: str, done: int, merged: int, reviews: int, withdrawn: int = 0
    ) -> None:
        r = self.s.runs.get(run_id)
        if r is not None:
            r["cursor"] = cursor
            r["done"] += done
            r["merged"] += merged
            r["reviews"] += reviews
            r["withdrawn"] += withdrawn
            r["updated_at"] = _now()

    async def finish(self, run_id: int) -> None:
        r = self.s.runs.get(run_id)
        if r is not None:
            now = _now()
            r.update(status="finished", done=r["total"], finished_at=now, updated_at=now)

    async def count_active(self, entity: str) -> int:
        return sum(
            1 for g in self.s.goldens.values() if g.entity == entity and g.status == "active"
        )

    async def next_goldens(self, entity: str, after: str | None, limit: int) -> list[str]:
        return sorted(
            g.golden_id
            for g in self.s.goldens.values()
            if g.entity == entity
            and g.status == "active"
            and (after is None or g.golden_id > after)
        )[:limit]

    async def keys(self, golden_ids: Sequence[str]) -> dict[str, list[str]]:
        wanted = set(golden_ids)
        out: dict[str, set[str]] = {}
        for _, key, record_id in self.s.match_keys:
            r = self.s.sources.get(record_id)
            if r is not None and r.live and r.golden_id in wanted:
                out.setdefault(r.golden_id, set()).add(key)
        return {g: sorted(keys) for g, keys in out.items()}

    async def active_among(self, golden_ids: Sequence[str]) -> set[str]:
        return {
            g for g in golden_ids if g in self.s.goldens and self.s.goldens[g].status == "active"
        }

    async def model_info(self, entity: str) -> ModelInfo | None:
        adopted = sorted(
            (m for m in self.s.models.values() if m.entity == entity and m.adopted),
            key=lambda m: m.version,
        )
        if not adopted:
            return None
        m = adopted[-1]
        return ModelInfo(m.version, m.created_at, m.trained_on)

    async def live_records(self, entity: str, received_after: dt.datetime | None = None) -> int:
        return _live_records(self.s, entity, received_after)

    async def any_before(self, entity: str, at: dt.datetime) -> bool:
        return any(r.entity == entity and r.received_at < at for r in self.s.live_rows())


# -- Outbox --------------------------------------------------------------------------


class MemoryOutbox:
    """The Outbox port: the events, in the order appended, in `MemoryState.outbox`."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    async def append(self, events: Sequence[Event | ReviewEvent]) -> None:
        known = {e.event_id for e in self.s.outbox}
        for event in events:
            if event.event_id in known:  # outbox.event_id is UNIQUE
                raise IntegrityError(f"event {event.event_id} exists")
            known.add(event.event_id)
            self.s.outbox.append(event)


class MemoryTallies:
    """The Tallies port: the rows ingest_tally would hold, in `MemoryState.tallies`."""

    def __init__(self, state: MemoryState) -> None:
        self.s = state

    async def ingested(
        self, entity: str, source: str, at: dt.datetime, outcomes: Mapping[str, int]
    ) -> None:
        self.s.tallies.extend((at, entity, source, o, n) for o, n in sorted(outcomes.items()) if n)


# -- the unit of work and its opener ---------------------------------------------------


class MemoryUnitOfWork:
    """The stores of one unit of work over `state` (mdm.domain.ports.UnitOfWork)."""

    __slots__ = (
        "_matches",
        "_merges",
        "_outbox",
        "_overrides",
        "_records",
        "_relationships",
        "_reviews",
        "_runs",
        "_tallies",
        "locked",
        "state",
    )

    def __init__(self, state: MemoryState, locks: SessionLocks | None = None) -> None:
        self.state = state
        self._records = MemoryRecords(state)
        self._matches = MemoryMatchIndex(state)
        self._merges = MemoryMerges(state)
        self._overrides = MemoryOverrides(state)
        self._relationships = MemoryReferences(state)
        self._reviews = MemoryReviews(state)
        self._runs = MemoryRuns(state, locks or SessionLocks())
        self._outbox = MemoryOutbox(state)
        self._tallies = MemoryTallies(state)
        self.locked: list[str] = []  # every lock name asked for, in order (for tests)

    @property
    def records(self) -> MemoryRecords:
        return self._records

    @property
    def matches(self) -> MemoryMatchIndex:
        return self._matches

    @property
    def merges(self) -> MemoryMerges:
        return self._merges

    @property
    def overrides(self) -> MemoryOverrides:
        return self._overrides

    @property
    def relationships(self) -> MemoryReferences:
        return self._relationships

    @property
    def reviews(self) -> MemoryReviews:
        return self._reviews

    @property
    def runs(self) -> MemoryRuns:
        return self._runs

    @property
    def outbox(self) -> MemoryOutbox:
        return self._outbox

    @property
    def tallies(self) -> MemoryTallies:
        return self._tallies

    async def lock(self, names: Iterable[str]) -> None:
        """One task at a time: nothing to wait for; the names are noted."""
        self.locked.extend(sorted(set(names)))


class MemoryRunLock:
    """An entity's re-matching run lock (mdm.domain.ports.RunLock)."""

    def __init__(self, locks: SessionLocks, entity: str) -> None:
        self.locks = locks
        self.entity = entity

    async def release(self) -> None:
        self.locks.held.discard((RUN_LOCK_CLASS, self.entity))


class MemoryUnits:
    """Opens units of work on one MemoryState (mdm.domain.ports.Units).

    A transaction commits when its block returns and is rolled back (the state
    restored from the snapshot taken at its start) when the block raises."""

    def __init__(self, state: MemoryState | None = None) -> None:
        self.state = state or MemoryState()
        self.locks = SessionLocks()
        self.commits = 0
        self.rollbacks = 0
        self._open = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryUnitOfWork]:
        if self._open:
            raise RuntimeError("one unit of work at a time (a test opened a second one)")
        snapshot = self.state.snapshot()
        self._open = True
        try:
            yield MemoryUnitOfWork(self.state, self.locks)
            self.state.check_foreign_keys()  # the commit
        except BaseException:
            self.state.restore(snapshot)
            self.rollbacks += 1
            raise
        else:
            self.commits += 1
        finally:
            self._open = False

    async def run(self, work: Callable[[MemoryUnitOfWork], Awaitable[T]]) -> T:
        async with self.transaction() as uow:
            return await work(uow)

    async def session_lock(self, entity: str) -> MemoryRunLock | None:
        if not await MemoryRuns(self.state, self.locks).try_lock(entity):
            return None
        return MemoryRunLock(self.locks, entity)
