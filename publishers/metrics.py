"""The relay's Prometheus metrics, in the default registry so the hub's /metrics shows them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_PENDING = Gauge(
    "mdm_outbox_unpublished_events", "Outbox events committed but not yet acknowledged by NATS"
)
OUTBOX_LAG = Gauge(
    "mdm_outbox_lag_seconds",
    "Age of the oldest unpublished outbox event (0 when none is waiting)",
)
PUBLISHED = Counter(
    "mdm_relay_published_events",
    "Outbox events published to JetStream and marked, by entity",
    ["entity"],
)
DUPLICATES = Counter(
    "mdm_relay_duplicate_publishes",
    "Publishes JetStream dropped as duplicates (a re-publish after a relay failed to mark)",
)
FAILURES = Counter("mdm_relay_publish_failures", "Publishes that got no PubAck")
PUBLISH_SECONDS = Histogram(
    "mdm_relay_publish_seconds",
    "From sending an event to its PubAck",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CLEANED = Counter(
    "mdm_outbox_cleaned_events", "Published outbox rows deleted after their retention"
)
