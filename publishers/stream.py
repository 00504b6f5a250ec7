"""The JetStream stream the hub publishes to, created or brought up to date at start."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from publishers.settings import RelaySettings

log = logging.getLogger("mdm.relay")


def subject_for(prefix: str, entity: str, event_type: str) -> str:
    """`mdm.customer.golden.updated`: filter on an entity, a type, or both."""
    return f"{prefix}.{entity}.{event_type}"


def stream_config(settings: RelaySettings) -> StreamConfig:
    """Limits-based retention (every subscriber reads at its own pace), on disk."""
    return StreamConfig(
        name=settings.stream,
        description="Mastered changes of the MDM hub (docs/events.md)",
        subjects=[f"{settings.subject_prefix}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.stream_max_age or None,
        num_replicas=settings.stream_replicas,
        duplicate_window=settings.duplicate_window,
    )


async def ensure_stream(js: JetStreamContext, settings: RelaySettings) -> StreamInfo:
    """Create the stream, or update it to the configured subjects, window and retention.

    Idempotent, so every relay (and every hub process) may call it at start.
    """
    config = stream_config(settings)
    try:
        await js.stream_info(settings.stream)
    except NotFoundError:
        info = await js.add_stream(config)
        log.info(
            "created JetStream stream %s (subjects %s, duplicate window %gs)",
            settings.stream,
            config.subjects,
            settings.duplicate_window,
        )
        return info
    return await js.update_stream(config)
