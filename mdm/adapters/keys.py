"""API keys in PostgreSQL: create (the key is shown once), find by key, list, revoke."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.tables import api_key

ROLES = ("admin", "steward", "reader", "source")
KEY_PREFIX = "mdm_"


def hash_key(key: str) -> str:
    """SHA-256 of the key. Keys are 256 random bits: no salt or slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh key: `mdm_` and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    name: str
    role: str
    source: str | None
    sensitive: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    # The key's own requests per second (mdm/api/rate_limit.py); None: the hub's defaults.
    read_rate: float | None = None
    write_rate: float | None = None


class KeyStore:
    """The api_key table, on the caller's connection (and transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def create(
        self,
        role: str,
        name: str,
        source: str | None = None,
        sensitive: bool = False,
        read_rate: float | None = None,
        write_rate: float | None = None,
    ) -> tuple[StoredKey, str]:
        """Store a new key; answers it with the key itself, which is never readable again.

        `read_rate` / `write_rate`: the key's own requests per second in place of
        the hub's defaults (0: unlimited; None: the defaults).
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if (role == "source") != (source is not None):
            raise ValueError("a source key needs --source, and only a source key takes one")
        for rate in (read_rate, write_rate):
            if rate is not None and not (math.isfinite(rate) and rate >= 0):
                raise ValueError(f"a rate is a number of requests per second >= 0, not {rate}")
        key = new_key()
        key_id = "key_" + secrets.token_hex(6)
        row = (
            await self.conn.execute(
                insert(api_key)
                .values(
                    key_id=key_id,
                    name=name,
                    role=role,
                    source=source,
                    sensitive=sensitive,
                    key_hash=hash_key(key),
                    read_rate=read_rate,
                    write_rate=write_rate,
                )
                .returning(*_COLUMNS)
            )
        ).one()
        return StoredKey(**row._mapping), key

    async def find(self, key: str) -> StoredKey | None:
        """The live (not revoked) key with this value."""
        row = (
            await self.conn.execute(
                select(*_COLUMNS).where(
                    api_key.c.key_hash == hash_key(key), api_key.c.revoked_at.is_(None)
                )
            )
        ).one_or_none()
        return StoredKey(**row._mapping) if row else None

    async def list(self, include_revoked: bool = False) -> list[StoredKey]:
        query = select(*_COLUMNS).order_by(api_key.c.created_at, api_key.c.key_id)
        if not include_revoked:
            query = query.where(api_key.c.revoked_at.is_(None))
        return [StoredKey(**r._mapping) for r in await self.conn.execute(query)]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key at once; False when no live key has that id."""
        result = await self.conn.execute(
            update(api_key)
            .where(api_key.c.key_id == key_id, api_key.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        return bool(result.rowcount)

    async def any_live(self) -> bool:
        row = (
            await self.conn.execute(select(api_key.c.key_id).where(api_key.c.revoked_at.is_(None)))
        ).first()
        return row is not None


_COLUMNS = (
    api_key.c.key_id,
    api_key.c.name,
    api_key.c.role,
    api_key.c.source,
    api_key.c.sensitive,
    api_key.c.created_at,
    api_key.c.revoked_at,
    api_key.c.read_rate,
    api_key.c.write_rate,
)
