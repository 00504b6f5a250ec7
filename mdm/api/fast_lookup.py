"""The cached answer of `GET /v1/xref/{entity}/{source}/{source_id}`, sent before routing.

Litestar's per-request layers (routing, the prometheus and access middlewares,
the guard, the signature model, the response object) cost more than the whole
cached lookup: with them the hub answered about half a bare endpoint's rate.
This ASGI wrapper sits in front of litestar's handler and answers when the
caller is known in memory and the record exists:

- the caller's API key is in the key cache (or is MDM_ADMIN_KEY): the same
  Identity litestar's access middleware would resolve;
- its role holds XREF_READ (the guard's rule, mdm/api/auth.py GRANTS);
- its read bucket has a token (the very same buckets, mdm/api/rate_limit.py);
  the answer carries the RateLimit-* headers as litestar's would;
- entity, source and source id pass the route's checks (a cached answer
  passed them when it was stored);
- the caller may see it unmasked (no answer key names a sensitive attribute);
- the answer is in the lookup cache, or the one prepared statement finds it
  (and caches it, exactly as the route does).

Anything else (no key or an uncached one, a JWT, a refusal, an unknown
record (the 404 problem), a lost database connection, a query string, a
source id holding a slash (mdm/api/edge.py), another method) goes to
litestar unchanged, which answers and fills the caches. The answer's bytes
and headers are the route's own (a test compares them), and it is counted
in litestar's request metrics under the route's path template.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, cast

from litestar import Litestar
from litestar.plugins.prometheus import PrometheusMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from mdm.api.access import RATE_TAKEN, AccessMiddleware
from mdm.api.auth import GRANTS, Identity, Permission
from mdm.api.edge import SLASHED
from mdm.api.golden import XREF_KEYS, render_xref
from mdm.api.rate_limit import Taken
from mdm.bootstrap import Hub
from mdm.domain.sources import ENTITIES

PREFIX = "/v1/xref/"
_API_KEY = b"x-api-key"
_JSON = b"application/json"
_ROLES = GRANTS[Permission.XREF_READ]


class XrefFastPath:
    """Wraps litestar's ASGI handler (`app.asgi_handler`)."""

    def __init__(
        self, app: ASGIApp, hub: Hub, access: AccessMiddleware, metrics: str, template: str
    ) -> None:
        self.app = app
        self.template = template  # the route's path as litestar's metrics label it
        self.hub = hub
        self.access = access
        self.unmaskable = not access.sensitive.isdisjoint(XREF_KEYS)
        self.metrics_prefix = metrics
        self._labels: tuple[Any, Any] | None = None  # request count and duration children
        self.served = 0  # answers sent here (the rest went to litestar)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(PREFIX)
            or scope.get("method") != "GET"
            or scope["query_string"]
            or SLASHED in scope  # a source id holding "/": litestar routes it
        ):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        body = await self._answer(scope, path)
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
        taken: Taken | None = scope.get(RATE_TAKEN)  # type: ignore[assignment]
        if taken is not None:
            headers += taken.headers
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.served += 1
        if self._labels is None:
            self._bind_labels()
        if self._labels is not None:
            count, duration = self._labels
            count.inc()
            duration.observe(time.perf_counter() - began)

    async def _answer(self, scope: Scope, path: str) -> bytes | None:
        key = None
        for name, value in scope["headers"]:
            if name == _API_KEY:
                key = value
                break
        if not key:
            return None
        identity = self.access.authenticator.known(self.hub, key.decode("latin-1"))
        if not isinstance(identity, Identity) or identity.role not in _ROLES:
            return None
        if self.unmaskable and not identity.sensitive:
            return None
        lookups = self.hub.lookups
        tail = path[len(PREFIX) :]
        if tail.count("/") != 2:
            return None  # another route, or none: litestar answers
        # The cache's key is the path's tail: only answers of valid routes are in it.
        cached = lookups.answers.get(tail)
        if cached is None:
            entity, source, source_id = tail.split("/")
            # The route's own checks (mdm/api/golden.py get_xref), else litestar answers 4xx.
            if not (entity in ENTITIES and 0 < len(source) <= 64 and 0 < len(source_id) <= 200):
                return None
        limiter = self.access.limiter
        limit = limiter.limit(identity, write=False)
        if limit is not None:
            taken = limiter.take(identity.client, limit, write=False)
            # Litestar, answering after all (the 429 too), takes no second token and sends
            # these headers: a key of ours in the ASGI scope, which its Scope type lacks.
            cast(dict[str, Any], scope)[RATE_TAKEN] = taken
            if not taken.allowed:
                return None
        if cached is not None:
            lookups.count_fast_hit()
            return cached
        try:
            # A miss: one prepared statement, stored in the cache (as the route does).
            render = partial(render_xref, self.hub, entity)
            return await lookups.xref(entity, source, source_id, render)
        except Exception:  # litestar tries again and answers the problem (503, ...)
            return None

    def _bind_labels(self) -> None:
        # litestar's prometheus middleware makes its metrics at its first request.
        metrics = PrometheusMiddleware._metrics
        count = metrics.get(f"{self.metrics_prefix}_requests_total")
        duration = metrics.get(f"{self.metrics_prefix}_request_duration_seconds")
        if count is None or duration is None:
            return
        labels = ("GET", self.template, 200, self.metrics_prefix)  # litestar's label order
        self._labels = (count.labels(*labels), duration.labels(*labels))


def route_template(app: Litestar, operation_id: str) -> str:
    """The path of the route serving `operation_id`, as litestar's metrics name it."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if getattr(handler, "operation_id", None) == operation_id:
                return str(route.path_format)
    raise LookupError(f"no route serves {operation_id!r}")
