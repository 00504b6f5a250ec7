"""Initial schema: golden records with history, source records (the cross-reference),
strong-identifier match keys, the outbox and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:17:09.782682

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table(
        "golden_record",
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("merged_into", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("provenance", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'merged') = (merged_into IS NOT NULL)",
            name=op.f("ck_golden_record_merged_into"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'merged')", name=op.f("ck_golden_record_status")
        ),
        sa.ForeignKeyConstraint(
            ["merged_into"],
            ["golden_record.golden_id"],
            name=op.f("fk_golden_record_merged_into_golden_record"),
        ),
        sa.PrimaryKeyConstraint("golden_id", name=op.f("pk_golden_record")),
    )
    op.create_index(
        op.f("ix_golden_record_entity_status"), "golden_record", ["entity", "status"], unique=False
    )
    op.create_table(
        "idempotency_key",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_key")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("envelope", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
        sa.UniqueConstraint("golden_id", "version", name=op.f("uq_outbox_golden_id_version")),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "golden_record_history",
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("provenance", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("xrefs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("changed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("cause", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["golden_record.golden_id"],
            name=op.f("fk_golden_record_history_golden_id_golden_record"),
        ),
        sa.PrimaryKeyConstraint("golden_id", "version", name=op.f("pk_golden_record_history")),
    )
    op.create_table(
        "source_record",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("golden_id", sa.Text(), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("standardized", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "warnings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("link_rule", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["golden_record.golden_id"],
            name=op.f("fk_source_record_golden_id_golden_record"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_record")),
        sa.UniqueConstraint(
            "entity", "source", "source_id", name=op.f("uq_source_record_entity_source_source_id")
        ),
    )
    op.create_index(
        op.f("ix_source_record_golden_id"), "source_record", ["golden_id"], unique=False
    )
    op.create_table(
        "match_key",
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("source_record_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_record.id"],
            name=op.f("fk_match_key_source_record_id_source_record"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity", "key", "source_record_id", name=op.f("pk_match_key")),
    )
    op.create_index(
        op.f("ix_match_key_source_record_id"), "match_key", ["source_record_id"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""

    op.drop_index(op.f("ix_match_key_source_record_id"), table_name="match_key")
    op.drop_table("match_key")
    op.drop_index(op.f("ix_source_record_golden_id"), table_name="source_record")
    op.drop_table("source_record")
    op.drop_table("golden_record_history")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_table("idempotency_key")
    op.drop_index(op.f("ix_golden_record_entity_status"), table_name="golden_record")
    op.drop_table("golden_record")
