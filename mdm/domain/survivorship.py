"""Which source record's value becomes the golden value, attribute by attribute.

The rule set in this version: the entity's system of record wins any
attribute it has a value for; otherwise the most recently updated source
record wins (by the source's own update time, falling back to when the hub
received it). Ties go to the later-received record, so the result never
depends on the order rows come back from the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SYSTEM_OF_RECORD = "system_of_record"
MOST_RECENT = "most_recent"


@dataclass(frozen=True, slots=True)
class Contribution:
    """One live source record of a golden record, as survivorship sees it."""

    record_id: int
    source: str
    source_id: str
    values: Mapping[str, Any]
    source_updated_at: dt.datetime | None
    received_at: dt.datetime

    @property
    def recency(self) -> tuple[dt.datetime, dt.datetime, int]:
        return (self.source_updated_at or self.received_at, self.received_at, self.record_id)


@dataclass(frozen=True, slots=True)
class Survived:
    attributes: dict[str, Any]
    provenance: dict[str, dict[str, str]]


def survive(contributions: Iterable[Contribution], system_of_record: str | None) -> Survived:
    """Compute golden attributes and their provenance from the live contributions."""
    by_recency = sorted(contributions, key=lambda c: c.recency, reverse=True)
    attributes: dict[str, Any] = {}
    provenance: dict[str, dict[str, str]] = {}
    names = sorted({name for c in by_recency for name, v in c.values.items() if v is not None})
    for name in names:
        winner, rule = _winner(name, by_recency, system_of_record)
        attributes[name] = winner.values[name]
        provenance[name] = {"source": winner.source, "source_id": winner.source_id, "rule": rule}
    return Survived(attributes=attributes, provenance=provenance)


def _winner(
    name: str, by_recency: list[Contribution], system_of_record: str | None
) -> tuple[Contribution, str]:
    having = [c for c in by_recency if c.values.get(name) is not None]
    for c in having:
        if c.source == system_of_record:
            return c, SYSTEM_OF_RECORD
    return having[0], MOST_RECENT
