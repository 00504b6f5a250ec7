"""The embedded PostgreSQL and nats-server really run and keep their data across restarts."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from nats.js.api import StorageType
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.embedded import WRITE_SETTINGS, EmbeddedNats, EmbeddedPostgres


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Not tmp_path: PostgreSQL's Unix socket lives in the data dir only if the path fits
    # in ~107 bytes, and this test wants the ordinary case.
    path = Path(tempfile.mkdtemp(prefix="mdm-emb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _accepts_connections(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def test_postgres_keeps_rows_across_restarts(short_dir: Path) -> None:
    pgdata = short_dir / "postgres"

    with EmbeddedPostgres(pgdata, database="mdm_embedded") as pg:
        url = pg.url
        assert url.startswith("postgresql+asyncpg://postgres@/mdm_embedded?host=")
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE party (id int PRIMARY KEY, name text)"))
            await conn.execute(text("INSERT INTO party VALUES (1, 'Acme Ltd')"))
        await engine.dispose()
    assert not (pgdata / "postmaster.pid").exists(), "stop() left the server running"

    pg = EmbeddedPostgres(pgdata, database="mdm_embedded")
    try:
        url = pg.start()
        assert await _rows(url, "SELECT id, name FROM party") == [(1, "Acme Ltd")]
    finally:
        pg.stop()
        pg.stop()  # idempotent
    assert not (pgdata / "postmaster.pid").exists()


async def test_postgres_gets_the_write_settings_and_keeps_a_hand_set_one(
    short_dir: Path,
) -> None:
    pgdata = short_dir / "postgres"
    names = ", ".join(f"'{name}'" for name in WRITE_SETTINGS)
    shown = f"SELECT name, setting, unit FROM pg_settings WHERE name IN ({names}) ORDER BY name"

    with EmbeddedPostgres(pgdata, database="mdm_embedded") as pg:
        # 8GB and 15min, as pg_settings gives them (MB and seconds)
        assert await _rows(pg.url, shown) == [
            ("checkpoint_timeout", "900", "s"),
            ("max_wal_size", "8192", "MB"),
        ]
        engine = create_async_engine(pg.url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text("ALTER SYSTEM SET checkpoint_timeout = '7min'"))
        await engine.dispose()

    with EmbeddedPostgres(pgdata, database="mdm_embedded") as pg:
        assert await _rows(pg.url, shown) == [
            ("checkpoint_timeout", "420", "s"),
            ("max_wal_size", "8192", "MB"),
        ]


async def test_nats_jetstream_keeps_streams_across_restarts(short_dir: Path) -> None:
    store = short_dir / "nats"

    server = EmbeddedNats(store)
    url = server.start()
    try:
        nc = await nats.connect(url, max_reconnect_attempts=0)
        js = nc.jetstream()
        await js.add_stream(name="EMBEDDED", subjects=["embedded.>"], storage=StorageType.FILE)
        ack = await js.publish("embedded.party", b"Acme Ltd")
        assert (ack.stream, ack.seq) == ("EMBEDDED", 1)
        await nc.close()
    finally:
        server.stop()
    assert not _accepts_connections(url), "stop() left nats-server running"

    server = EmbeddedNats(store)
    url = server.start()
    try:
        nc = await nats.connect(url, max_reconnect_attempts=0)
        js = nc.jetstream()
        info = await js.stream_info("EMBEDDED")
        assert info.config.storage == StorageType.FILE
        assert info.state.messages == 1
        message = await js.get_msg("EMBEDDED", 1)
        assert (message.subject, message.data) == ("embedded.party", b"Acme Ltd")
        await nc.close()
    finally:
        server.stop()
        server.stop()  # idempotent
    assert not _accepts_connections(url)
