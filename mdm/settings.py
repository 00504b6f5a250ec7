"""One typed settings object, read from MDM_* environment variables once."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mdm.domain.sources import Role, SourceCatalog, SourceSystem
from publishers.settings import DAY, MINUTE, RelaySettings, normalize_database_url


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
    # Single-record writes of one entity and source gathered into one unit of work,
    # at most this many (mdm/services/ingest/group.py); 0: each in its own.
    group_commit: int = 64
    # `mdm serve` logs the event loop's stack when the loop has not run for this
    # long (mdm/watchdog.py); 0 turns the watchdog off.
    loop_stall_ms: float = 100.0


MIB = 1024 * 1024

#: The ID lookup cache's default budget (MDM_LOOKUP_CACHE_MB): the answers of a
#: million source records, one a golden record (about 620 bytes each as
#: mdm/adapters/lookup_cache.py accounts them, close to what they take), with a
#: fifth to spare. A fixed figure, not a share of the machine's memory: each
#: `mdm serve --workers` process holds a cache of its own, and in a container the
#: memory the system reports is not the container's limit.
LOOKUP_CACHE_BUDGET = 768 * MIB


@dataclass(frozen=True, slots=True)
class LookupSettings:
    """The ID lookup's caches (mdm/adapters/lookup_cache.py): sizes and its own pool."""

    # Bytes the encoded xref answers may take (LRU, each answer accounted for its
    # key's and body's lengths and a measured constant); 0 turns caching off.
    cache_bytes: int = LOOKUP_CACHE_BUDGET
    cache_entries: int | None = None  # a further cap on answers kept; None: the budget alone
    warm: bool = True  # read the stored answers into the cache at start, until it is full
    key_cache_entries: int = 10_000  # API key hash -> caller
    pool_size: int = 4  # asyncpg connections of the lookup path


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """OAuth2 client-credentials tokens (docs/security.md): what a token must say to be taken."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256",)
    jwks_url: str | None = None  # the issuer's JWKS (keys fetched and cached) ...
    key: str | None = None  # ... or a PEM public key / an HMAC secret
    role_claim: str = "mdm_role"
    source_claim: str = "mdm_source"
    sensitive_claim: str = "mdm_sensitive"
    leeway: float = 30.0

    def __post_init__(self) -> None:
        if not self.algorithms or any(a.lower() == "none" for a in self.algorithms):
            raise ValueError("MDM_JWT_ALGORITHMS must name signing algorithms (never 'none')")
        if (self.jwks_url is None) == (self.key is None):
            raise ValueError("JWT: set exactly one of MDM_JWT_JWKS_URL and MDM_JWT_KEY")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Credentials, limits and sensitive attributes (docs/security.md)."""

    admin_key: str | None = None  # MDM_ADMIN_KEY: an admin key held outside the database
    # A production hub (MDM_DATABASE_URL configured) refuses to start without any credential.
    require_credentials: bool = False
    jwt: JwtSettings | None = None
    # Requests per second per client, reads and writes each in a bucket of their own
    # (mdm/api/rate_limit.py says which is which); 0 turns that limit off. Reads are
    # cheap (the ID lookup answers thousands a second): a sync resolving ids one by one
    # must not meet the limit. A write runs a unit of work (matching, survivorship,
    # outbox): 200/s is above what the hub sustains in single-record writes for all its
    # clients together (docs/benchmarks.md), and a batch of up to 1,000 records is one
    # request, so a source writing at full speed does not meet it either; what it stops
    # is one client flooding the cheap write answers (rejections, replays, 404s).
    read_rate: float = 5_000.0
    write_rate: float = 200.0
    burst_seconds: float = 2.0  # a bucket holds this many seconds' worth of its rate
    sensitive_attributes: tuple[str, ...] = ()  # added to the schemas' own


@dataclass(frozen=True, slots=True)
class RetrainSettings:
    """Retraining as the held records grow, in the hub (docs/matching.md).

    Every `interval` seconds the hub checks each entity and runs `mdm train` (fit,
    check, adopt, re-match) when its live records reached `growth` times those the
    newest fitted model saw, or `minimum` under the packaged model. 0: off (an app
    built in code); `mdm serve`: every 10 minutes unless MDM_RETRAIN_INTERVAL says.
    """

    interval: float = 0.0
    growth: float = 2.0
    minimum: int = 1_000


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """The dashboard's hourly history (docs/stewardship.md, mdm/adapters/history.py).

    Every `sample_interval` seconds the hub samples it (0: off, for an app built in
    code; `mdm serve`: every minute unless MDM_DASHBOARD_SAMPLE_INTERVAL says); hours
    older than `retention` seconds are deleted.
    """

    sample_interval: float = 0.0
    retention: float = 30 * DAY


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    lookup: LookupSettings = field(default_factory=LookupSettings)
    retrain: RetrainSettings = field(default_factory=RetrainSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    data_dir: Path = Path("mdm-data")
    sources_file: Path | None = None
    survivorship_file: Path | None = None
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
                group_commit=int(get("GROUP_COMMIT") or 64),
                loop_stall_ms=float(get("LOOP_STALL_MS") or 100.0),
            ),
            relay=_relay_from_env(get),
            auth=_auth_from_env(get),
            lookup=LookupSettings(
                cache_bytes=_mebibytes(
                    "MDM_LOOKUP_CACHE_MB", get("LOOKUP_CACHE_MB"), LOOKUP_CACHE_BUDGET
                ),
                cache_entries=int(n) if (n := get("LOOKUP_CACHE_ENTRIES")) else None,
                warm=_flag("MDM_LOOKUP_WARM", get("LOOKUP_WARM"), default=True),
                key_cache_entries=int(get("LOOKUP_KEY_CACHE_ENTRIES") or 10_000),
                pool_size=int(get("LOOKUP_POOL_SIZE") or 4),
            ),
            retrain=RetrainSettings(
                interval=parse_duration(get("RETRAIN_INTERVAL") or "10m"),
                growth=float(get("RETRAIN_GROWTH") or 2.0),
                minimum=int(get("RETRAIN_MIN_RECORDS") or 1_000),
            ),
            dashboard=DashboardSettings(
                sample_interval=parse_duration(get("DASHBOARD_SAMPLE_INTERVAL") or "1m"),
                retention=parse_duration(get("DASHBOARD_RETENTION") or "30d"),
            ),
            data_dir=Path(get("DATA_DIR") or "mdm-data"),
            sources_file=Path(p) if (p := get("SOURCES_FILE")) else None,
            survivorship_file=Path(p) if (p := get("SURVIVORSHIP_FILE")) else None,
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
        )


def _mebibytes(name: str, value: str | None, default: int) -> int:
    """Bytes from setting `name`, a number of MiB (`512`, `1.5`); unset: `default`."""
    if value is None:
        return default
    try:
        mib = float(value)
    except ValueError:
        mib = math.nan
    if not 0 <= mib < math.inf:
        raise ValueError(f"{name} is not a size in MiB: {value!r} (use e.g. 512, or 0 for none)")
    return round(mib * MIB)


def _flag(name: str, value: str | None, default: bool) -> bool:
    """On/off setting `name`: 1/true/yes/on or 0/false/no/off (any case); unset: `default`."""
    if value is None or not value.strip():
        return default
    word = value.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} is not an on/off value: {value!r} (use true or false)")


def _auth_from_env(get: Callable[[str], str | None]) -> AuthSettings:
    jwt = None
    if get("JWT_ISSUER") or get("JWT_AUDIENCE") or get("JWT_JWKS_URL") or get("JWT_KEY"):
        issuer, audience = get("JWT_ISSUER"), get("JWT_AUDIENCE")
        if not issuer or not audience:
            raise ValueError("JWT: MDM_JWT_ISSUER and MDM_JWT_AUDIENCE are both required")
        algorithms = tuple(a.strip() for a in (get("JWT_ALGORITHMS") or "RS256").split(","))
        jwt = JwtSettings(
            issuer=issuer,
            audience=audience,
            algorithms=tuple(a for a in algorithms if a),
            jwks_url=get("JWT_JWKS_URL"),
            key=get("JWT_KEY"),
            role_claim=get("JWT_ROLE_CLAIM") or "mdm_role",
            source_claim=get("JWT_SOURCE_CLAIM") or "mdm_source",
            sensitive_claim=get("JWT_SENSITIVE_CLAIM") or "mdm_sensitive",
        )
    sensitive = get("SENSITIVE_ATTRIBUTES") or ""
    return AuthSettings(
        admin_key=get("ADMIN_KEY"),
        require_credentials=get("DATABASE_URL") is not None,
        jwt=jwt,
        **_rates_from_env(get),
        sensitive_attributes=tuple(a.strip() for a in sensitive.split(",") if a.strip()),
    )


def _rates_from_env(get: Callable[[str], str | None]) -> dict[str, float]:
    """The rate limits: MDM_RATE_LIMIT_READ / _WRITE and MDM_RATE_BURST_SECONDS.

    MDM_RATE_LIMIT, from before reads and writes were split, still sets both rates
    where the specific one is unset (`MDM_RATE_LIMIT=0` turns limiting off), and
    MDM_RATE_BURST, the burst in requests that went with it, still means that.
    """
    d = AuthSettings()
    both = get("RATE_LIMIT")
    rates = {
        "read_rate": float(get("RATE_LIMIT_READ") or both or d.read_rate),
        "write_rate": float(get("RATE_LIMIT_WRITE") or both or d.write_rate),
        "burst_seconds": float(get("RATE_BURST_SECONDS") or d.burst_seconds),
    }
    burst = get("RATE_BURST")
    if burst is not None:
        if both is None or get("RATE_BURST_SECONDS"):
            raise ValueError(
                "MDM_RATE_BURST (requests) goes with MDM_RATE_LIMIT; with "
                "MDM_RATE_LIMIT_READ / MDM_RATE_LIMIT_WRITE set MDM_RATE_BURST_SECONDS"
            )
        if float(both) > 0:
            rates["burst_seconds"] = float(burst) / float(both)
    if not all(math.isfinite(v) and v >= 0 for v in rates.values()) or rates["burst_seconds"] <= 0:
        raise ValueError(f"rates are numbers >= 0 and the burst's seconds > 0, not {rates}")
    return rates


def _relay_from_env(get: Callable[[str], str | None]) -> RelaySettings:
    d = RelaySettings()

    def seconds(name: str, default: float) -> float:
        value = get(name)
        return parse_duration(value) if value else default

    return RelaySettings(
        enabled=(get("RELAY") or "1").lower() not in {"0", "false", "no", "off"},
        mode="inline" if (get("RELAY") or "").lower() == "inline" else "process",
        stream=get("STREAM") or d.stream,
        subject_prefix=get("SUBJECT_PREFIX") or d.subject_prefix,
        stream_max_age=seconds("STREAM_MAX_AGE", d.stream_max_age),
        stream_replicas=int(get("STREAM_REPLICAS") or d.stream_replicas),
        duplicate_window=seconds("STREAM_DUPLICATE_WINDOW", d.duplicate_window),
        batch_size=int(get("RELAY_BATCH_SIZE") or d.batch_size),
        poll_interval=seconds("RELAY_POLL_INTERVAL", d.poll_interval),
        publish_timeout=seconds("RELAY_PUBLISH_TIMEOUT", d.publish_timeout),
        max_backoff=seconds("RELAY_MAX_BACKOFF", d.max_backoff),
        outbox_retention=seconds("OUTBOX_RETENTION", d.outbox_retention),
        cleanup_interval=seconds("OUTBOX_CLEANUP_INTERVAL", d.cleanup_interval),
        metrics_socket=get("RELAY_METRICS_SOCKET"),
    )


_UNITS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "h": 60 * MINUTE, "d": DAY}


def parse_duration(value: str) -> float:
    """Seconds from `90`, `1.5`, `500ms`, `15m`, `2h` or `7d`."""
    text = value.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _UNITS[unit]
    return float(text)


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
