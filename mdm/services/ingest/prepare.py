"""Ingestion, step 1 of 3: prepare (no database).

A record as the API or a file gives it is checked against its entity's schema,
standardized, given its strong keys, content hash and (given the model) match
features. Nothing here reads or writes storage, so a bulk load runs it in other
processes (mdm.adapters.bulk). Step 2 is mdm.services.ingest.plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from matching import standardize_record, strong_keys
from mdm.domain.errors import FieldProblem
from mdm.domain.mastering import ActiveModel
from mdm.services.matcher import (
    Features,
    features,
)
from schemas.api import BATCH_ITEM, OUT_OF_RANGE, in_utc_range
from schemas.text import explain

_hash_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class IncomingRecord:
    source_id: str
    attributes: dict[str, Any]  # JSON builtins, already schema-validated
    source_updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    errors: list[FieldProblem]


@dataclass(slots=True)
class PreparedRecord:
    """A record ready to plan: standardized values, strong keys, content hash and
    (for the model of `model_version`) match features."""

    index: int
    record: IncomingRecord
    values: dict[str, Any]
    warnings: list[dict[str, str]]
    keys: list[str]
    content_hash: bytes
    features: Features | None = None
    model_version: int | None = None  # of the model the features were prepared for


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
) -> PreparedRecord | Rejected:
    std = standardize_record(entity, record.attributes)
    if std.errors:
        return Rejected([FieldProblem(f"$.attributes.{e.path}", e.message) for e in std.errors])
    warnings = [{"path": w.path, "code": w.code, "message": w.message} for w in std.warnings]
    return PreparedRecord(
        index=index,
        record=record,
        values=std.values,
        warnings=warnings,
        keys=strong_keys(entity, std.values, std.warnings),
        content_hash=content_hash(record),
        features=features(active, entity, std.values) if active is not None else None,
        model_version=active.model.version if active is not None else None,
    )


def prepare_records(
    entity: str, records: Sequence[IncomingRecord], active: ActiveModel | None = None
) -> list[PreparedRecord | Rejected]:
    """Standardization, strong keys, content hash and (given the model) match features:
    the part of ingestion that needs no database, so a bulk load runs it in another
    process (mdm.adapters.bulk) and hands the results to `ingest_records(prepared=)`."""
    return [_prepare(entity, i, r, active) for i, r in enumerate(records)]
