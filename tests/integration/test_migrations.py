"""The Alembic migrations create exactly the schema the code uses."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.migrate import upgrade
from mdm.adapters.tables import metadata


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_database_matches_the_table_definitions(database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    await engine.dispose()
    assert diff == []


async def test_migrating_twice_is_harmless(database_url: str) -> None:
    engine = create_async_engine(database_url)
    await upgrade(engine)
    await engine.dispose()
