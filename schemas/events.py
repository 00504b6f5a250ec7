"""The versioned event envelope the hub writes to its outbox for every golden change.

Subscribers decode this. It evolves only by adding fields with defaults; a
breaking change would bump SCHEMA_VERSION and publish both for a while.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

SCHEMA_VERSION = 1

EventType = Literal[
    "golden.created",
    "golden.updated",
    "golden.merged",
    "golden.lost_merge",
    "golden.unmerged",
    "golden.retired",
    "xref.linked",
    "xref.unlinked",
    "review.opened",
    "review.resolved",
]


class Causation(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What caused the change: a source record's write, or a steward's action."""

    kind: Literal["source_record", "steward", "system"]
    source: str | None = None
    source_id: str | None = None
    actor: str | None = None
    reason: str | None = None
    # A steward's decision on a review task (review.resolved, and the merge it made).
    review_id: int | None = None
    # A merge's id (POST .../merge answers it), on the merge's own events and on
    # the events of golden records whose references the merge re-pointed.
    merge_id: int | None = None


class EventXref(msgspec.Struct, kw_only=True, frozen=True):
    source: str
    source_id: str


class EventReference(msgspec.Struct, kw_only=True, frozen=True):
    """A reference of this golden record to another one (e.g. a project's customer_ref)."""

    entity: str  # the referenced entity
    source: str  # the system that stated the reference
    source_id: str  # that system's id of the referenced record
    golden_id: str | None = None  # None while the hub does not know that record (pending)
    xrefs: list[EventXref] = []  # every system's id of the referenced golden record


class GoldenPayload(msgspec.Struct, kw_only=True, frozen=True):
    status: Literal["active", "retired", "merged"]
    attributes: dict[str, Any]
    changed: list[str]
    xrefs: list[EventXref]
    # golden.merged: the ids merged into this one; golden.lost_merge: the survivor.
    merged_from: list[str] = []
    merged_into: str | None = None
    # golden.unmerged: the golden record the split-off source records went to, or came from.
    split_into: str | None = None
    split_from: str | None = None
    # Sensitive attributes the golden record holds but events never carry (their
    # names only; `changed` still says when one changed). Read them through the API
    # with a key that has the sensitive grant (docs/security.md).
    withheld: list[str] = []
    # Reference field -> the golden record it names, with every system's id of it.
    references: dict[str, EventReference] = {}


class Event(msgspec.Struct, kw_only=True, frozen=True):
    event_id: str
    type: EventType
    entity: str
    golden_id: str
    version: int
    occurred_at: dt.datetime
    correlation_id: str
    causation: Causation
    payload: GoldenPayload
    schema_version: int = SCHEMA_VERSION

    @property
    def subject(self) -> str:
        return f"mdm.{self.entity}.{self.type}"


class ReviewPayload(msgspec.Struct, kw_only=True, frozen=True):
    """A review task as it is after the event."""

    status: Literal["open", "merged", "not_a_match", "deferred", "superseded"]
    reason: str  # review_band | several_matches
    source: str  # the source record the matcher was unsure of ...
    source_id: str
    probability: float  # ... and its match probability against candidate_id
    weight: float
    # review.resolved: the steward's decision and comment; a merge's survivor.
    decision: Literal["merge", "not_a_match", "defer"] | None = None
    comment: str | None = None
    survivor_id: str | None = None


class ReviewEvent(msgspec.Struct, kw_only=True, frozen=True):
    """review.opened / review.resolved: a review task was opened or decided.

    Ordered per task, not per golden record: `version` is 1 when opened and
    grows by one with every decision (a deferred task is decided again later).
    The golden records themselves change (and publish golden.* events) only
    when a decision merges them.
    """

    event_id: str
    type: Literal["review.opened", "review.resolved"]
    entity: str
    review_id: int
    version: int
    golden_id: str  # the golden record holding the source record
    candidate_id: str  # the golden record it may be the same as
    occurred_at: dt.datetime
    correlation_id: str
    causation: Causation
    payload: ReviewPayload
    schema_version: int = SCHEMA_VERSION

    @property
    def subject(self) -> str:
        return f"mdm.{self.entity}.{self.type}"

    @property
    def ordering_key(self) -> str:
        """The outbox's per-record order key for review events (see docs/events.md)."""
        return review_ordering_key(self.review_id)


def review_ordering_key(review_id: int) -> str:
    return f"review:{review_id}"
