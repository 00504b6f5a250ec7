"""Who is calling, and may they: credentials, roles and the one permission guard.

Every route declares what it needs in its `opt`, as `opt=requires(Permission.X)`;
`authorize` (an app-level guard) reads that and nothing else. A route without a
declaration is refused (403), and tests/integration/test_authorization_matrix.py
fails for it, so a new route cannot ship open by accident. docs/security.md has
the table of roles and permissions.

Credentials: an API key in `X-API-Key` (stored hashed, mdm/adapters/keys.py; or
the MDM_ADMIN_KEY held outside the database) or an OAuth2 client-credentials
JWT in `Authorization: Bearer` (issuer, audience, algorithm allowlist checked).
The access middleware (mdm/api/access.py) resolves them once per request into
`scope["auth"]`: an Identity, a Refusal (bad credentials) or None (none given).
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.adapters.keys import ROLES, KeyStore, hash_key
from mdm.bootstrap import Hub
from mdm.settings import AuthSettings, JwtSettings

API_KEY_HEADER = "x-api-key"
_CHALLENGE = {"WWW-Authenticate": 'Bearer, ApiKey header="X-API-Key"'}


class Permission(enum.StrEnum):
    PUBLIC = "public"  # no credentials needed (health)
    OPS = "ops"  # metrics and the OpenAPI document
    READ = "read"  # golden records, their history, links and overrides; match search
    XREF_READ = "xref_read"  # cross-reference lookups
    AUTHENTICATED = "authenticated"  # any valid credential (who am I)
    SOURCE_WRITE = "source_write"  # a source system's own records (path parameter `source`)
    STEWARD = "steward"  # review queue, merge, unmerge, pins, ignores
    ADMIN = "admin"


#: Which roles hold each permission. `source` keys are also bound to their system.
GRANTS: dict[Permission, frozenset[str]] = {
    Permission.PUBLIC: frozenset(ROLES),
    Permission.OPS: frozenset({"admin", "steward", "reader"}),
    Permission.READ: frozenset({"admin", "steward", "reader"}),
    Permission.XREF_READ: frozenset({"admin", "steward", "reader", "source"}),
    Permission.AUTHENTICATED: frozenset(ROLES),
    Permission.SOURCE_WRITE: frozenset({"admin", "source"}),
    Permission.STEWARD: frozenset({"admin", "steward"}),
    Permission.ADMIN: frozenset({"admin"}),
}

PERMISSION_KEY = "permission"
#: A route's `opt` may list every JSON key its answers hold (a frozenset): when none
#: of them names a sensitive attribute, the masking middleware leaves it alone.
RESPONSE_KEYS = "response_keys"


def requires(permission: Permission) -> dict[str, Any]:
    """A route's `opt`: the permission it needs (the one way a route declares it)."""
    return {PERMISSION_KEY: permission}


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller."""

    role: str  # admin | steward | reader | source
    name: str  # the key's name, or the token's client id / subject
    source: str | None = None  # the source system of a `source` caller
    key_id: str | None = None  # an API key's id (None for a JWT)
    subject: str | None = None  # a JWT's `sub`
    sensitive: bool = False  # may read sensitive attributes unmasked
    # The key's own requests per second (None: the hub's; 0: none), mdm/api/rate_limit.py
    read_rate: float | None = None
    write_rate: float | None = None

    @property
    def client(self) -> str:
        """A stable id for rate limiting: one bucket per key or per token subject."""
        return self.key_id or f"jwt:{self.subject}"

    @property
    def actor(self) -> str:
        """How the caller is recorded in audits, history and events."""
        via = f"key {self.key_id}" if self.key_id else "token"
        return f"{self.name} ({self.role}, {via})"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Credentials were given but are not good (unknown or revoked key, bad token)."""

    reason: str


def _identity(role: str, name: str, source: str | None, **kw: Any) -> Identity:
    # Admins always read sensitive attributes; other roles need the grant.
    granted = bool(kw.pop("sensitive", False)) or role == "admin"
    return Identity(role=role, name=name, source=source, sensitive=granted, **kw)


class Authenticator:
    """Turns a request's credentials into an Identity (or a Refusal), once per request."""

    def __init__(self, admin_key: str | None, jwt_settings: JwtSettings | None) -> None:
        self.admin_key = admin_key
        self.jwt = jwt_settings
        self._admin = _identity("admin", "MDM_ADMIN_KEY", None, key_id="env-admin")
        self._jwks = (
            jwt.PyJWKClient(jwt_settings.jwks_url, cache_keys=True, lifespan=300)
            if jwt_settings and jwt_settings.jwks_url
            else None
        )

    async def authenticate(self, hub: Hub, headers: Any) -> Identity | Refusal | None:
        key = headers.get(API_KEY_HEADER)
        if key:
            return await self._api_key(hub, key)
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Refusal("Authorization must be 'Bearer <token>'")
            return await self._token(token.strip())
        return None

    def known(self, hub: Hub, key: str) -> Identity | None:
        """The caller of an API key known without the database (MDM_ADMIN_KEY, or cached)."""
        if self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return self._admin
        if len(key) > 200:
            return None
        found = hub.lookups.keys.get(hash_key(key))
        return found if isinstance(found, Identity) else None

    async def _api_key(self, hub: Hub, key: str) -> Identity | Refusal:
        if self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return self._admin
        if len(key) > 200:
            return Refusal("unknown or revoked API key")
        # Cached by the key's hash; any change to api_key (a revocation in any
        # process) clears every process's cache (mdm/adapters/lookup_cache.py).
        digest = hash_key(key)
        cached = hub.lookups.cached_key(digest)
        if cached is not None:
            return cached
        generation = hub.lookups.key_generation()
        async with hub.engine.connect() as conn:
            stored = await KeyStore(conn).find(key)
        if stored is None:
            return Refusal("unknown or revoked API key")
        identity = _identity(
            stored.role,
            stored.name,
            stored.source,
            key_id=stored.key_id,
            sensitive=stored.sensitive,
            read_rate=stored.read_rate,
            write_rate=stored.write_rate,
        )
        hub.lookups.remember_key(digest, identity, generation)
        return identity

    async def _token(self, token: str) -> Identity | Refusal:
        settings = self.jwt
        if settings is None:
            return Refusal("bearer tokens are not accepted: no JWT issuer is configured")
        try:
            if self._jwks is not None:
                signing = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing.key
            else:
                key = settings.key
            claims = jwt.decode(
                token,
                key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            return Refusal(f"invalid token: {exc}")
        role = claims.get(settings.role_claim)
        source = claims.get(settings.source_claim)
        if role not in ROLES:
            return Refusal(f"the token's {settings.role_claim!r} claim names no role")
        if role == "source" and not (isinstance(source, str) and source):
            return Refusal(f"a source token needs the {settings.source_claim!r} claim")
        subject = str(claims["sub"])
        return _identity(
            role,
            str(claims.get("client_id") or claims.get("azp") or subject),
            source if role == "source" else None,
            subject=subject,
            sensitive=claims.get(settings.sensitive_claim) is True,
        )


def identity_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """The authenticated caller of this request (routes behind a permission always have one)."""
    found = connection.scope.get("auth")
    if isinstance(found, Identity):
        return found
    reason = found.reason if isinstance(found, Refusal) else None
    raise NotAuthorizedException(
        reason or "credentials required: an X-API-Key header or Authorization: Bearer <token>",
        headers=_CHALLENGE,
    )


def actor_of(connection: ASGIConnection[Any, Any, Any, Any], given: str | None = None) -> str:
    """Who decided, for audits, history and events: always the authenticated caller.

    `given` (the optional `actor` of a request body) is kept as "on behalf of":
    a shared integration key (a ticket tool, a script) may act for a named person.
    """
    actor = identity_of(connection).actor
    if given and given != actor:
        return f"{actor} on behalf of {given}"
    return actor


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """The app-level guard: the route's declared permission against the caller's role."""
    permission = route_handler.opt.get(PERMISSION_KEY)
    if permission is None:
        raise PermissionDeniedException(
            "this route declares no permission, so nobody may call it (mdm/api/auth.py)"
        )
    permission = Permission(permission)
    if permission is Permission.PUBLIC:
        return
    identity = identity_of(connection)
    if identity.role not in GRANTS[permission]:
        raise PermissionDeniedException(
            f"the {identity.role} role may not do this ({permission} is needed)"
        )
    if identity.role == "source" and permission is Permission.SOURCE_WRITE:
        target = connection.path_params.get("source")
        if target != identity.source:
            raise PermissionDeniedException(
                f"this key writes only {identity.source}'s records, not {target}'s"
            )


async def missing_credentials(engine: AsyncEngine, auth: AuthSettings) -> str | None:
    """Why a hub that must not run open would (None when it has a way to authenticate).

    Required when the settings say so (a configured MDM_DATABASE_URL): a live
    key in the database, MDM_ADMIN_KEY or a JWT issuer.
    """
    if not auth.require_credentials or auth.admin_key or auth.jwt:
        return None
    try:
        async with engine.connect() as conn:
            if await KeyStore(conn).any_live():
                return None
    except ProgrammingError:
        return "the database has no api_key table: run `mdm migrate` first"
    return (
        "refusing to start without credentials: this hub has a configured database "
        "(MDM_DATABASE_URL) but no API key in it, no MDM_ADMIN_KEY and no JWT issuer "
        "(MDM_JWT_ISSUER). Create a key with `mdm keys create --role admin`, or set "
        "MDM_ADMIN_KEY; see docs/security.md"
    )
