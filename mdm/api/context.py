"""Per-request context handed to the use cases."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request

from mdm.services.context import RequestContext

CORRELATION_HEADERS = ("x-correlation-id", "x-request-id")


def request_context(request: Request[Any, Any, Any]) -> RequestContext:
    """The caller's correlation id (or a new one) and the time the hub received it."""
    for header in CORRELATION_HEADERS:
        value = request.headers.get(header)
        if value and len(value) <= 200:
            return RequestContext(correlation_id=value)
    return RequestContext(correlation_id=str(uuid.uuid4()))
