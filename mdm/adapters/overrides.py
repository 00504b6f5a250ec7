"""Reads and writes of stewards' survivorship overrides: pins and ignores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.tables import golden_pin, source_record, value_ignore
from mdm.domain.survivorship import NO_OVERRIDES, Overrides, Pin


class OverrideStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def overrides(self, golden_ids: Sequence[str]) -> dict[str, Overrides]:
        """The pins of each golden record and the ignores of its live source records."""
        if not golden_ids:
            return {}
        ids = list(golden_ids)
        gp = golden_pin.c
        pins: dict[str, dict[str, Pin]] = {}
        for r in await self.conn.execute(
            select(gp.golden_id, gp.attribute, gp.value, gp.actor, gp.reason).where(
                gp.golden_id.in_(ids)
            )
        ):
            pins.setdefault(r.golden_id, {})[r.attribute] = Pin(r.value, r.actor, r.reason or "")
        sr, vi = source_record.c, value_ignore.c
        ignores: dict[str, set[tuple[str, str, str]]] = {}
        for row in await self.conn.execute(
            select(sr.golden_id, vi.attribute, sr.source, sr.source_id)
            .select_from(value_ignore.join(source_record, sr.id == vi.record_id))
            .where(sr.golden_id.in_(ids), sr.deleted_at.is_(None))
        ):
            ignores.setdefault(row.golden_id, set()).add((row.attribute, row.source, row.source_id))
        out: dict[str, Overrides] = {}
        for golden_id in ids:
            p, i = pins.get(golden_id), ignores.get(golden_id)
            out[golden_id] = Overrides(p or {}, frozenset(i or ())) if p or i else NO_OVERRIDES
        return out

    async def pins(self, golden_id: str) -> list[dict[str, Any]]:
        gp = golden_pin.c
        rows = await self.conn.execute(
            select(gp.attribute, gp.value, gp.actor, gp.reason, gp.inherited_from, gp.created_at)
            .where(gp.golden_id == golden_id)
            .order_by(gp.attribute)
        )
        return [dict(r._mapping) for r in rows]

    async def ignores(self, golden_id: str) -> list[dict[str, Any]]:
        sr, vi = source_record.c, value_ignore.c
        rows = await self.conn.execute(
            select(vi.attribute, sr.source, sr.source_id, vi.actor, vi.reason, vi.created_at)
            .select_from(value_ignore.join(source_record, sr.id == vi.record_id))
            .where(sr.golden_id == golden_id)
            .order_by(vi.attribute, sr.source, sr.source_id)
        )
        return [dict(r._mapping) for r in rows]

    async def set_pin(
        self,
        golden_id: str,
        attribute: str,
        value: Any,
        actor: str,
        reason: str | None,
        at: dt.datetime,
    ) -> None:
        row = {
            "golden_id": golden_id,
            "attribute": attribute,
            "value": value,
            "actor": actor,
            "reason": reason,
            "inherited_from": None,
            "created_at": at,
        }
        stmt = pg_insert(golden_pin).values(row)
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["golden_id", "attribute"],
                set_={k: stmt.excluded[k] for k in row if k not in ("golden_id", "attribute")},
            )
        )

    async def delete_pin(self, golden_id: str, attribute: str) -> bool:
        gp = golden_pin.c
        result = await self.conn.execute(
            delete(golden_pin).where(gp.golden_id == golden_id, gp.attribute == attribute)
        )
        return bool(result.rowcount)

    async def set_ignore(
        self, record_id: int, attribute: str, actor: str, reason: str | None, at: dt.datetime
    ) -> None:
        row = {
            "record_id": record_id,
            "attribute": attribute,
            "actor": actor,
            "reason": reason,
            "created_at": at,
        }
        stmt = pg_insert(value_ignore).values(row)
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["record_id", "attribute"],
                set_={k: stmt.excluded[k] for k in ("actor", "reason", "created_at")},
            )
        )

    async def delete_ignore(self, record_id: int, attribute: str) -> bool:
        vi = value_ignore.c
        result = await self.conn.execute(
            delete(value_ignore).where(vi.record_id == record_id, vi.attribute == attribute)
        )
        return bool(result.rowcount)

    async def inherit_pins(self, losers: Sequence[str], survivor: str) -> None:
        """A merge: the survivor takes each loser pin on an attribute it has none for.

        Two losers pinning one attribute: the first loser in id order wins. The
        losers keep their own rows, so an unmerge that restores one finds them.
        """
        gp = golden_pin.c
        rows = await self.conn.execute(
            select(golden_pin).where(gp.golden_id.in_(list(losers))).order_by(gp.golden_id)
        )
        for r in rows.all():
            stmt = pg_insert(golden_pin).values(
                golden_id=survivor,
                attribute=r.attribute,
                value=r.value,
                actor=r.actor,
                reason=r.reason,
                inherited_from=r.golden_id,
                created_at=r.created_at,
            )
            await self.conn.execute(stmt.on_conflict_do_nothing())

    async def drop_inherited(self, golden_id: str, from_golden: str) -> None:
        """An unmerge that restores `from_golden`: its pins leave the survivor again."""
        gp = golden_pin.c
        await self.conn.execute(
            delete(golden_pin).where(gp.golden_id == golden_id, gp.inherited_from == from_golden)
        )
