"""Credentials: API keys (hashed, CLI), JWTs (issuer, audience, algorithms, JWKS), start-up."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.api.app import create_app
from mdm.settings import AuthSettings, JwtSettings, Settings
from tests.support import KeyedClient, MakeClient, mdm_cli, scratch_database

ISSUER = "https://login.example.test/"


async def test_keys_created_listed_and_revoked_with_the_cli(
    client: AsyncTestClient, make_client: MakeClient, database_url: str, db: AsyncConnection
) -> None:
    created = await asyncio.to_thread(
        mdm_cli, database_url, "keys", "create", "--role", "steward", "--name", "anna"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    key_id = created.stdout.split()[1]
    assert key.startswith("mdm_") and key_id.startswith("key_")

    anna = await make_client(key=key)
    assert (await anna.get("/v1/reviews?entity=customer")).status_code == 200
    assert (await anna.get("/v1/xref/customer/crm/nope")).status_code == 404  # past the guard

    # Stored hashed: the key itself is nowhere in the table.
    row = (await db.execute(text("SELECT * FROM api_key WHERE key_id = :k"), {"k": key_id})).one()
    assert key not in [str(v) for v in row]
    assert row.role == "steward" and row.name == "anna" and row.source is None

    listed = await asyncio.to_thread(mdm_cli, database_url, "keys", "list")
    assert key_id in listed.stdout and "anna" in listed.stdout and key not in listed.stdout

    revoked = await asyncio.to_thread(mdm_cli, database_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    refused = await anna.get("/v1/reviews?entity=customer")
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    again = await asyncio.to_thread(mdm_cli, database_url, "keys", "revoke", key_id)
    assert again.returncode == 1

    listed = await asyncio.to_thread(mdm_cli, database_url, "keys", "list", "--all")
    assert "revoked" in listed.stdout


async def test_source_keys_need_a_known_source(database_url: str) -> None:
    for args in (
        ("--role", "source"),
        ("--role", "reader", "--source", "crm"),
        ("--role", "source", "--source", "nosuch"),
    ):
        result = await asyncio.to_thread(mdm_cli, database_url, "keys", "create", *args)
        assert result.returncode == 2, (args, result.stdout)
        assert "mdm keys create" in result.stderr


async def test_a_source_key_writes_its_own_records_and_reads_cross_references(
    client: AsyncTestClient, make_client: MakeClient, db: AsyncConnection
) -> None:
    crm = await make_client("source", source="crm")
    mine = await crm.put(
        "/v1/sources/crm/customer/ACC-1", json={"attributes": {"name": "Acme Consulting GmbH"}}
    )
    assert mine.status_code == 200, mine.text
    erp_record = await client.put(
        "/v1/sources/erp/customer/C-1", json={"attributes": {"name": "Globex"}}
    )
    before = (await db.execute(text("SELECT count(*) FROM source_record"))).scalar()
    for method in ("PUT", "DELETE"):
        body = {"json": {"attributes": {"name": "Hijacked"}}} if method == "PUT" else {}
        refused = await crm.request(method, "/v1/sources/erp/customer/C-1", **body)
        assert refused.status_code == 403, refused.text
        assert "crm" in refused.json()["detail"]
    await db.commit()
    assert (await db.execute(text("SELECT count(*) FROM source_record"))).scalar() == before
    golden = (await client.get(f"/v1/golden/customer/{erp_record.json()['golden_id']}")).json()
    assert golden["attributes"]["name"] == "Globex"
    assert (await crm.get("/v1/xref/customer/erp/C-1")).status_code == 200
    assert (await crm.get("/v1/reviews?entity=customer")).status_code == 403  # not the queue
    me = (await crm.get("/v1/me")).json()
    assert me["role"] == "source" and me["source"] == "crm" and me["sensitive"] is False
    assert me["key_id"].startswith("key_") and me["actor"].startswith("test source (source, key")
    assert (await client.get("/v1/me")).json()["sensitive"] is True  # admin


def _rsa() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "mdm-hub", "sub": "svc-1", "iat": now, "exp": now + 300, **extra}


@pytest.fixture(scope="module")
def jwks() -> Iterator[tuple[Any, str]]:
    """A JWKS endpoint on loopback serving one RSA key (kid "k1")."""
    private, _ = _rsa()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield private, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()


@pytest.mark.parametrize("via", ["pem", "jwks"])
async def test_jwt_issuer_audience_and_algorithms_are_checked(
    via: str, settings: Settings, jwks: tuple[Any, str]
) -> None:
    private, url = jwks
    _, pem = _rsa()
    if via == "pem":
        private, _ = _rsa()
        pem = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        config = JwtSettings(issuer=ISSUER, audience="mdm-hub", key=pem)
    else:
        config = JwtSettings(issuer=ISSUER, audience="mdm-hub", jwks_url=url)
    app = create_app(
        dataclasses.replace(settings, auth=AuthSettings(jwt=config, read_rate=0, write_rate=0))
    )
    headers = {"kid": "k1"}

    def rs256(**claims: Any) -> str:
        return jwt.encode(_claims(**claims), private, algorithm="RS256", headers=headers)

    other_key, _ = _rsa()
    cases = [
        (rs256(mdm_role="reader"), 404),  # accepted: past the guard to an unknown record
        (rs256(mdm_role="reader", aud="someone-else"), 401),
        (rs256(mdm_role="reader", iss="https://evil.example/"), 401),
        (rs256(mdm_role="reader", exp=int(time.time()) - 3600), 401),
        (rs256(), 401),  # no role claim
        (rs256(mdm_role="emperor"), 401),
        (rs256(mdm_role="source"), 401),  # a source token names its source
        (
            jwt.encode(_claims(mdm_role="reader"), other_key, algorithm="RS256", headers=headers),
            401,
        ),
        # HS256 is not in the allowlist (RS256 only)
        (
            jwt.encode(
                _claims(mdm_role="admin"),
                "a-shared-secret-long-enough-for-hs256-0123456789",
                algorithm="HS256",
            ),
            401,
        ),
        ("not.a.token", 401),
    ]
    async with AsyncTestClient(app=app) as client:
        for token, status in cases:
            response = await client.get(
                "/v1/golden/customer/cus_nope", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == status, response.text
        source = rs256(mdm_role="source", mdm_source="crm")
        written = await client.put(
            "/v1/sources/crm/customer/JWT-1",
            json={"attributes": {"name": "Token Co"}},
            headers={"Authorization": f"Bearer {source}"},
        )
        assert written.status_code == 200, written.text
        foreign = await client.put(
            "/v1/sources/erp/customer/JWT-1",
            json={"attributes": {"name": "Token Co"}},
            headers={"Authorization": f"Bearer {source}"},
        )
        assert foreign.status_code == 403


def test_jwt_settings_refuse_the_none_algorithm_and_need_one_key_source() -> None:
    with pytest.raises(ValueError, match="none"):
        JwtSettings(issuer=ISSUER, audience="a", algorithms=("none",), key="k")
    with pytest.raises(ValueError, match="exactly one"):
        JwtSettings(issuer=ISSUER, audience="a")
    with pytest.raises(ValueError, match="MDM_JWT_AUDIENCE"):
        Settings.from_env({"MDM_JWT_ISSUER": ISSUER, "MDM_JWT_KEY": "k"})
    configured = Settings.from_env(
        {
            "MDM_JWT_ISSUER": ISSUER,
            "MDM_JWT_AUDIENCE": "mdm",
            "MDM_JWT_ALGORITHMS": "RS256, ES256",
            "MDM_JWT_JWKS_URL": "https://login.example.test/jwks",
        }
    )
    assert configured.auth.jwt is not None
    assert configured.auth.jwt.algorithms == ("RS256", "ES256")


async def test_a_production_hub_without_credentials_refuses_to_start(
    server_database_url: str, nats_url: str
) -> None:
    async with scratch_database(server_database_url) as url:
        env_url = url.replace("postgresql+asyncpg://", "postgresql://")
        result = await asyncio.to_thread(_mdm_serve, env_url, nats_url, None)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "refusing to start without credentials" in result.stderr
        assert "mdm keys create --role admin" in result.stderr

        # The app itself refuses too (a factory started by uvicorn --workers).
        settings = Settings.from_env({"MDM_DATABASE_URL": env_url, "MDM_NATS_URL": nats_url})
        assert settings.auth.require_credentials
        with pytest.raises(BaseException) as refused:
            async with AsyncTestClient(app=create_app(settings)):
                pass
        assert "refusing to start without credentials" in _messages(refused.value)

        # With one admin key in the database it starts.
        created = await asyncio.to_thread(mdm_cli, env_url, "keys", "create", "--role", "admin")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        async with AsyncTestClient(app=create_app(settings)) as client:
            assert (await client.get("/v1/reviews?entity=customer")).status_code == 401
            client.headers["X-API-Key"] = key
            assert (await client.get("/v1/reviews?entity=customer")).status_code == 200


def _messages(exc: BaseException) -> str:
    nested = getattr(exc, "exceptions", ())
    return " ".join([str(exc), *(_messages(e) for e in nested)])


def _mdm_serve(url: str, nats_url: str, admin: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
    env.update({"MDM_DATABASE_URL": url, "MDM_NATS_URL": nats_url, "MDM_PORT": "1"})
    if admin:
        env["MDM_ADMIN_KEY"] = admin
    return subprocess.run(
        [sys.executable, "-m", "mdm.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_rate_limit_per_client_answers_429_with_retry_after(settings: Settings) -> None:
    limited = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, read_rate=0.01, burst_seconds=300)
    )
    async with AsyncTestClient(app=create_app(limited)) as admin:
        admin.headers["X-API-Key"] = settings.auth.admin_key or ""
        statuses = [(await admin.get("/v1/reviews?entity=customer")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await admin.get("/v1/reviews?entity=customer")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["content-type"].startswith("application/problem+json")
        # Another client has its own bucket; health is never limited.
        assert settings.auth.jwt is not None and settings.auth.jwt.key is not None
        token = jwt.encode(
            _claims(iss=settings.auth.jwt.issuer, mdm_role="steward"),
            settings.auth.jwt.key,
            algorithm="HS256",
        )
        other = KeyedClient(admin, {"Authorization": f"Bearer {token}"})
        assert (await other.get("/v1/reviews?entity=customer")).status_code == 200
        assert (await admin.get("/health")).status_code == 200
