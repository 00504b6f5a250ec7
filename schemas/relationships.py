"""API bodies of relationships: id translation, pending references, related records, exceptions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.api import MAX_BATCH, SourceId, SystemName
from schemas.entities import EntityName


class Translation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A source's id of a record, in another system's terms."""

    entity: EntityName
    source: str
    source_id: str
    target: str
    golden_id: str
    target_id: str  # the target's id (the first one if it holds several)
    target_ids: list[str]


class TranslateItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    entity: EntityName
    source: SystemName
    source_id: SourceId
    target: SystemName


class TranslateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: Annotated[list[TranslateItem], Meta(min_length=1, max_length=MAX_BATCH)]


class TranslateResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    entity: EntityName
    source: str
    source_id: str
    target: str
    found: bool  # whether the target system knows the record
    golden_id: str | None = None  # set when the hub knows the source's record
    target_id: str | None = None
    target_ids: list[str] | None = None


class TranslateResponse(msgspec.Struct, kw_only=True):
    results: list[TranslateResult]


class PendingReferenceView(msgspec.Struct, kw_only=True):
    golden_id: str  # the referring golden record
    referring_entity: EntityName
    field: str
    entity: EntityName  # what it refers to
    source: str
    source_id: str  # the id the hub does not know yet
    since: dt.datetime


class PendingReferences(msgspec.Struct, kw_only=True):
    items: list[PendingReferenceView]
    total: int
    limit: int
    offset: int


class RelatedRecord(msgspec.Struct, kw_only=True):
    golden_id: str
    entity: EntityName
    depth: int  # 1: directly related
    via: str  # the golden id it was reached from
    attributes: dict[str, Any]


class RelatedResponse(msgspec.Struct, kw_only=True):
    golden_id: str
    entity: EntityName
    relation: str
    depth: int
    items: list[RelatedRecord]


ExceptionRule = Literal[
    "project_customer_inactive",
    "terminated_project_manager",
    "terminated_manager",
    "project_without_legal_entity",
    "worker_without_cost_rate",
]


class DataQualityException(msgspec.Struct, kw_only=True, omit_defaults=True):
    rule: ExceptionRule
    entity: EntityName
    golden_id: str
    field: str
    message: str
    related_golden_id: str | None = None


class ExceptionsResponse(msgspec.Struct, kw_only=True):
    items: list[DataQualityException]
    total: int  # matching the filters
    counts: dict[str, int]  # per rule, matching the entity and golden id filters
    limit: int
    offset: int
