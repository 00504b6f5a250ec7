"""The publishers' own settings: the outbox relay's and the stream's (docs/events.md).

Plain values, read from nowhere: the composition root (mdm.settings builds these
from MDM_* environment variables) or a connector's own code fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE = 60.0
DAY = 24 * 60 * MINUTE


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """The outbox relay: publishes committed events to NATS JetStream (docs/events.md).

    Durations are seconds. The duplicate window must outlast the relay's retry
    horizon (the longest a live relay takes to publish a row again after a
    publish it could not mark), or a re-publish could slip past de-duplication.
    """

    enabled: bool = True  # `mdm serve` runs a relay (MDM_RELAY=0 turns it off)
    # "process": `mdm serve` starts `mdm relay` as a child process, so publishing never
    # shares the API's event loop (its cost to the ingest request's latency is in
    # docs/benchmarks.md); the default from the environment.
    # "inline": the app runs it (MDM_RELAY=inline; an app built in code, as the tests
    # and anyone embedding create_app do, gets this unless they say otherwise).
    mode: str = "inline"
    stream: str = "MDM"
    subject_prefix: str = "mdm"  # subjects are <prefix>.<entity>.<type>
    stream_max_age: float = 7 * DAY  # how long JetStream keeps events
    stream_replicas: int = 1
    duplicate_window: float = 20 * MINUTE
    batch_size: int = 500
    poll_interval: float = 1.0  # safety net behind LISTEN/NOTIFY
    publish_timeout: float = 5.0
    max_backoff: float = 15.0
    outbox_retention: float = 7 * DAY  # published rows are kept this long for replay
    cleanup_interval: float = 5 * MINUTE
    # The Unix socket `mdm relay` answers with its metrics and the hub's /metrics reads
    # them from (publishers/metrics.py); `mdm serve` picks one for its child process.
    metrics_socket: str | None = None

    @property
    def inline(self) -> bool:
        """The app runs the relay itself (and so has its metrics in its own process)."""
        return self.enabled and self.mode == "inline"

    @property
    def retry_horizon(self) -> float:
        """Longest gap between two publishes of one row by a live relay."""
        return self.publish_timeout + self.max_backoff + self.poll_interval

    def __post_init__(self) -> None:
        if self.duplicate_window <= 2 * self.retry_horizon:
            raise ValueError(
                f"duplicate window {self.duplicate_window:g}s must exceed twice the relay's "
                f"retry horizon ({self.retry_horizon:g}s)"
            )
        if self.stream_max_age and self.stream_max_age < self.duplicate_window:
            raise ValueError("the stream's max age must not be shorter than its duplicate window")
        if self.batch_size < 1:
            raise ValueError("relay batch size must be at least 1")


def normalize_database_url(url: str | None) -> str | None:
    """Accept the usual postgres:// forms and point them at the asyncpg driver."""
    if url is None:
        return None
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url
