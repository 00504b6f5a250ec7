"""Every route by every kind of caller: the authorization matrix (docs/security.md).

The table below gives each (method, path) of the OpenAPI document, plus the
routes kept out of it (/metrics, the schema itself), the permission it needs
and a request to send. A route in the OpenAPI document without a row fails
`test_every_route_has_a_row`, so a new route cannot ship without being placed
here; a route of the app that declares no permission fails
`test_every_route_declares_a_permission`.

For each row, each caller: 401 without credentials or with bad ones (unknown
key, revoked key, a token for another audience), 403 for a role without the
permission (and for a source key on another source's records), anything but
401/403 for the others. A refused request changes nothing in the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.keys import KeyStore
from mdm.adapters.tables import metadata
from mdm.api.auth import PERMISSION_KEY, Permission
from mdm.settings import Settings
from tests.support import KeyedClient, MakeClient

# Who may call a route: written out here, not read from mdm/api/auth.py, so that a
# change to the hub's grants fails this test until the table agrees.
PUBLIC = frozenset({"admin", "steward", "reader", "source", "anyone"})
OPS = frozenset({"admin", "steward", "reader"})
READ = frozenset({"admin", "steward", "reader"})
XREF_READ = frozenset({"admin", "steward", "reader", "source"})
SOURCE_WRITE = frozenset({"admin", "source"})  # a source only on its own records
STEWARD = frozenset({"admin", "steward"})
ANYONE_AUTHENTICATED = frozenset({"admin", "steward", "reader", "source"})
ADMIN = frozenset({"admin"})
Roles = frozenset[str]


@dataclass(frozen=True)
class Seed:
    crm_golden: str  # crm customer ACC-1
    erp_golden: str  # erp customer C-1, another golden record


# A request: (path with values, JSON body or None), given the seed and the `source` to act on.
Build = Callable[[Seed, str], tuple[str, Any]]

ATTRIBUTES = {
    "customer": {"name": "Matrix Consulting"},
    "worker": {"family_name": "Matrix", "given_name": "Neo"},
    "project": {"name": "Matrix rollout"},
    "legal_entity": {"name": "Matrix Holding AG"},
}


# Per entity, a source system that may write it (the key's own) and another one that
# also may (so that refusing it is the key's binding, not the sources file).
OWN_AND_OTHER = {
    "customer": ("crm", "erp"),
    "worker": ("hcm", "psa"),
    "project": ("psa", "erp"),
    "legal_entity": ("erp", "hcm"),
}


def _source_rows(entity: str) -> dict[tuple[str, str], tuple[Roles, Build]]:
    attrs = ATTRIBUTES[entity]
    record = f"/v1/sources/{{source}}/{entity}/{{source_id}}"
    batch = f"/v1/sources/{{source}}/{entity}/batch"
    existing = "ACC-1" if entity == "customer" else "NONE-1"
    return {
        ("PUT", record): (
            SOURCE_WRITE,
            lambda s, src: (f"/v1/sources/{src}/{entity}/M-1", {"attributes": attrs}),
        ),
        ("DELETE", record): (
            SOURCE_WRITE,
            lambda s, src: (f"/v1/sources/{src}/{entity}/{existing}", None),
        ),
        ("POST", batch): (
            SOURCE_WRITE,
            lambda s, src: (
                f"/v1/sources/{src}/{entity}/batch",
                [{"source_id": "M-2", "attributes": attrs}],
            ),
        ),
    }


def _match_row(entity: str) -> tuple[Roles, Build]:
    return READ, lambda s, src: (f"/v1/match/{entity}", {"attributes": ATTRIBUTES[entity]})


G = "/v1/golden/{entity}/{golden_id}"

MATRIX: dict[tuple[str, str], tuple[Roles, Build]] = {
    **_source_rows("customer"),
    **_source_rows("worker"),
    **_source_rows("project"),
    **_source_rows("legal_entity"),
    ("GET", G): (READ, lambda s, src: (f"/v1/golden/customer/{s.crm_golden}", None)),
    ("GET", f"{G}/history"): (
        READ,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/history", None),
    ),
    ("GET", f"{G}/links"): (
        READ,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/links", None),
    ),
    ("GET", f"{G}/overrides"): (
        READ,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/overrides", None),
    ),
    ("POST", "/v1/golden/{entity}/merge"): (
        STEWARD,
        lambda s, src: (
            "/v1/golden/customer/merge",
            {"survivor_id": s.crm_golden, "loser_ids": [s.erp_golden], "reason": "matrix"},
        ),
    ),
    ("POST", f"{G}/unmerge"): (
        STEWARD,
        lambda s, src: (
            f"/v1/golden/customer/{s.crm_golden}/unmerge",
            {"records": [{"source": "crm", "source_id": "ACC-1"}]},
        ),
    ),
    ("PUT", f"{G}/pins/{{attribute}}"): (
        STEWARD,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/pins/name", {"value": "Pinned"}),
    ),
    ("DELETE", f"{G}/pins/{{attribute}}"): (
        STEWARD,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/pins/name", None),
    ),
    ("PUT", f"{G}/ignores"): (
        STEWARD,
        lambda s, src: (
            f"/v1/golden/customer/{s.crm_golden}/ignores",
            {"attribute": "name", "source": "crm", "source_id": "ACC-1"},
        ),
    ),
    ("DELETE", f"{G}/ignores/{{source}}/{{source_id}}/{{attribute}}"): (
        STEWARD,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/ignores/crm/ACC-1/name", None),
    ),
    ("GET", "/v1/reviews"): (STEWARD, lambda s, src: ("/v1/reviews?entity=customer", None)),
    # No task 1 exists: an allowed caller gets 404, a refused one 401/403 first.
    ("GET", "/v1/reviews/{task_id}"): (STEWARD, lambda s, src: ("/v1/reviews/1", None)),
    ("POST", "/v1/reviews/{task_id}/assign"): (
        STEWARD,
        lambda s, src: ("/v1/reviews/1/assign", {"assignee": "anna"}),
    ),
    ("POST", "/v1/reviews/{task_id}/decision"): (
        STEWARD,
        lambda s, src: ("/v1/reviews/1/decision", {"decision": "defer", "comment": "matrix"}),
    ),
    ("POST", "/v1/reviews/decisions"): (
        STEWARD,
        lambda s, src: (
            "/v1/reviews/decisions",
            {"decisions": [{"task_id": 1, "decision": "defer"}]},
        ),
    ),
    ("GET", "/v1/dashboard"): (READ, lambda s, src: ("/v1/dashboard", None)),
    ("GET", "/v1/search/golden"): (
        READ,
        lambda s, src: ("/v1/search/golden?entity=customer&q=Acme", None),
    ),
    ("POST", "/v1/match/customer"): _match_row("customer"),
    ("POST", "/v1/match/worker"): _match_row("worker"),
    ("POST", "/v1/match/project"): _match_row("project"),
    ("POST", "/v1/match/legal_entity"): _match_row("legal_entity"),
    ("POST", "/v1/match/{entity}/rematch"): (
        ADMIN,
        lambda s, src: ("/v1/match/customer/rematch", None),
    ),
    ("GET", "/v1/match/{entity}/status"): (
        READ,
        lambda s, src: ("/v1/match/customer/status", None),
    ),
    ("GET", "/v1/xref/{entity}/{source}/{source_id}"): (
        XREF_READ,
        lambda s, src: ("/v1/xref/customer/crm/ACC-1", None),
    ),
    ("POST", "/v1/xref/lookup"): (
        XREF_READ,
        lambda s, src: (
            "/v1/xref/lookup",
            {"keys": [{"entity": "customer", "source": "crm", "source_id": "ACC-1"}]},
        ),
    ),
    ("PUT", "/v1/xref/{entity}/{golden_id}/{source}"): (
        SOURCE_WRITE,
        lambda s, src: (f"/v1/xref/customer/{s.erp_golden}/{src}", {"source_id": "X-9"}),
    ),
    ("GET", "/v1/xref/{entity}/{source}/{source_id}/in/{target}"): (
        XREF_READ,
        lambda s, src: ("/v1/xref/customer/crm/ACC-1/in/erp", None),
    ),
    ("POST", "/v1/xref/translate"): (
        XREF_READ,
        lambda s, src: (
            "/v1/xref/translate",
            {
                "items": [
                    {"entity": "customer", "source": "crm", "source_id": "ACC-1", "target": "erp"}
                ]
            },
        ),
    ),
    ("GET", "/v1/references/pending"): (READ, lambda s, src: ("/v1/references/pending", None)),
    ("GET", f"{G}/related"): (
        READ,
        lambda s, src: (f"/v1/golden/customer/{s.crm_golden}/related?relation=children", None),
    ),
    ("GET", "/v1/exceptions"): (READ, lambda s, src: ("/v1/exceptions", None)),
    ("GET", "/health"): (PUBLIC, lambda s, src: ("/health", None)),
    ("GET", "/v1/me"): (ANYONE_AUTHENTICATED, lambda s, src: ("/v1/me", None)),
}

# Served but kept out of the OpenAPI document.
UNDOCUMENTED: dict[tuple[str, str], tuple[Roles, Build]] = {
    ("GET", "/metrics"): (OPS, lambda s, src: ("/metrics", None)),
    ("GET", "/schema/openapi.json"): (OPS, lambda s, src: ("/schema/openapi.json", None)),
    ("GET", "/schema"): (OPS, lambda s, src: ("/schema", None)),
    # The stewards' page: static files, no data (it calls the API with the user's key).
    ("GET", "/steward"): (PUBLIC, lambda s, src: ("/steward/", None)),
}

ROWS = {**MATRIX, **UNDOCUMENTED}

# Callers: (name, role or None for the unauthenticated ones, whose records: own or other).
CALLERS = [
    ("admin", "admin", "own"),
    ("steward", "steward", "own"),
    ("reader", "reader", "own"),
    ("jwt steward", "steward", "own"),
    ("source key on its own records", "source", "own"),
    ("source key on another source's", "source", "other"),
    ("no credentials", None, "own"),
    ("unknown key", None, "own"),
    ("revoked key", None, "own"),
    ("token for another audience", None, "own"),
]


def _own_and_other(path: str) -> tuple[str, str]:
    for entity, pair in OWN_AND_OTHER.items():
        if f"/{entity}/" in path:
            return pair
    return OWN_AND_OTHER["customer"]  # the xref routes: the seeded customers


# Tables a refused request must leave exactly as they were.
WATCHED = [t.name for t in metadata.sorted_tables if t.name != "api_key"]


async def _snapshot(database_url: str) -> dict[str, str | None]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {
                table: (
                    await conn.execute(
                        text(
                            f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
                        )
                    )
                ).scalar()
                for table in WATCHED
            }
    finally:
        await engine.dispose()


def _token(settings: Settings, audience: str, **claims: Any) -> str:
    assert settings.auth.jwt is not None and settings.auth.jwt.key is not None
    now = int(time.time())
    body = {
        "iss": settings.auth.jwt.issuer,
        "aud": audience,
        "sub": "client-matrix",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(body, settings.auth.jwt.key, algorithm="HS256")


async def _callers(
    client: AsyncTestClient,
    make_client: MakeClient,
    settings: Settings,
    database_url: str,
    own: str,
) -> dict[str, KeyedClient]:
    callers = {
        "admin": KeyedClient(client, {"X-API-Key": str(client.headers["X-API-Key"])}),
        "steward": await make_client("steward"),
        "reader": await make_client("reader"),
        "source key on its own records": await make_client("source", source=own),
        "no credentials": await make_client(),
        "unknown key": await make_client(key="mdm_" + "x" * 43),
        "jwt steward": await make_client(
            headers={"Authorization": f"Bearer {_token(settings, 'mdm-hub', mdm_role='steward')}"}
        ),
        "token for another audience": await make_client(
            headers={"Authorization": f"Bearer {_token(settings, 'other', mdm_role='admin')}"}
        ),
    }
    callers["source key on another source's"] = callers["source key on its own records"]
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        store = KeyStore(conn)
        revoked, key = await store.create("admin", "revoked admin")
        assert await store.revoke(revoked.key_id)
    await engine.dispose()
    callers["revoked key"] = await make_client(key=key)
    return callers


async def _seed(client: AsyncTestClient) -> Seed:
    crm = await client.put(
        "/v1/sources/crm/customer/ACC-1", json={"attributes": {"name": "Acme Consulting GmbH"}}
    )
    erp = await client.put(
        "/v1/sources/erp/customer/C-1", json={"attributes": {"name": "Globex Industrial"}}
    )
    assert crm.status_code == erp.status_code == 200, (crm.text, erp.text)
    assert crm.json()["golden_id"] != erp.json()["golden_id"]
    return Seed(crm.json()["golden_id"], erp.json()["golden_id"])


def _allowed(roles: Roles, role: str, whose: str) -> bool:
    if role not in roles:
        return False
    return not (role == "source" and roles is SOURCE_WRITE and whose != "own")


@pytest.mark.parametrize(
    ("method", "path"), sorted(ROWS), ids=[f"{m} {p}" for m, p in sorted(ROWS)]
)
async def test_matrix(
    method: str,
    path: str,
    client: AsyncTestClient,
    make_client: MakeClient,
    settings: Settings,
    database_url: str,
) -> None:
    permission, build = ROWS[(method, path)]
    own, other = _own_and_other(path)
    seed = await _seed(client)
    callers = await _callers(client, make_client, settings, database_url, own)
    # Refused callers first: their requests must leave the seeded state untouched.
    order = sorted(CALLERS, key=lambda c: c[1] is not None and _allowed(permission, c[1], c[2]))
    for name, role, whose in order:
        url, body = build(seed, own if whose == "own" else other)
        before = await _snapshot(database_url) if method != "GET" else None
        kwargs = {"json": body} if body is not None else {}
        response = await callers[name].request(method, url, **kwargs)
        where = f"{name}: {method} {url} -> {response.status_code} {response.text[:300]}"
        if permission is PUBLIC:  # health: open to anyone, bad credentials or not
            assert response.status_code not in (401, 403), where
            continue
        if role is None:
            assert response.status_code == 401, where
            assert response.headers["content-type"].startswith("application/problem+json")
        elif _allowed(permission, role, whose):
            assert response.status_code not in (401, 403), where
            continue
        else:
            assert response.status_code == 403, where
        if before is not None:
            assert await _snapshot(database_url) == before, f"refused but changed: {where}"


# Matching needs READ; matching by a sensitive value also needs the sensitive grant
# (docs/security.md, "Searching by sensitive values"): admins hold it always.
SENSITIVE_SEARCHERS = {
    "admin": 200,
    "reader with the grant": 200,
    "reader": 403,
    "steward": 403,
    "jwt steward": 403,
}


async def test_a_match_by_a_sensitive_value_needs_the_sensitive_grant(
    client: AsyncTestClient, make_client: MakeClient, settings: Settings, database_url: str
) -> None:
    held = await client.put(
        "/v1/sources/hcm/worker/H-1",
        json={"attributes": {"family_name": "Lovelace", "national_id": "987-65-4329"}},
    )
    assert held.status_code == 200, held.text
    callers = await _callers(client, make_client, settings, database_url, "hcm")
    callers["reader with the grant"] = await make_client("reader", sensitive=True)
    body = {"attributes": {"given_name": "X", "national_id": "987-65-4329"}}
    for name, status in SENSITIVE_SEARCHERS.items():
        response = await callers[name].post("/v1/match/worker", json=body)
        assert response.status_code == status, (name, response.text)
        if status == 200:
            found = [c["golden_id"] for c in response.json()["candidates"]]
            assert held.json()["golden_id"] in found, (name, response.text)
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
            errors = response.json()["errors"]
            assert [e["path"] for e in errors] == ["$.attributes.national_id"], name


async def test_every_route_has_a_row(client: AsyncTestClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "put", "post", "delete", "patch"}
    }
    assert documented - MATRIX.keys() == set(), "routes without a row in the matrix"
    assert MATRIX.keys() - documented == set(), "rows for routes the hub no longer has"


def test_every_route_declares_a_permission(session_client: AsyncTestClient) -> None:
    undeclared = [
        f"{sorted(handler.http_methods)} {route.path}"
        for route in session_client.app.routes
        for handler in getattr(route, "route_handlers", [])
        # litestar's own OPTIONS handlers have none: refused like any undeclared route
        if handler.http_methods != {"OPTIONS"}
        and not isinstance(handler.opt.get(PERMISSION_KEY), Permission)
    ]
    assert undeclared == []


async def test_a_route_without_a_declaration_is_refused(settings: Settings) -> None:
    from litestar import get

    from mdm.api.app import create_app

    @get("/v1/undeclared", sync_to_thread=False)
    def undeclared() -> str:
        return "open"

    app = create_app(settings)
    app.register(undeclared)
    async with AsyncTestClient(app=app) as other:
        response = await other.get(
            "/v1/undeclared", headers={"X-API-Key": settings.auth.admin_key or ""}
        )
    assert response.status_code == 403
    assert "declares no permission" in response.json()["detail"]
