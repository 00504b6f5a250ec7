"""Bodies of the HTTP API: what clients send and what the hub answers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.entities import ENTITY_TYPES, EntityName
from schemas.text import IDENTIFIER, NAME, TEXT

AwareDatetime = Annotated[dt.datetime, Meta(tz=True, description="RFC 3339 with an offset.")]
#: Why an AwareDatetime within years 1-9999 as written can still not be stored.
OUT_OF_RANGE = "out of range: it falls before year 1 or after year 9999 in UTC"
SourceId = Annotated[str, Meta(min_length=1, max_length=200), IDENTIFIER]
SystemName = Annotated[str, Meta(min_length=1, max_length=64), IDENTIFIER]
GoldenId = Annotated[str, Meta(min_length=1, max_length=64), IDENTIFIER]

MAX_BATCH = 1000
# Bounds of numbers a client may send, so that none reaches PostgreSQL out of its
# column's range (a 500 from asyncpg): paging offsets, bigint ids, int versions,
# ages in hours (a timedelta overflows past ~2.7e9 days).
MAX_OFFSET = 1_000_000_000
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1
MAX_AGE_HOURS = 1_000_000.0


def in_utc_range(value: dt.datetime) -> bool:
    """Whether `value` is still a datetime once in UTC, as PostgreSQL's timestamptz
    stores it ("9999-12-31T23:59:59-14:00" is not: it is past year 9999 there)."""
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def _upsert_type(entity: str, cls: type[msgspec.Struct]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        f"{cls.__name__}Upsert",
        [
            ("attributes", cls),
            ("source_updated_at", AwareDatetime | None, None),
        ],
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


def _batch_item_type(entity: str, cls: type[msgspec.Struct]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        f"{cls.__name__}BatchItem",
        [
            ("source_id", SourceId),
            ("attributes", cls),
            ("source_updated_at", AwareDatetime | None, None),
        ],
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


# Body of PUT /v1/sources/{source}/{entity}/{source_id}, one type per entity.
UPSERT_BODY: dict[str, type[msgspec.Struct]] = {
    name: _upsert_type(name, cls) for name, cls in ENTITY_TYPES.items()
}
# One element of POST /v1/sources/{source}/{entity}/batch.
BATCH_ITEM: dict[str, type[msgspec.Struct]] = {
    name: _batch_item_type(name, cls) for name, cls in ENTITY_TYPES.items()
}

Outcome = Literal["created", "linked", "unchanged", "review", "deleted"]


class DataQualityWarning(msgspec.Struct, kw_only=True, frozen=True):
    path: str
    code: str
    message: str


class FieldError(msgspec.Struct, kw_only=True, frozen=True):
    path: str
    message: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class IngestResult(msgspec.Struct, kw_only=True):
    golden_id: str
    outcome: Outcome
    version: int
    warnings: list[DataQualityWarning] = []
    # The model's match probability against the golden record it joined (when it decided).
    match_probability: float | None = None
    # Golden records a steward will compare this record with (review tasks opened).
    review: list[str] = []


class BatchItemResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    source_id: str | None = None
    status: int
    golden_id: str | None = None
    outcome: Outcome | None = None
    version: int | None = None
    warnings: list[DataQualityWarning] | None = None
    match_probability: float | None = None
    review: list[str] | None = None
    error: Problem | None = None


class BatchResponse(msgspec.Struct, kw_only=True):
    results: list[BatchItemResult]
    accepted: int
    rejected: int


class Provenance(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    source: str
    source_id: str
    rule: str
    # aggregate: every source record that contributed a value
    sources: list[list[str]] | None = None
    # pin: the steward who set the value
    actor: str | None = None


class XrefEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    source: str
    source_id: str
    role: str
    updated_at: dt.datetime | None = None


class GoldenRecordView(msgspec.Struct, kw_only=True, omit_defaults=True):
    golden_id: str
    entity: EntityName
    status: Literal["active", "retired", "merged"]
    version: int
    attributes: dict[str, Any]
    provenance: dict[str, Provenance]
    xrefs: list[XrefEntry]
    created_at: dt.datetime
    updated_at: dt.datetime
    merged_into: str | None = None


class XrefView(msgspec.Struct, kw_only=True):
    entity: EntityName
    golden_id: str
    status: Literal["active", "retired", "merged"]
    xrefs: list[XrefEntry]


class XrefKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    entity: EntityName
    source: SystemName
    source_id: SourceId


class XrefLookupRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    keys: Annotated[list[XrefKey], Meta(max_length=MAX_BATCH)]


class XrefLookupResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    entity: EntityName
    source: str
    source_id: str
    found: bool
    golden_id: str | None = None
    status: Literal["active", "retired", "merged"] | None = None
    xrefs: list[XrefEntry] | None = None


class XrefLookupResponse(msgspec.Struct, kw_only=True):
    results: list[XrefLookupResult]


class WhoAmI(msgspec.Struct, kw_only=True):
    """GET /v1/me: the authenticated caller (docs/security.md)."""

    role: Literal["admin", "steward", "reader", "source"]
    name: str
    actor: str  # how decisions by this caller are recorded
    source: str | None  # a source caller's system
    key_id: str | None  # an API key's id (None for a token)
    subject: str | None  # a token's subject
    sensitive: bool  # may read sensitive attributes unmasked


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok", "degraded"]
    database: str
    nats: str


Actor = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="Optional: the person the caller acts for. The hub records the "
        "authenticated caller, 'on behalf of' this name when given (docs/security.md).",
    ),
    NAME,
]
Reason = Annotated[str, Meta(max_length=2000), TEXT]


class MergeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    survivor_id: GoldenId
    loser_ids: Annotated[list[GoldenId], Meta(min_length=1, max_length=100)]
    actor: Actor | None = None
    reason: Reason | None = None


class MergeResponse(msgspec.Struct, kw_only=True):
    survivor_id: str
    version: int
    merged: list[str]
    merge_id: int
    moved_source_records: int


class RecordRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: SystemName
    source_id: SourceId


class UnmergeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    records: Annotated[list[RecordRef], Meta(min_length=1, max_length=MAX_BATCH)]
    actor: Actor | None = None
    reason: Reason | None = None


class UnmergeResponse(msgspec.Struct, kw_only=True):
    golden_id: str
    version: int
    split_golden_id: str
    split_version: int
    restored: bool


class HistoryEntry(msgspec.Struct, kw_only=True):
    version: int
    status: Literal["active", "retired", "merged"]
    event_type: str
    changed: list[str]
    cause: dict[str, Any]
    changed_at: dt.datetime
    attributes: dict[str, Any]
    xrefs: list[dict[str, str]]


class HistoryResponse(msgspec.Struct, kw_only=True):
    golden_id: str
    entity: EntityName
    versions: list[HistoryEntry]
    # Stewards' decisions on review tasks naming this golden record, newest first
    # (a merge decision is also a version above; not_a_match and defer are only here).
    reviews: list[ReviewDecisionView] = []


class PinRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A steward's value for one golden attribute; it wins whatever the rules say."""

    value: Any
    actor: Actor | None = None
    reason: Reason | None = None


class IgnoreRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Never use this source record's value of this attribute."""

    attribute: Annotated[str, Meta(min_length=1, max_length=64), IDENTIFIER]
    source: SystemName
    source_id: SourceId
    actor: Actor | None = None
    reason: Reason | None = None


class OverrideResponse(msgspec.Struct, kw_only=True):
    golden_id: str
    version: int
    changed: bool  # whether the golden record got a new version


class PinView(msgspec.Struct, kw_only=True):
    attribute: str
    value: Any
    actor: str
    reason: str | None
    inherited_from: str | None  # the merged-away golden record the pin came from
    created_at: dt.datetime


class IgnoreView(msgspec.Struct, kw_only=True):
    attribute: str
    source: str
    source_id: str
    actor: str
    reason: str | None
    created_at: dt.datetime


class OverridesView(msgspec.Struct, kw_only=True):
    golden_id: str
    pins: list[PinView]
    ignores: list[IgnoreView]


class MatchCandidateView(msgspec.Struct, kw_only=True):
    golden_id: str
    weight: float  # Fellegi-Sunter match weight (log2 odds)
    probability: float
    band: Literal["auto_link", "review", "below"]
    explanation: dict[str, Any]  # per field: level, values compared, weight (the waterfall)


class MatchResponse(msgspec.Struct, kw_only=True):
    """What ingesting this record would do now; nothing is stored."""

    decision: Literal["link", "review", "new"]
    golden_id: str | None  # the golden record it would join (link) or be compared with (review)
    reason: str
    model_version: int
    candidates: list[MatchCandidateView]
    warnings: list[DataQualityWarning] = []


class LinkView(msgspec.Struct, kw_only=True):
    source: str
    source_id: str
    # existing | strong_key | strong_key_ambiguous | restored | match | new | review |
    # registered | and the rules of merges and unmerges
    rule: str
    weight: float | None
    probability: float | None
    model_version: int | None
    explanation: dict[str, Any] | None
    received_at: dt.datetime


class LinksView(msgspec.Struct, kw_only=True):
    golden_id: str
    links: list[LinkView]


class ReviewTaskView(msgspec.Struct, kw_only=True):
    id: int
    entity: str
    source: str
    source_id: str
    golden_id: str
    candidate_id: str
    reason: str  # review_band | several_matches
    weight: float
    probability: float
    model_version: int
    explanation: dict[str, Any]
    status: str
    created_at: dt.datetime
    assigned_to: str | None = None
    assigned_at: dt.datetime | None = None
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    comment: str | None = None


class ReviewTaskList(msgspec.Struct, kw_only=True):
    tasks: list[ReviewTaskView]
    total: int = 0  # tasks matching the filters, all pages
    limit: int = 50
    offset: int = 0


ReviewStatus = Literal["open", "merged", "not_a_match", "deferred", "superseded"]
ReviewDecisionName = Literal["merge", "not_a_match", "defer"]
Comment = Annotated[str, Meta(max_length=2000), TEXT]


class ReviewDecisionView(msgspec.Struct, kw_only=True):
    """One audited decision on a review task."""

    id: int
    task_id: int
    entity: str
    golden_id: str
    candidate_id: str
    decision: ReviewDecisionName
    status: ReviewStatus  # the task's status after it
    actor: str
    comment: str | None
    outcome: dict[str, Any]
    created_at: dt.datetime


class ReviewRecord(msgspec.Struct, kw_only=True):
    """A live source record of one side of a review task."""

    source: str
    source_id: str
    attributes: dict[str, Any]
    under_review: bool  # the record the matcher was unsure of


class ReviewSide(msgspec.Struct, kw_only=True):
    golden_id: str
    status: Literal["active", "retired", "merged"]
    version: int
    merged_into: str | None
    attributes: dict[str, Any]
    provenance: dict[str, Any]
    records: list[ReviewRecord]


class ReviewTaskDetail(msgspec.Struct, kw_only=True):
    """A task with both golden records side by side and the field-by-field explanation."""

    task: ReviewTaskView
    left: ReviewSide  # the golden record holding the source record under review
    right: ReviewSide  # the candidate it may be the same as
    different: list[str]  # golden attributes whose values differ between the two sides
    decidable: bool  # false when a side was merged or retired meanwhile (superseded)
    decisions: list[ReviewDecisionView]


class AssignRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Assign a task to a steward (or, with `assignee` null, release it)."""

    assignee: Annotated[str, Meta(min_length=1, max_length=200), NAME] | None
    actor: Actor | None = None


class DecisionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    decision: ReviewDecisionName
    actor: Actor | None = None
    comment: Comment | None = None


class DecisionResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    task_id: int
    status: ReviewStatus
    decision: ReviewDecisionName
    decision_id: int
    survivor_id: str | None = None  # merge: the golden record both sides are now
    version: int | None = None  # merge: the survivor's version after it
    kept_apart: int | None = None  # not_a_match: source-record pairs stored as not a match


class BulkDecisionItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    task_id: Annotated[int, Meta(ge=1, le=MAX_ID)]
    decision: ReviewDecisionName
    comment: Comment | None = None  # else the request's comment


class BulkDecisionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    decisions: Annotated[list[BulkDecisionItem], Meta(min_length=1, max_length=500)]
    actor: Actor | None = None
    comment: Comment | None = None


class BulkDecisionItemResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    task_id: int
    ok: bool
    result: DecisionResult | None = None
    error: Problem | None = None


class BulkDecisionResponse(msgspec.Struct, kw_only=True):
    results: list[BulkDecisionItemResult]
    decided: int
    failed: int


class GoldenSearchHit(msgspec.Struct, kw_only=True, omit_defaults=True):
    golden_id: str
    entity: str
    status: Literal["active", "retired", "merged"]
    name: str | None  # the golden record's display name
    matched: str  # what the query matched: "name", or "source:source_id"
    merged_into: str | None = None


class GoldenSearchResponse(msgspec.Struct, kw_only=True):
    hits: list[GoldenSearchHit]


class CountBy(msgspec.Struct, kw_only=True):
    entity: str
    key: str
    count: int


class ReviewAge(msgspec.Struct, kw_only=True):
    entity: str
    bucket: Literal["under_1h", "1h_to_1d", "1d_to_7d", "over_7d"]
    count: int


class OutboxLag(msgspec.Struct, kw_only=True):
    pending: int  # events not yet published
    lag_seconds: float  # age of the oldest unpublished event


class ProbabilityBin(msgspec.Struct, kw_only=True):
    """Kept match probabilities in one bin, from `low` to `high`: the bin is one unit of
    match weight wide (log2 of the odds), from `weight` to `weight + 1`."""

    weight: int
    low: float
    high: float
    linked: int  # live source records the model linked, at this probability
    merged: int  # review tasks a steward merged
    not_a_match: int  # review tasks a steward kept apart
    undecided: int  # review tasks open or deferred


class ProbabilityHistogram(msgspec.Struct, kw_only=True):
    """An entity's kept match probabilities, and the thresholds of its model in force."""

    entity: str
    model_version: int
    review: float  # at or above: a steward is asked
    auto_link: float  # at or above: linked at once
    bins: list[ProbabilityBin]  # only bins holding a probability, lowest first


class HistoryPoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One value of a series of the dashboard's history."""

    at: dt.datetime  # the hour (for decisions_per_day, the UTC day) it is for
    value: float
    entity: str = ""
    source: str = ""
    key: str = ""  # the outcome, the decision, or the data-quality rule


class DashboardHistory(msgspec.Struct, kw_only=True):
    """The hourly history the hub keeps (MDM_DASHBOARD_RETENTION), of the last `hours`."""

    hours: int
    since: dt.datetime  # the first hour shown
    # Records per hour, entity, source and outcome (key: created, linked, review,
    # unchanged, rejected).
    ingested: list[HistoryPoint]
    open_reviews: list[HistoryPoint]  # open and deferred tasks per entity, last sample of the hour
    decisions_per_day: list[HistoryPoint]  # per entity and decision (key), over `days`
    days: int
    outbox_lag_seconds: list[HistoryPoint]  # the highest sample of the hour
    outbox_pending: list[HistoryPoint]  # the highest sample of the hour
    exceptions: list[HistoryPoint]  # data-quality exceptions per rule (key), sampled hourly


class DashboardView(msgspec.Struct, kw_only=True):
    """The business view: what the hub holds and what needs a steward."""

    records: list[CountBy]  # live source records per entity and source
    golden: list[CountBy]  # golden records per entity and status
    match_outcomes: list[CountBy]  # live source records per entity and link rule
    review_outcomes: list[CountBy]  # review tasks per entity and status
    open_reviews_by_age: list[ReviewAge]
    quality_warnings: list[CountBy]  # warnings on live source records per entity and code
    outbox: OutboxLag
    # Data-quality exceptions across entities per rule (GET /v1/exceptions lists them).
    exceptions: dict[str, int] = {}
    generated_at: dt.datetime
    # The charts: the kept match probabilities per entity, and the hourly history.
    probabilities: list[ProbabilityHistogram] = []
    history: DashboardHistory | None = None
