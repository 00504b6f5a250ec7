"""What the stores hand to the use cases and take from them: plain values, no I/O.

The ports (mdm/domain/ports.py) speak in these; the adapters (mdm/adapters/) build
them from rows and write them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from mdm.domain.relationships import TargetKey

# --- source and golden records


@dataclass(slots=True)
class StoredSourceRecord:
    id: int
    source_id: str
    golden_id: str
    content_hash: bytes
    version: int
    deleted_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class SourceRecordWrite:
    """The new state of one source record; id is None for a record seen the first time."""

    id: int | None
    entity: str
    source: str
    source_id: str
    golden_id: str
    raw: dict[str, Any]
    standardized: dict[str, Any]
    warnings: list[dict[str, str]]
    content_hash: bytes
    version: int
    source_updated_at: dt.datetime | None
    received_at: dt.datetime
    link_rule: str
    # Matching: the record's prepared features, and (when this write decided its
    # link) the weight, probability, model version and waterfall behind it. An
    # update that keeps its golden record passes None and keeps the stored link.
    match_features: dict[str, Any] | None = None
    link_weight: float | None = None
    link_probability: float | None = None
    link_model_version: int | None = None
    link_explanation: Any = None


@dataclass(frozen=True, slots=True)
class StoredXref:
    source: str
    source_id: str
    updated_at: dt.datetime


# --- the match index and models


@dataclass(frozen=True, slots=True)
class StoredModel:
    entity: str
    version: int
    model: dict[str, Any]
    term_frequencies: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Member:
    """A live source record of a candidate golden record, with its prepared features."""

    record_id: int
    golden_id: str
    source: str
    source_id: str
    features: dict[str, Any]


# --- merges


@dataclass(frozen=True, slots=True)
class MovedRecord:
    record_id: int
    source: str
    source_id: str
    from_golden: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class MemberRecord:
    record_id: int
    source: str
    source_id: str
    deleted: bool


# --- references between golden records


@dataclass(frozen=True, slots=True)
class PendingReference:
    golden_id: str
    referring_entity: str
    field: str
    entity: str
    source: str
    source_id: str
    since: dt.datetime


@dataclass(frozen=True, slots=True)
class Related:
    golden_id: str
    entity: str
    status: str
    depth: int
    via: str  # the golden id whose reference (or referrer) led here
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Referrer:
    golden_id: str
    entity: str
    target: TargetKey  # the reference as stated
    target_golden_id: str | None  # what it resolved to when last recomputed


# --- review tasks

ReviewSort = Literal["created_at", "-created_at", "probability", "-probability", "id", "-id"]

#: Statuses a task can still be decided from.
UNDECIDED = ("open", "deferred")


@dataclass(frozen=True, slots=True)
class ReviewFilter:
    """What the queue is narrowed to; None means "any"."""

    entity: str | None = None
    statuses: tuple[str, ...] = ("open",)
    min_probability: float | None = None
    max_probability: float | None = None
    created_before: dt.datetime | None = None  # older than an age
    created_after: dt.datetime | None = None  # younger than an age
    assignee: str | None = None  # "" means unassigned
    golden_id: str | None = None  # either side of the task


# --- re-matching runs


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    entity: str
    model_version: int
    status: str  # running | finished | abandoned
    cursor: str | None
    done: int
    total: int
    merged: int
    reviews: int
    started_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    withdrawn: int = 0  # open review tasks closed: their pair now below the band


@dataclass(frozen=True, slots=True)
class ModelInfo:
    version: int
    fitted_at: dt.datetime
    trained_on: int | None


#: The advisory lock a hub's automatic training of an entity holds while its `mdm train`
#: child runs (mdm/api/retrain.py); the second key: the entity's position in ENTITIES.
TRAINING_LOCK_CLASS = 0x4D444D54  # "MDMT"
