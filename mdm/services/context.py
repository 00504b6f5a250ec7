"""What a use case knows about the request that triggered it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.events import Causation


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class RequestContext:
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received_at: dt.datetime = field(default_factory=_now)
    #: (source, source id) -> the correlation id of the request that wrote that
    #: record, when one unit of work carries several requests' writes (group commit)
    by_record: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def correlation_of(self, cause: Causation) -> str:
        """The correlation id of the request behind `cause`."""
        if cause.source is not None and cause.source_id is not None:
            return self.by_record.get((cause.source, cause.source_id), self.correlation_id)
        return self.correlation_id
