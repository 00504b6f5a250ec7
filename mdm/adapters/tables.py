"""The hub's PostgreSQL schema as SQLAlchemy Core tables.

The Alembic migrations create exactly this (a test compares them). Core, not
the ORM: the hot paths are set-based statements over many rows at once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = DateTime(timezone=True)

golden_record = Table(
    "golden_record",
    metadata,
    Column("golden_id", Text, primary_key=True),
    Column("entity", Text, nullable=False),
    Column("status", Text, nullable=False),
    # A merged-away record points at its survivor; lookups follow it.
    Column("merged_into", Text, ForeignKey("golden_record.golden_id"), nullable=True),
    Column("version", Integer, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("provenance", JSONB, nullable=False),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('active', 'retired', 'merged')", name="status"),
    CheckConstraint("(status = 'merged') = (merged_into IS NOT NULL)", name="merged_into"),
    Index(None, "entity", "status"),
)

golden_record_history = Table(
    "golden_record_history",
    metadata,
    Column("golden_id", Text, ForeignKey("golden_record.golden_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("provenance", JSONB, nullable=False),
    Column("xrefs", JSONB, nullable=False),
    Column("changed", JSONB, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("cause", JSONB, nullable=False),
    Column("changed_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("golden_id", "version"),
)

# One row per (entity, source, source_id): the source's record as received and
# standardized, and its link to exactly one golden record. These rows are the
# cross-reference: CRM account 123 and ERP customer C-77 share a golden_id.
source_record = Table(
    "source_record",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("source_id", Text, nullable=False),
    # Deferred: a batch writes its source records first and inserts the golden
    # records they create once survivorship has computed their final state.
    Column(
        "golden_id",
        Text,
        ForeignKey("golden_record.golden_id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
    Column("raw", JSONB, nullable=False),
    Column("standardized", JSONB, nullable=False),
    Column("warnings", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("content_hash", LargeBinary, nullable=False),
    Column("version", Integer, nullable=False),
    Column("source_updated_at", TS, nullable=True),
    Column("received_at", TS, nullable=False),
    Column("deleted_at", TS, nullable=True),
    Column("link_rule", Text, nullable=False),
    # Matching (migration 0006): the record's prepared comparison features, and
    # why it is in its golden record: the match weight and probability against
    # it, the model version that decided, and the per-field waterfall.
    Column("match_features", JSONB, nullable=True),
    Column("link_weight", Float, nullable=True),
    Column("link_probability", Float, nullable=True),
    Column("link_model_version", Integer, nullable=True),
    Column("link_explanation", JSONB, nullable=True),
    UniqueConstraint("entity", "source", "source_id"),
    Index(None, "golden_id"),
)

# Strong identifiers (tax ids, emails, national ids...) of live source records,
# the index deterministic matching looks candidates up in.
match_key = Table(
    "match_key",
    metadata,
    Column("entity", Text, nullable=False),
    # Compared as bytes (migration 0013): machine-made keys, only ever tested for
    # equality; the locale's collation made every b-tree comparison a strcoll.
    Column("key", Text(collation="C"), nullable=False),
    # No foreign key (migration 0011): its check cost a third of writing the keys,
    # and source records are never deleted (their keys are, explicitly).
    Column("source_record_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("entity", "key", "source_record_id"),
    Index(None, "source_record_id"),
)

# Written in the same transaction as the change it announces; the relay
# publishes unpublished rows to NATS JetStream in id order per golden record.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("entity", Text, nullable=False),
    Column("golden_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("published_at", TS, nullable=True),
    UniqueConstraint("golden_id", "version"),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)

# Responses to requests sent with an Idempotency-Key, stored in the same
# transaction as their effect so a replay answers exactly what the first got.
idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", LargeBinary, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response", LargeBinary, nullable=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("scope", "key"),
)

# Every merge, for audit and so that an unmerge can send records back where
# they came from. `moved` lists {"record_id", "from"} for each moved record.
merge_event = Table(
    "merge_event",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity", Text, nullable=False),
    Column("survivor_id", Text, ForeignKey("golden_record.golden_id"), nullable=False),
    Column("loser_ids", JSONB, nullable=False),
    Column("moved", JSONB, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Index(None, "survivor_id"),
)

# Pairs of source records a steward said are not the same thing (record_a <
# record_b). Matching never joins them again unless a steward merges them.
not_a_match = Table(
    "not_a_match",
    metadata,
    Column("record_a", BigInteger, ForeignKey("source_record.id"), nullable=False),
    Column("record_b", BigInteger, ForeignKey("source_record.id"), nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("record_a", "record_b"),
    CheckConstraint("record_a < record_b", name="ordered"),
    Index(None, "record_b"),
)

# The outbox relay (publishers/relay.py, migration 0004). Besides these indexes,
# 0004 adds a statement-level AFTER INSERT trigger that NOTIFYs `mdm_outbox`, so a
# listening relay wakes at commit instead of polling.
# Whether an earlier version of a golden record is still unpublished (per-record order).
Index(
    "ix_outbox_pending_golden",
    outbox.c.golden_id,
    outbox.c.version,
    postgresql_where=text("published_at IS NULL"),
)
# Deleting published rows once their retention has passed.
Index(
    "ix_outbox_published_at",
    outbox.c.published_at,
    postgresql_where=text("published_at IS NOT NULL"),
)
# Replay by entity and time.
Index("ix_outbox_entity_occurred_at", outbox.c.entity, outbox.c.occurred_at)

# Stewards' survivorship overrides (mdm/services/overrides.py). A pin: this value
# wins for this attribute of this golden record. A merge copies the losers' pins
# to the survivor where it has none (`inherited_from` = the loser), so that
# undoing the merge can take exactly those back; the loser keeps its own rows.
golden_pin = Table(
    "golden_pin",
    metadata,
    Column("golden_id", Text, ForeignKey("golden_record.golden_id"), nullable=False),
    Column("attribute", Text, nullable=False),
    Column("value", JSONB, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("inherited_from", Text, nullable=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("golden_id", "attribute"),
)

# An ignore: this source record's value of this attribute is never used. It is
# the record's, so it follows the record through merges and unmerges.
value_ignore = Table(
    "value_ignore",
    metadata,
    Column("record_id", BigInteger, ForeignKey("source_record.id"), nullable=False),
    Column("attribute", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("record_id", "attribute"),
)


# Match models, one row per (entity, version); the highest version is in force.
# Version 1 of each entity is the packaged default (matching/defaults), written
# at start; `mdm train` adds the next version.
match_model = Table(
    "match_model",
    metadata,
    Column("entity", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("model", JSONB, nullable=False),
    # Relative value frequencies per compared field, for term-frequency adjustment.
    Column("term_frequencies", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("trained_on", Integer, nullable=True),  # source records the EM saw
    # A fitted model the adoption check refused is kept, not in force (services/adoption.py).
    Column("adopted", Boolean, nullable=False, server_default=text("true")),
    Column("adoption", JSONB, nullable=True),  # the check's numbers and decision
    Column("created_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("entity", "version"),
)

# A match the model was not sure of (the review band), or a record that matched
# several golden records: a steward decides. The record is in `golden_id`;
# `candidate_id` is the golden record it may be the same as.
review_task = Table(
    "review_task",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity", Text, nullable=False),
    Column("record_id", BigInteger, ForeignKey("source_record.id"), nullable=False),
    Column("golden_id", Text, nullable=False),
    Column("candidate_id", Text, nullable=False),
    Column("reason", Text, nullable=False),  # review_band | several_matches
    Column("weight", Float, nullable=False),
    Column("probability", Float, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("explanation", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("decided_at", TS, nullable=True),
    Column("decided_by", Text, nullable=True),
    Column("comment", Text, nullable=True),
    # Stewardship (migration 0008): who is working the task.
    Column("assigned_to", Text, nullable=True),
    Column("assigned_at", TS, nullable=True),
    CheckConstraint(
        "status IN ('open', 'merged', 'not_a_match', 'deferred', 'superseded')", name="status"
    ),
    Index(None, "entity", "status", "created_at"),
    Index(None, "record_id"),
    Index(None, "golden_id"),
    Index(None, "candidate_id"),
)

# Every decision on a review task, for audit: who, when, the comment they gave,
# and what it did (`outcome`: the merge's survivor and version, the pairs kept
# apart). A task deferred and later merged has two rows. The golden record's
# history lists the rows naming it (golden_id or candidate_id).
review_decision = Table(
    "review_decision",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("task_id", BigInteger, ForeignKey("review_task.id"), nullable=False),
    Column("entity", Text, nullable=False),
    Column("golden_id", Text, nullable=False),
    Column("candidate_id", Text, nullable=False),
    Column("decision", Text, nullable=False),  # merge | not_a_match | defer
    Column("status", Text, nullable=False),  # the task's status after it
    Column("actor", Text, nullable=False),
    Column("comment", Text, nullable=True),
    Column("outcome", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Index(None, "task_id"),
    Index(None, "golden_id"),
    Index(None, "candidate_id"),
)

# API keys (docs/security.md). Only a SHA-256 of the key is kept: keys are 256
# random bits, so a fast hash is as strong as a slow one and costs nothing per
# request. A revoked key keeps its row (who had it, when it stopped).
api_key = Table(
    "api_key",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("source", Text, nullable=True),
    Column("sensitive", Boolean, nullable=False, server_default=text("false")),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("revoked_at", TS, nullable=True),
    # The key's own requests per second (migration 0017); NULL: the hub's default.
    Column("read_rate", Float, nullable=True),
    Column("write_rate", Float, nullable=True),
    CheckConstraint("role IN ('admin', 'steward', 'reader', 'source')", name="role"),
    CheckConstraint("(role = 'source') = (source IS NOT NULL)", name="source_bound"),
)

# Relationships between golden records (mdm/services/references.py and events.py, migration
# 0007): one row per referring golden record and reference field, as survivorship
# chose it. The reference as its source stated it (target entity, source,
# source_id) and, once the hub knows that record, the golden record it resolves
# to; NULL while pending. Rewritten whenever the referring record is recomputed.
golden_reference = Table(
    "golden_reference",
    metadata,
    Column("golden_id", Text, ForeignKey("golden_record.golden_id"), nullable=False),
    Column("field", Text, nullable=False),
    Column("target_entity", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("source_id", Text, nullable=False),
    Column("target_golden_id", Text, nullable=True),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("golden_id", "field"),
    Index(None, "target_entity", "source", "source_id"),
    Index(None, "target_golden_id"),
)

# Re-matching what the hub holds under the current model (mdm/services/rematch.py):
# one row per run. `cursor` is the last golden id of the last committed chunk, so a
# run killed midway continues after it; `status` is running until the last chunk.
rematch_run = Table(
    "rematch_run",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity", Text, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'running'")),
    Column("cursor", Text, nullable=True),
    Column("done", BigInteger, nullable=False, server_default=text("0")),
    Column("total", BigInteger, nullable=False, server_default=text("0")),
    Column("merged", BigInteger, nullable=False, server_default=text("0")),
    Column("reviews", BigInteger, nullable=False, server_default=text("0")),
    Column("withdrawn", BigInteger, nullable=False, server_default=text("0")),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS, nullable=True),
    CheckConstraint("status IN ('running', 'finished', 'abandoned')", name="status"),
    Index(None, "entity", "id"),
)

# The dashboard's history (mdm/adapters/history.py, migration 0018): one value per
# hour, series and labels ('' where a series has no such label), kept for
# MDM_DASHBOARD_RETENTION and pruned by the sampler. `ingested` (per entity, source
# and outcome) is folded in from ingest_tally; `open_reviews`, `outbox_lag_seconds`,
# `outbox_pending` and `exceptions` are sampled; `decisions` is counted from
# review_decision.
metric_hour = Table(
    "metric_hour",
    metadata,
    Column("hour", TS, nullable=False),
    Column("series", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("value", Float, nullable=False),
    PrimaryKeyConstraint("hour", "series", "entity", "source", "label"),
)

# What each ingesting unit of work counted (its records per outcome), one INSERT per
# unit and never an UPDATE, so writers never wait on each other's counters; the
# sampler moves the rows into metric_hour's `ingested` series.
ingest_tally = Table(
    "ingest_tally",
    metadata,
    Column("at", TS, nullable=False),
    Column("entity", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("records", Integer, nullable=False),
)
