"""Data-quality rules across entities, computed by SQL over the current golden records.

They flag; they never change or drop data. Each rule is one SELECT giving
(rule, entity, golden_id, field, related_golden_id, message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

RULES: dict[str, str] = {
    # A project whose customer is inactive.
    "project_customer_inactive": (
        "SELECT 'project_customer_inactive', 'project', p.golden_id, 'customer_ref', t.golden_id,"
        " 'the customer ' || t.golden_id || ' is inactive'"
        " FROM golden_record p"
        " JOIN golden_reference r ON r.golden_id = p.golden_id AND r.field = 'customer_ref'"
        " JOIN golden_record t ON t.golden_id = r.target_golden_id"
        " WHERE p.entity = 'project' AND p.status = 'active'"
        " AND t.attributes->>'status' = 'inactive'"
    ),
    # A terminated worker still named as a project's manager.
    "terminated_project_manager": (
        "SELECT 'terminated_project_manager', 'project', p.golden_id, 'project_manager_ref',"
        " t.golden_id, 'the project manager ' || t.golden_id || ' is terminated'"
        " FROM golden_record p"
        " JOIN golden_reference r ON r.golden_id = p.golden_id AND r.field = 'project_manager_ref'"
        " JOIN golden_record t ON t.golden_id = r.target_golden_id"
        " WHERE p.entity = 'project' AND p.status = 'active'"
        " AND t.attributes->>'status' = 'terminated'"
    ),
    # A terminated worker still named as a worker's manager.
    "terminated_manager": (
        "SELECT 'terminated_manager', 'worker', w.golden_id, 'manager_ref', t.golden_id,"
        " 'the manager ' || t.golden_id || ' is terminated'"
        " FROM golden_record w"
        " JOIN golden_reference r ON r.golden_id = w.golden_id AND r.field = 'manager_ref'"
        " JOIN golden_record t ON t.golden_id = r.target_golden_id"
        " WHERE w.entity = 'worker' AND w.status = 'active'"
        " AND t.attributes->>'status' = 'terminated'"
    ),
    # A project with no legal entity the hub knows (none stated, or one still pending).
    "project_without_legal_entity": (
        "SELECT 'project_without_legal_entity', 'project', p.golden_id, 'legal_entity_ref', NULL,"
        " CASE WHEN r.golden_id IS NULL THEN 'the project names no legal entity'"
        " ELSE 'the legal entity ' || r.source || ' ' || r.source_id || ' is not known yet' END"
        " FROM golden_record p"
        " LEFT JOIN golden_reference r ON r.golden_id = p.golden_id"
        " AND r.field = 'legal_entity_ref'"
        " WHERE p.entity = 'project' AND p.status = 'active' AND r.target_golden_id IS NULL"
    ),
    # A worker without a cost rate.
    "worker_without_cost_rate": (
        "SELECT 'worker_without_cost_rate', 'worker', w.golden_id, 'cost_rate', NULL,"
        " 'the worker has no cost rate'"
        " FROM golden_record w"
        " WHERE w.entity = 'worker' AND w.status = 'active' AND w.attributes->'cost_rate' IS NULL"
    ),
}

_FOUND = (
    "WITH found(rule, entity, golden_id, field, related_golden_id, message) AS ("
    + " UNION ALL ".join(f"({q})" for q in RULES.values())
    + ")"
)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    entity: str
    golden_id: str
    field: str
    related_golden_id: str | None
    message: str


async def find_exceptions(
    conn: AsyncConnection,
    entity: str | None,
    rule: str | None,
    golden_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Finding], int, dict[str, int]]:
    """Findings matching the filters (a page of them), their total, and counts per rule."""
    where, params = ["TRUE"], dict[str, Any](limit=limit, offset=offset)
    if entity is not None:
        where.append("entity = :entity")
        params["entity"] = entity
    if golden_id is not None:
        where.append("golden_id = :golden_id")
        params["golden_id"] = golden_id
    condition = " AND ".join(where)
    counts_rows = await conn.execute(
        text(f"{_FOUND} SELECT rule, count(*) FROM found WHERE {condition} GROUP BY rule"), params
    )
    counts = {r: 0 for r in RULES} | {r: int(n) for r, n in counts_rows}
    if rule is not None:
        where.append("rule = :rule")
        params["rule"] = rule
    rows = await conn.execute(
        text(
            f"{_FOUND} SELECT * FROM found WHERE {' AND '.join(where)} "
            "ORDER BY rule, golden_id LIMIT :limit OFFSET :offset"
        ),
        params,
    )
    total = counts.get(rule, 0) if rule is not None else sum(counts.values())
    return [Finding(*r) for r in rows], total, counts
