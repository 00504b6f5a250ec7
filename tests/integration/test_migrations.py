"""The Alembic migrations create exactly the schema the code uses."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.matching import CANDIDATES_SQL
from mdm.adapters.migrate import upgrade
from mdm.adapters.repository import fetch_rows
from mdm.adapters.tables import metadata
from tests.support import scratch_database


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


async def test_columns_have_the_collations_the_table_definitions_give(database_url: str) -> None:
    # compare_metadata does not compare collations: checked here, column by column.
    declared = {
        (table.name, column.name): getattr(column.type, "collation", None)
        for table in metadata.tables.values()
        for column in table.columns
        if getattr(column.type, "collation", None)
    }
    assert declared == {("match_key", "key"): "C"}
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND collation_name IS NOT NULL"
            )
        )
        found = {(t, c): collation for t, c, collation in rows}
    await engine.dispose()
    assert {k: found.get(k) for k in declared} == declared


async def test_the_candidate_lookup_still_uses_the_key_index(database_url: str) -> None:
    # A key parameter takes the column's collation ("C"), so the primary key serves
    # the lookup; were the collations to differ, PostgreSQL would read every key of
    # the entity and filter them.
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        await conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        rows = await fetch_rows(
            conn, "EXPLAIN " + CANDIDATES_SQL, ["email:a@example.com"], "worker", 51
        )
        plan = [row[0] for row in rows]
    await engine.dispose()
    plan_text = "\n".join(plan)
    # the key itself is searched in the index, not filtered after a scan of the entity's
    (cond,) = [line for line in plan if "Index Cond" in line and "entity" in line]
    assert "(key = k.key)" in cond, plan_text


async def test_the_key_collation_migration_keeps_the_keys_and_their_statistics(
    server_database_url: str,
) -> None:
    # 0013 changes match_key.key's type (its collation), which drops the column's
    # statistics; a hub upgraded with a million workers' keys would plan its key
    # lookups blind until the next ANALYZE. The migration refreshes them.
    async with scratch_database(server_database_url, migrate=False) as url:
        engine = create_async_engine(url)
        try:
            await upgrade(engine, "0012")
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO match_key (entity, key, source_record_id)"
                        " SELECT 'worker', 'wdf:' || (g % 500) || '|x', g"
                        " FROM generate_series(1, 2000) g"
                    )
                )
                await conn.execute(text("ANALYZE match_key"))
            await upgrade(engine)
            async with engine.connect() as conn:
                keys = (
                    await conn.execute(text("SELECT count(DISTINCT key) FROM match_key"))
                ).scalar()
                stats = (
                    await conn.execute(
                        text(
                            "SELECT n_distinct FROM pg_stats"
                            " WHERE tablename = 'match_key' AND attname = 'key'"
                        )
                    )
                ).scalar()
            assert keys == 500
            assert stats is not None  # (-0.25: a quarter of the rows have distinct keys)
        finally:
            await engine.dispose()
