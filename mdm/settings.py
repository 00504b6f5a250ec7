"""One typed settings object, read from MDM_* environment variables once."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mdm.domain.sources import Role, SourceCatalog, SourceSystem


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str | None = None  # None: start an embedded PostgreSQL
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str | None = None  # None: start an embedded nats-server


@dataclass(frozen=True, slots=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    data_dir: Path = Path("mdm-data")
    sources_file: Path | None = None
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = env.get(f"MDM_{name}")
            return value if value else None

        return cls(
            database=DatabaseSettings(
                url=normalize_database_url(get("DATABASE_URL")),
                pool_size=int(get("DATABASE_POOL_SIZE") or 10),
                echo=(get("DATABASE_ECHO") or "").lower() in {"1", "true", "yes"},
            ),
            nats=NatsSettings(url=get("NATS_URL")),
            api=ApiSettings(
                host=get("HOST") or "127.0.0.1",
                port=int(get("PORT") or 8000),
                max_body_bytes=int(get("MAX_BODY_BYTES") or 8 * 1024 * 1024),
            ),
            data_dir=Path(get("DATA_DIR") or "mdm-data"),
            sources_file=Path(p) if (p := get("SOURCES_FILE")) else None,
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
        )


def normalize_database_url(url: str | None) -> str | None:
    """Accept the usual postgres:// forms and point them at the asyncpg driver."""
    if url is None:
        return None
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def load_sources(path: Path | None = None) -> SourceCatalog:
    """Read the source-systems TOML (the packaged default when `path` is None)."""
    if path is None:
        text = resources.files("mdm.defaults").joinpath("sources.toml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    raw = tomllib.loads(text)
    systems: dict[str, SourceSystem] = {}
    for name, spec in raw.get("sources", {}).items():
        roles = {entity: Role(role) for entity, role in spec.get("entities", {}).items()}
        systems[name] = SourceSystem(
            name=name, description=spec.get("description", ""), roles=roles
        )
    return SourceCatalog(systems=systems)
