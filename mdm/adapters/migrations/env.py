"""Alembic environment: runs on a connection the hub hands over (see mdm.adapters.migrate)."""

from __future__ import annotations

from alembic import context

from mdm.adapters.tables import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `mdm migrate`, which supplies the connection")
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline SQL generation is not supported; use `mdm migrate`")
run_migrations_online()
