"""What a use case knows about the request that triggered it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class RequestContext:
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received_at: dt.datetime = field(default_factory=_now)
