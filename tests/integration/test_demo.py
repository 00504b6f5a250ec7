"""`mdm demo` prints how the hub decided each sample record, read from what it stored."""

from __future__ import annotations

import io
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.demo import probability_text, run_demo
from mdm.settings import Settings


async def stored_links(db: AsyncConnection) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = await db.execute(
        text(
            "SELECT id, entity, source, source_id, golden_id, raw, link_rule, link_probability "
            "FROM source_record WHERE deleted_at IS NULL"
        )
    )
    return {(r.entity, r.source, r.source_id): r._asdict() for r in rows}


async def stored_tasks(db: AsyncConnection) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            "SELECT t.id, t.golden_id, t.candidate_id, t.reason, t.probability, t.status, "
            "s.entity, s.source, s.source_id FROM review_task t "
            "JOIN source_record s ON s.id = t.record_id ORDER BY t.id"
        )
    )
    return [r._asdict() for r in rows]


def record_line(output: str, entity: str, source: str, source_id: str) -> str:
    """The printed decision of one record, with its review-task lines."""
    lines = output.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(f"  {source:4} {entity:12} {source_id:11} -> ")
    )
    end = start + 1
    while lines[end].startswith(" " * 33 + "review task"):
        end += 1
    return "\n".join(lines[start:end])


async def test_the_demo_prints_what_the_hub_stored(
    client: AsyncTestClient, settings: Settings, db: AsyncConnection
) -> None:
    # `client` empties the database; the demo runs its own app on it.
    out = io.StringIO()
    await run_demo(settings, out)
    output = out.getvalue()
    links = await stored_links(db)
    tasks = await stored_tasks(db)

    # The sample exercises each way of deciding.
    acme = links[("customer", "crm", "ACC-1001")]["golden_id"]
    client_9 = links[("customer", "psa", "client-9")]
    assert client_9["golden_id"] == acme
    assert client_9["link_rule"] == "match"
    assert not {"tax_id", "duns"} & client_9["raw"].keys()
    assert any(link["link_rule"] == "strong_key" for link in links.values())
    initech = links[("customer", "crm", "ACC-1002")]["golden_id"]
    [task] = tasks
    assert (task["source"], task["source_id"]) == ("psa", "client-14")
    assert (task["candidate_id"], task["status"]) == (initech, "open")

    # Every record's printed decision is the stored one.
    for (entity, source, source_id), link in links.items():
        printed = record_line(output, entity, source, source_id)
        first = printed.splitlines()[0].split()
        assert first[4] == link["golden_id"]
        assert first[5] == ("created" if link["link_rule"] in ("new", "review") else "linked")
        assert first[6] == f"rule={link['link_rule']}"
        p = link["link_probability"]
        assert first[7:] == ([probability_text(p)] if p is not None else [])
        own = [t for t in tasks if (t["source"], t["source_id"]) == (source, source_id)]
        assert printed.count("review task #") == len(own)
        for t in own:
            assert (
                f"review task #{t['id']} ({t['status']}, {t['reason']}, "
                f"{probability_text(t['probability'])}) against {t['candidate_id']}"
            ) in printed

    # The summary is counted from the same stored results.
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for link in links.values():
        by_rule.setdefault(link["link_rule"], []).append(link)
    created = len(by_rule.get("new", [])) + len(by_rule.get("review", []))
    assert f"  {len(links)} records: " in output
    assert f"{created} created" in output
    assert f"  {len(by_rule['strong_key'])} linked by a shared identifier\n" in output
    matched = sorted(probability_text(link["link_probability"]) for link in by_rule["match"])
    [line] = [line for line in output.splitlines() if "by the probabilistic matcher" in line]
    assert line.startswith(f"  {len(matched)} linked by the probabilistic matcher (")
    assert sorted(line.split("(")[1].rstrip(")").split(", ")) == matched
    asked = ", ".join(
        f"{t['source']}:{t['source_id']} {probability_text(t['probability'])}" for t in tasks
    )
    assert f"  {len(tasks)} review task opened for a steward ({asked})\n" in output
    assert "Note:" not in output
