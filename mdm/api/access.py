"""The access middleware: authenticate once, limit each client's rate, mask sensitive values.

It runs inside each route (after routing, before the guard), so it knows the
route's declared permission. It only resolves who is calling into
`scope["auth"]`; deciding whether they may is the guard's job
(mdm/api/auth.py: authorize).
"""

from __future__ import annotations

from typing import cast

import msgspec
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from mdm.api.auth import (
    PERMISSION_KEY,
    RESPONSE_KEYS,
    Authenticator,
    Identity,
    Permission,
    Refusal,
)
from mdm.api.rate_limit import RateLimiter, Taken, is_write
from mdm.api.sensitive import compared_fields, mask
from mdm.bootstrap import Hub
from mdm.settings import AuthSettings

#: Set in the scope by mdm/api/fast_lookup.py to the Taken of the token it took for
#: this request, so that litestar, if it answers after all, takes no second one.
RATE_TAKEN = "mdm_rate_taken"


class AccessMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: AuthSettings, sensitive: frozenset[str]) -> None:
        self.authenticator = Authenticator(settings.admin_key, settings.jwt)
        self.limiter = RateLimiter(settings.read_rate, settings.write_rate, settings.burst_seconds)
        self.sensitive = sensitive
        self.compared = compared_fields(sensitive)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        hub: Hub = scope["litestar_app"].state.hub
        identity = await self.authenticator.authenticate(hub, Headers.from_scope(scope))
        scope["auth"] = identity
        permission = scope["route_handler"].opt.get(PERMISSION_KEY)
        if permission != Permission.PUBLIC:
            taken = cast("Taken | None", scope.get(RATE_TAKEN)) or self._take(
                scope, identity, permission
            )
            if taken is not None:
                if not taken.allowed:
                    raise TooManyRequestsException(
                        detail="rate limit exceeded for this client; retry later",
                        headers=taken.header_dict(),
                    )
                send = _with_headers(send, taken.headers)
        if isinstance(identity, Identity) and not identity.sensitive:
            keys = scope["route_handler"].opt.get(RESPONSE_KEYS)
            if keys is None or not keys.isdisjoint(self.sensitive):
                send = _masking(send, self.sensitive, self.compared)
        await next_app(scope, receive, send)

    def _take(
        self, scope: Scope, identity: Identity | Refusal | None, permission: object
    ) -> Taken | None:
        """A token from the caller's read or write bucket; None when no limit applies."""
        write = is_write(permission, cast("HTTPScope", scope)["method"])
        limit = self.limiter.limit(identity, write)
        if limit is None:
            return None
        client = identity.client if isinstance(identity, Identity) else _address(scope)
        return self.limiter.take(client, limit, write)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """Wrap `send`: the answer's start carries `headers` too."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return sending


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
