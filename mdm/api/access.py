"""The access middleware: authenticate once, limit the rate per client, mask sensitive values.

It runs inside each route (after routing, before the guard), so it knows the
route's declared permission. It only resolves who is calling into
`scope["auth"]`; deciding whether they may is the guard's job
(mdm/api/auth.py: authorize).
"""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from mdm.api.auth import PERMISSION_KEY, RESPONSE_KEYS, Authenticator, Identity, Permission
from mdm.api.sensitive import compared_fields, mask
from mdm.bootstrap import Hub
from mdm.settings import AuthSettings

_MAX_BUCKETS = 100_000
#: Set in the scope by mdm/api/fast_lookup.py when it took this request's token.
RATE_TAKEN = "mdm_rate_taken"


class TokenBuckets:
    """Per-client token buckets: `rate` requests per second, bursts up to `burst`.

    In-process: with N hub processes behind a balancer a client gets up to N
    times the rate (docs/security.md).
    """

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """0 when the request may go, else the seconds until it may."""
        now = self.clock()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= _MAX_BUCKETS and client not in self._buckets:
            self._evict(now)
        self._buckets[client] = (tokens - 1.0, now)
        return 0.0

    def _evict(self, now: float) -> None:
        # Buckets that have refilled carry no state worth keeping.
        full = [
            c
            for c, (t, last) in self._buckets.items()
            if t + (now - last) * self.rate >= self.burst
        ]
        for client in full:
            del self._buckets[client]
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()


class AccessMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: AuthSettings, sensitive: frozenset[str]) -> None:
        self.authenticator = Authenticator(settings.admin_key, settings.jwt)
        self.buckets = (
            TokenBuckets(settings.rate_limit, settings.rate_burst)
            if settings.rate_limit > 0
            else None
        )
        self.sensitive = sensitive
        self.compared = compared_fields(sensitive)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        hub: Hub = scope["litestar_app"].state.hub
        identity = await self.authenticator.authenticate(hub, Headers.from_scope(scope))
        scope["auth"] = identity
        permission = scope["route_handler"].opt.get(PERMISSION_KEY)
        if (
            self.buckets is not None
            and permission != Permission.PUBLIC
            and not scope.get(RATE_TAKEN)
        ):
            client = identity.client if isinstance(identity, Identity) else _address(scope)
            wait = self.buckets.take(client)
            if wait > 0:
                raise TooManyRequestsException(
                    detail="rate limit exceeded for this client; retry later",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        if isinstance(identity, Identity) and not identity.sensitive:
            keys = scope["route_handler"].opt.get(RESPONSE_KEYS)
            if keys is None or not keys.isdisjoint(self.sensitive):
                send = _masking(send, self.sensitive, self.compared)
        await next_app(scope, receive, send)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


def _masking(send: Send, sensitive: frozenset[str], compared: frozenset[str]) -> Send:
    """Wrap `send`: JSON answers are buffered, masked and sent with their new length."""
    start: HTTPResponseStartEvent | None = None
    chunks: list[bytes] = []

    async def masked_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = Headers(message.get("headers") or []).get("content-type", "")
            if "json" in content_type:
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if body:
                body = msgspec.json.encode(mask(msgspec.json.decode(body), sensitive, compared))
            headers = MutableScopeHeaders(start)
            headers["content-length"] = str(len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return masked_send
