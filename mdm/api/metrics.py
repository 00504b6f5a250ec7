"""Business metrics, exported with the HTTP metrics at /metrics."""

from __future__ import annotations

from prometheus_client import Counter

RECORDS_INGESTED = Counter(
    "mdm_records_ingested_total",
    "Source records accepted, by entity, source and outcome",
    ["entity", "source", "outcome"],
)
