"""Real PostgreSQL and NATS for the tests.

MDM_TEST_DATABASE_URL / MDM_TEST_NATS_URL point at running servers (CI and
the development machines); without them the tests start the same embedded
servers the hub uses on a bare machine. Each test session gets its own fresh
database, migrated with the real Alembic migrations, dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from litestar.testing import AsyncTestClient
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.keys import KeyStore
from mdm.api.app import create_app
from mdm.settings import (
    AuthSettings,
    DatabaseSettings,
    JwtSettings,
    NatsSettings,
    RelaySettings,
    Settings,
    normalize_database_url,
)
from tests.support import KeyedClient, MakeClient, scratch_database, truncate_hub_tables


@pytest.fixture(scope="session")
def embedded_dir() -> Iterator[Path]:
    # Short path: PostgreSQL's Unix socket path must fit in ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix="mdmt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_database_url(embedded_dir: Path) -> Iterator[str]:
    """A URL of a PostgreSQL server's maintenance database."""
    configured = normalize_database_url(os.environ.get("MDM_TEST_DATABASE_URL"))
    if configured:
        yield configured
        return
    from mdm.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(embedded_dir / "postgres", database="postgres")
    try:
        yield pg.start()
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def nats_url(embedded_dir: Path) -> Iterator[str]:
    configured = os.environ.get("MDM_TEST_NATS_URL")
    if configured:
        yield configured
        return
    from mdm.embedded import EmbeddedNats

    server = EmbeddedNats(embedded_dir / "nats")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def database_url(server_database_url: str) -> AsyncIterator[str]:
    """A fresh database for this test session, at the newest migration."""
    async with scratch_database(server_database_url) as url:
        yield url


ADMIN_KEY = "mdm_test-admin-" + secrets.token_urlsafe(16)
# The shared app also takes HS256 tokens of this test issuer (tests/integration/test_auth.py).
TEST_JWT = JwtSettings(
    issuer="https://login.example.test/",
    audience="mdm-hub",
    algorithms=("HS256",),
    key="test-signing-secret-" + secrets.token_hex(16),
)


@pytest.fixture(scope="session")
def settings(database_url: str, nats_url: str) -> Settings:
    # No relay in the shared app: tests compare outbox rows before and after, and the
    # relay tests run their own relays on their own databases.
    return Settings(
        database=DatabaseSettings(url=database_url),
        nats=NatsSettings(url=nats_url),
        relay=RelaySettings(enabled=False),
        # The shared clients act as admin through MDM_ADMIN_KEY; role clients get keys
        # from the database (make_client). No rate limit: the suite is one fast client.
        auth=AuthSettings(admin_key=ADMIN_KEY, read_rate=0, write_rate=0, jwt=TEST_JWT),
    )


@pytest.fixture(scope="session")
async def session_client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def client(session_client: AsyncTestClient, database_url: str) -> AsyncTestClient:
    """The API client, authenticated as admin, on an empty database."""
    await truncate_hub_tables(database_url)
    session_client.app.state.hub.rules.models.forget()  # match models went with the tables
    session_client.headers.clear()
    session_client.headers["X-API-Key"] = ADMIN_KEY
    return session_client


@pytest.fixture
async def make_client(client: AsyncTestClient, database_url: str) -> AsyncIterator[MakeClient]:
    """`await make_client("steward")`, `("source", source="crm")`, `("reader", sensitive=True)`:
    a client on the same app with a new API key of that role (key=... sends a given one)."""

    async def make(
        role: str | None = None,
        source: str | None = None,
        sensitive: bool = False,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        name: str | None = None,
    ) -> KeyedClient:
        if role is not None:
            engine = create_async_engine(database_url)
            async with engine.begin() as conn:
                _, key = await KeyStore(conn).create(
                    role, name or f"test {role}", source, sensitive
                )
            await engine.dispose()
        sent = dict(headers or {})
        if key is not None:
            sent["X-API-Key"] = key
        return KeyedClient(client, sent)

    yield make


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[object]:
    """A connection to the test database for assertions on what was stored."""
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        yield conn
    await engine.dispose()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """JetStream on the tests' NATS."""
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def relay_settings(js: JetStreamContext) -> AsyncIterator[RelaySettings]:
    """A stream and subject prefix of this test's own; the stream (and its DLQ) deleted after."""
    token = secrets.token_hex(4)
    settings = RelaySettings(
        stream=f"MDMTEST_{token}",
        subject_prefix=f"mdmtest{token}",
        stream_max_age=3600,
        duplicate_window=120,
        max_backoff=1.0,
        poll_interval=0.5,
    )
    yield settings
    for name in (settings.stream, f"{settings.stream}_DLQ"):
        with contextlib.suppress(Exception):  # never created by this test
            await js.delete_stream(name)
