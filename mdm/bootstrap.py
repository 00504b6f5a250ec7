"""The composition root: the one place that wires settings to adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mdm.adapters.lookup_cache import Lookups
from mdm.adapters.matching import CachedModels
from mdm.adapters.unit_of_work import SessionLock, SqlUnitOfWork, SqlUnits
from mdm.domain.mastering import MasteringRules
from mdm.domain.sources import SourceCatalog
from mdm.domain.survivorship_config import parse_policy
from mdm.services.ingest.group import GroupCommit
from mdm.settings import Settings, load_sources
from publishers.connection import NatsLink
from publishers.relay import Relay
from schemas.entities import ENTITY_TYPES, SENSITIVE_ATTRIBUTES

T = TypeVar("T")

_json_encoder = msgspec.json.Encoder()


def _json_serializer(value: object) -> str:
    return _json_encoder.encode(value).decode()


def make_engine(url: str, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine on asyncpg with msgspec doing the JSONB (de)serialization."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        echo=echo,
        json_serializer=_json_serializer,
        json_deserializer=msgspec.json.decode,
    )


def load_rules(
    sources_file: Path | None = None,
    survivorship_file: Path | None = None,
    catalog: SourceCatalog | None = None,
    sensitive: tuple[str, ...] = (),
) -> MasteringRules:
    """The source catalog and the survivorship rules over it (packaged defaults for None),
    with the match models read through a per-process cache (CachedModels).

    Raises (PolicyError, ValueError) on a bad file, so a hub refuses to start with
    rules it would misapply; attribute names are checked against the entities.
    """
    catalog = catalog or load_sources(sources_file)
    if survivorship_file is None:
        text = resources.files("mdm.defaults").joinpath("survivorship.toml").read_text("utf-8")
    else:
        text = survivorship_file.read_text("utf-8")
    attributes = {e: t.__struct_fields__ for e, t in ENTITY_TYPES.items()}
    policy = parse_policy(text, catalog, attributes=attributes)
    known = {name for names in attributes.values() for name in names}
    if unknown := sorted(set(sensitive) - known):
        raise ValueError(
            f"MDM_SENSITIVE_ATTRIBUTES names no attribute of any entity: {', '.join(unknown)}"
        )
    return MasteringRules(
        catalog, policy, CachedModels(), sensitive=SENSITIVE_ATTRIBUTES | frozenset(sensitive)
    )


def rules_of(settings: Settings, catalog: SourceCatalog | None = None) -> MasteringRules:
    """The mastering rules the settings configure, for the server and every CLI command:
    the sources and survivorship files and the configured sensitive attributes
    (MDM_SENSITIVE_ATTRIBUTES), which events then withhold."""
    return load_rules(
        settings.sources_file,
        settings.survivorship_file,
        catalog,
        sensitive=settings.auth.sensitive_attributes,
    )


@dataclass(frozen=True, slots=True)
class Wiring:
    """What a command (`mdm load`, `train`, `rematch`, `relay`, ...) works with, built
    from the settings as the server's Hub is: the rules, an engine of its own and
    units of work on it."""

    settings: Settings
    rules: MasteringRules
    engine: AsyncEngine
    units: SqlUnits


@asynccontextmanager
async def wired(settings: Settings, pool_size: int = 1) -> AsyncIterator[Wiring]:
    """A command's `Wiring`; its engine is disposed of when the block ends. The
    database URL must be resolved (mdm.cli resolves it, embedded if none is set)."""
    rules = rules_of(settings)  # a bad rules file fails before any connection
    if settings.database.url is None:
        raise ValueError("the database URL must be resolved")
    engine = make_engine(settings.database.url, pool_size=pool_size)
    try:
        yield Wiring(settings, rules, engine, SqlUnits(engine))
    finally:
        await rules.models.close()
        await engine.dispose()


@dataclass(slots=True)
class Hub:
    """Everything a request handler needs, built once per process."""

    settings: Settings
    rules: MasteringRules  # source roles and survivorship, validated at start
    engine: AsyncEngine
    nats: NatsLink
    lookups: Lookups  # the ID lookup's pool and caches (mdm/adapters/lookup_cache.py)
    # Units of work on the engine (mdm.domain.ports.Units), evicting the lookups they change.
    units: SqlUnits = field(init=False)
    # The outbox relay, when it runs in this process (MDM_RELAY=inline; by default
    # `mdm serve` runs it as a child process). Several at once keep per-golden-record
    # order (publishers/relay.py).
    relay: Relay | None = field(init=False)
    # Single-record writes gathered into groups, one unit of work each
    # (MDM_GROUP_COMMIT; None when it is 0: each write in a unit of its own).
    writes: GroupCommit | None = field(init=False)

    def __post_init__(self) -> None:
        self.units = SqlUnits(self.engine, self.lookups.evict_committed)
        group = self.settings.api.group_commit
        self.writes = GroupCommit(self.units.run, self.rules, group) if group > 0 else None
        inline = self.settings.relay.inline
        self.relay = Relay(self.engine, self.nats, self.settings.relay) if inline else None

    @classmethod
    def from_settings(cls, settings: Settings, catalog: SourceCatalog | None = None) -> Hub:
        if settings.database.url is None or settings.nats.url is None:
            raise ValueError(
                "database and NATS URLs must be resolved (embedded services are started by the CLI)"
            )
        return cls(
            settings=settings,
            rules=rules_of(settings, catalog),
            engine=make_engine(
                settings.database.url, settings.database.pool_size, settings.database.echo
            ),
            nats=NatsLink(settings.nats.url),
            lookups=Lookups(
                settings.database.url,
                max_bytes=settings.lookup.cache_bytes,
                max_entries=settings.lookup.cache_entries,
                max_keys=settings.lookup.key_cache_entries,
                pool_size=settings.lookup.pool_size,
                warm=settings.lookup.warm,
            ),
        )

    @property
    def catalog(self) -> SourceCatalog:
        return self.rules.sources

    async def start(self) -> None:
        await self.nats.start()
        await self.lookups.start()

    async def start_relay(self) -> None:
        """Start publishing the outbox, when the relay runs in this process."""
        if self.relay is not None:
            await self.relay.start()

    async def stop(self) -> None:
        if self.writes is not None:
            await self.writes.stop()  # the groups queued commit and are answered
        if self.relay is not None:
            await self.relay.stop()  # drain: the round in hand is published and marked
        await self.lookups.stop()
        await self.nats.close()
        await self.rules.models.close()
        await self.engine.dispose()

    def transaction(self) -> AbstractAsyncContextManager[SqlUnitOfWork]:
        """One unit of work: commits when the block succeeds, rolls back otherwise."""
        return self.units.transaction()

    async def unit_of_work(self, work: Callable[[SqlUnitOfWork], Awaitable[T]]) -> T:
        """`work` in one `transaction`, run again from its start when PostgreSQL aborted
        it to break a deadlock (mdm.adapters.retry)."""
        return await self.units.run(work)

    async def session_lock(self, entity: str) -> SessionLock | None:
        return await self.units.session_lock(entity)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[SqlUnitOfWork]:
        """The stores on a connection for reads, in no explicit transaction."""
        async with self.engine.connect() as conn:
            yield SqlUnitOfWork(conn)


def resolve_services(settings: Settings) -> tuple[Settings, EmbeddedServicesHandle | None]:
    """Start embedded PostgreSQL and/or NATS for whatever the settings leave unset."""
    import dataclasses
    import logging

    from mdm.embedded import EmbeddedNats, EmbeddedPostgres

    log = logging.getLogger("mdm")
    handle = EmbeddedServicesHandle()
    database_url, nats_url = settings.database.url, settings.nats.url
    data_dir = settings.data_dir.resolve()
    if database_url is None:
        handle.postgres = EmbeddedPostgres(data_dir / "postgres")
        database_url = handle.postgres.start()
        log.info("MDM_DATABASE_URL not set: using embedded PostgreSQL under %s", data_dir)
    if nats_url is None:
        handle.nats = EmbeddedNats(data_dir / "nats")
        nats_url = handle.nats.start()
        log.info("MDM_NATS_URL not set: using embedded nats-server at %s", nats_url)
    resolved = dataclasses.replace(
        settings,
        database=dataclasses.replace(settings.database, url=database_url),
        nats=dataclasses.replace(settings.nats, url=nats_url),
    )
    return resolved, handle if (handle.postgres or handle.nats) else None


@dataclass(slots=True)
class EmbeddedServicesHandle:
    postgres: Any = None
    nats: Any = None

    def stop(self) -> None:
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()
