"""The business dashboard's and the steward search's reads: counts over the hub's tables."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

# Age buckets of open review tasks, youngest first.
_REVIEW_AGES = text(
    """
    SELECT entity,
           CASE WHEN age < interval '1 hour' THEN 'under_1h'
                WHEN age < interval '1 day' THEN '1h_to_1d'
                WHEN age < interval '7 days' THEN '1d_to_7d'
                ELSE 'over_7d' END AS bucket,
           count(*) AS n
    FROM (SELECT entity, clock_timestamp() - created_at AS age
          FROM review_task WHERE status IN ('open', 'deferred')) t
    GROUP BY 1, 2 ORDER BY 1, 2
    """
)

_COUNTS = {
    "records": "SELECT entity, source, count(*) FROM source_record "
    "WHERE deleted_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
    "golden": "SELECT entity, status, count(*) FROM golden_record GROUP BY 1, 2 ORDER BY 1, 2",
    "match_outcomes": "SELECT entity, link_rule, count(*) FROM source_record "
    "WHERE deleted_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
    "review_outcomes": "SELECT entity, status, count(*) FROM review_task "
    "GROUP BY 1, 2 ORDER BY 1, 2",
    "quality_warnings": "SELECT s.entity, w->>'code', count(*) FROM source_record s "
    "CROSS JOIN LATERAL jsonb_array_elements(s.warnings) AS w "
    "WHERE s.deleted_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
}

# A display name: the entity's name, or a worker's given and family names.
_NAME_PARTS = ("given_name", "family_name")


@functools.cache
def _search_statements(hidden: frozenset[str]) -> tuple[TextClause, TextClause]:
    """The searches by source id and by golden id or name, with a display name (and a
    name to search) made of the name attributes not in `hidden`."""
    parts = ", ".join(f"g.attributes->>'{p}'" for p in _NAME_PARTS if p not in hidden)
    full = f"nullif(concat_ws(' ', {parts}), '')" if parts else "CAST(NULL AS text)"
    name = full if "name" in hidden else f"coalesce(g.attributes->>'name', {full})"
    by_id = text(
        f"""
        SELECT DISTINCT ON (g.golden_id) g.golden_id, g.entity, g.status, g.merged_into,
               {name} AS name, s.source || ':' || s.source_id AS matched
        FROM source_record s JOIN golden_record g ON g.golden_id = s.golden_id
        WHERE (s.source_id = :q OR s.source || ':' || s.source_id = :q)
          AND (CAST(:entity AS text) IS NULL OR s.entity = :entity)
        ORDER BY g.golden_id
        LIMIT :limit
        """
    )
    by_name = text(
        f"""
        SELECT g.golden_id, g.entity, g.status, g.merged_into, {name} AS name,
               CASE WHEN g.golden_id = :q THEN 'golden_id' ELSE 'name' END AS matched
        FROM golden_record g
        WHERE g.status <> 'merged'
          AND (CAST(:entity AS text) IS NULL OR g.entity = :entity)
          AND (g.golden_id = :q OR {name} ILIKE :pattern)
        ORDER BY (g.golden_id = :q) DESC, {name}, g.golden_id
        LIMIT :limit
        """
    )
    return by_id, by_name


class DashboardStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def counts(self) -> dict[str, list[tuple[str, str, int]]]:
        out: dict[str, list[tuple[str, str, int]]] = {}
        for name, sql in _COUNTS.items():
            rows = await self.conn.execute(text(sql))
            out[name] = [(str(a), str(b), int(n)) for a, b, n in rows]
        out["open_reviews_by_age"] = [
            (r.entity, r.bucket, int(r.n)) for r in await self.conn.execute(_REVIEW_AGES)
        ]
        return out

    async def search(
        self, q: str, entity: str | None, limit: int, hidden: frozenset[str] = frozenset()
    ) -> list[dict[str, Any]]:
        """Golden records whose source id (or `source:source_id`), id or name matches `q`.

        Name attributes in `hidden` (the sensitive ones, for a caller without the
        grant) are neither searched nor shown.
        """
        by_id, by_name = _search_statements(hidden & {"name", *_NAME_PARTS})
        params = {"q": q, "entity": entity, "limit": limit}
        hits = [dict(r._mapping) for r in await self.conn.execute(by_id, params)]
        seen = {h["golden_id"] for h in hits}
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self.conn.execute(by_name, {**params, "pattern": f"%{escaped}%"})
        hits += [dict(r._mapping) for r in rows if r.golden_id not in seen]
        return hits[:limit]
