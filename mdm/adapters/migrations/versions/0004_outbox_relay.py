"""Outbox relay: indexes for claiming, replay and clean-up; NOTIFY on insert.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One notification per inserting transaction (statement-level, and PostgreSQL
# folds identical notifications of one transaction), delivered at commit only:
# a relay that LISTENs wakes for committed rows and never for rolled-back ones.
_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION mdm_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mdm_outbox', '');
    RETURN NULL;
END
$$
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
FOR EACH STATEMENT EXECUTE FUNCTION mdm_outbox_notify()
"""


def upgrade() -> None:
    # The relay's "is an earlier version of this golden record still unpublished?"
    op.create_index(
        "ix_outbox_pending_golden",
        "outbox",
        ["golden_id", "version"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    # Clean-up of published rows past their retention.
    op.create_index(
        "ix_outbox_published_at",
        "outbox",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )
    # `mdm events replay --entity ... --since ...`
    op.create_index(
        "ix_outbox_entity_occurred_at", "outbox", ["entity", "occurred_at"], unique=False
    )
    op.execute(_NOTIFY_FUNCTION)
    op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS mdm_outbox_notify()")
    op.drop_index("ix_outbox_entity_occurred_at", table_name="outbox")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_index("ix_outbox_pending_golden", table_name="outbox")
