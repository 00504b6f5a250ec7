"""`mdm load`: a bulk load gives what the batch API gives, resumes, reports bad rows."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.bulk import bulk_load
from mdm.adapters.bulk_files import Row, read_rows
from mdm.adapters.repository import Repository
from mdm.bootstrap import load_rules, make_engine
from tests.support import scratch_database

GIVEN = ["William", "Anna", "Jürgen", "Maria", "Robert", "Elizabeth", "Thomas", "Sofia"]
NICK = {"William": "Bill", "Robert": "Bob", "Elizabeth": "Liz", "Thomas": "Tom"}
FAMILY = ["Okafor", "Schmidt", "Nguyen", "Kowalski", "Brennan", "Rossi", "Haddad", "Lindqvist"]
# Three places only: the postal-code and city keys pass the generic cap (50 live
# records) during the load, so the cap's bookkeeping is exercised too.
PLACES = [("79098", "Freiburg", "DE"), ("SW1A 1AA", "London", "GB")]
ANNA = {"given_name": "Annika", "family_name": "Berglund-Moreau", "date_of_birth": "1980-01-07"}
# Placed in different chunks of 100 (index: record): B starts as a placeholder and is
# corrected later (an update keeps its golden record), then C matches both golden
# records, which match each other, so the matcher merges B's into A's; D comes after,
# and E has B's e-mail (a strong key whose golden record C's chunk merged away).
# A load plans a chunk while the previous one is still being written: G shares only
# an e-mail and the family name with F of the chunk before, which the database does
# not show yet.
MERGE_STORY = {
    50: ("B", {"family_name": "Placeholder"}),
    150: ("A", ANNA),
    250: ("B", {**ANNA, "email": "annika@example.com"}),
    350: ("C", ANNA),
    450: ("D", {**ANNA, "given_name": "Anika"}),
    460: ("E", {"given_name": "A.", "family_name": "Moreau", "email": "annika@example.com"}),
    550: (
        "F",
        {
            "given_name": "Fiona",
            "family_name": "Achterberg",
            "date_of_birth": "1970-03-03",
            "email": "shared.mailbox@example.com",
        },
    ),
    660: (
        "G",
        {"given_name": "F.", "family_name": "Achterberg", "email": "shared.mailbox@example.com"},
    ),
}


def _typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name))
    return name[:i] + name[i + 1 :] if rng.random() < 0.5 else name[:i] + name[i] + name[i:]


def workers(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Seeded HCM-style workers, a third of them near-duplicates of earlier ones."""
    rng = random.Random(seed)
    people: list[dict[str, Any]] = []
    items = []
    for i in range(n):
        if people and rng.random() < 0.35:
            base = rng.choice(people)
            attrs = json.loads(json.dumps(base))
            attrs.pop("email", None)
            if rng.random() < 0.5:
                attrs["family_name"] = _typo(attrs["family_name"], rng)
            else:
                attrs["given_name"] = NICK.get(attrs["given_name"], attrs["given_name"][0])
            if rng.random() < 0.3:
                attrs.pop("date_of_birth", None)
        else:
            postal, city, country = rng.choice(PLACES)
            given, family = rng.choice(GIVEN), rng.choice(FAMILY) + rng.choice(["", "-Berg", "er"])
            attrs = {
                "given_name": given,
                "family_name": family,
                "date_of_birth": f"19{rng.randrange(60, 99)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d}",
                "email": f"{given[0].lower()}.{family.lower()}{i}@example.com",
                "address": {"postal_code": postal, "city": city, "country": country},
                "cost_rate": {"amount": rng.choice([95.5, 120.0, 150.25]), "currency": "EUR"},
            }
            people.append(attrs)
        items.append({"source_id": f"W{i:05d}", "attributes": attrs})
    for i, (sid, attrs) in MERGE_STORY.items():
        if i < n:
            items.insert(i, {"source_id": f"ANNA-{sid}", "attributes": attrs})
    return items


async def partition(url: str) -> dict[str, Any]:
    """What a load decided, without the (random) golden ids: groups, rules, reviews."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT source_id, golden_id, link_rule FROM source_record "
                    "WHERE deleted_at IS NULL"
                )
            )
        ).all()
        members: dict[str, set[str]] = {}
        for sid, golden, _ in rows:
            members.setdefault(golden, set()).add(sid)
        group = {g: frozenset(ms) for g, ms in members.items()}
        reviews = (
            await conn.execute(
                text(
                    "SELECT s.source_id, r.golden_id, r.candidate_id, r.reason FROM review_task r "
                    "JOIN source_record s ON s.id = r.record_id"
                )
            )
        ).all()
        goldens = (await conn.execute(text("SELECT count(*) FROM golden_record"))).scalar()
        events = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar()
        merges = (await conn.execute(text("SELECT count(*) FROM merge_event"))).scalar()
        generic = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT key FROM match_key GROUP BY key "
                    "HAVING count(*) > 50) AS k"
                )
            )
        ).scalar()
    await engine.dispose()
    return {
        "groups": {frozenset(ms) for ms in members.values()},
        "rules": {sid: rule for sid, _, rule in rows},
        # A task's two golden records as an unordered pair (None: merged away since): of
        # two golden records born in one millisecond, which one a merge keeps depends on
        # the random bits of their ids, not on any decision.
        "reviews": {
            (sid, frozenset((group.get(g), group.get(c))), reason) for sid, g, c, reason in reviews
        },
        "goldens": goldens,
        "events": events,
        "merges": merges,
        "generic": generic,
    }


@pytest.fixture
async def scratch(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


async def stored_goldens_survive(url: str) -> int:
    """Check every active golden record against survivorship over its stored source
    records; answer how many were checked."""
    rules = load_rules()
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        repo = Repository(conn)
        ids = list(
            (
                await conn.execute(
                    text("SELECT golden_id FROM golden_record WHERE status = 'active'")
                )
            ).scalars()
        )
        contributions = await repo.contributions(ids)
        survive = rules.survivorship_for("worker")
        for golden_id in ids:
            stored = await repo.golden(golden_id)
            assert stored is not None
            expected = survive(contributions[golden_id])
            assert (stored.attributes, stored.provenance) == (
                expected.attributes,
                expected.provenance,
            ), golden_id
    await engine.dispose()
    return len(ids)


async def test_a_bulk_load_decides_what_the_batch_api_decides(
    client: AsyncTestClient, database_url: str, scratch: str, server_database_url: str
) -> None:
    items = workers(1000)
    for start in range(0, len(items), 100):
        response = await client.post(
            "/v1/sources/hcm/worker/batch", json=items[start : start + 100]
        )
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == 0
    through_api = await partition(database_url)

    engine = make_engine(scratch, pool_size=1)
    rows = [Row(i + 1, item) for i, item in enumerate(items)]
    report = await bulk_load(engine, load_rules(), "worker", "hcm", rows, chunk_size=100)
    await engine.dispose()
    bulk = await partition(scratch)
    # Everything in one process (no preparing process) decides the same.
    async with scratch_database(server_database_url) as alone:
        engine = make_engine(alone, pool_size=1)
        await bulk_load(engine, load_rules(), "worker", "hcm", rows, chunk_size=100, processes=0)
        await engine.dispose()
        assert await partition(alone) == bulk
    # Golden records created in a unit of work get their survivorship inputs from
    # memory: they must be what survivorship over the stored records gives.
    assert await stored_goldens_survive(database_url) > 400
    assert await stored_goldens_survive(scratch) > 400

    assert report.read == 1008 and report.rejected == 0 and report.chunks == 11
    # The data exercises matching: many records joined another's golden record, keys
    # became generic, and the matcher merged two golden records of earlier chunks.
    assert report.outcomes.get("linked", 0) > 200
    assert {"ANNA-A", "ANNA-B", "ANNA-C", "ANNA-D", "ANNA-E"} in bulk["groups"]
    assert {"ANNA-F", "ANNA-G"} in bulk["groups"]
    assert bulk["rules"]["ANNA-G"] == bulk["rules"]["ANNA-E"] == "strong_key"
    assert bulk["merges"] == through_api["merges"] >= 1
    assert bulk["generic"] > 0
    assert bulk["rules"] == through_api["rules"]
    assert bulk["groups"] == through_api["groups"]
    assert bulk["reviews"] == through_api["reviews"]
    assert (bulk["goldens"], bulk["events"]) == (through_api["goldens"], through_api["events"])


def _mdm(
    args: list[str], url: str, extra: dict[str, str] | None = None, **kw: Any
) -> subprocess.Popen[str]:
    env = {**os.environ, "MDM_DATABASE_URL": url, "MDM_LOG_LEVEL": "WARNING", **(extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "mdm.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


async def _count(url: str, sql: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        found = (await conn.execute(text(sql))).scalar_one()
    await engine.dispose()
    return int(found)


async def test_mdm_load_reports_bad_lines_and_a_second_run_changes_nothing(
    tmp_path: Path, scratch: str
) -> None:
    items = workers(150, seed=9)
    lines = [json.dumps(item) for item in items]
    lines.insert(10, "{not json")
    lines.insert(20, json.dumps({"source_id": "BAD-1", "attributes": {"date_of_birth": "1990"}}))
    path = tmp_path / "workers.ndjson"
    path.write_text("\n".join(lines) + "\n")
    args = ["load", "--source", "hcm", "--entity", "worker", "--quiet", str(path)]

    first = _mdm(args, scratch)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert f"read {len(items) + 2}" in out and "rejected 2" in out, out
    rejects = [
        json.loads(x)
        for x in (tmp_path / "workers.ndjson.rejects.ndjson").read_text().split("\n")
        if x
    ]
    assert [r["line"] for r in rejects] == [11, 21]
    assert rejects[1]["source_id"] == "BAD-1"
    assert {e["path"] for e in rejects[1]["errors"]} <= {
        "$.attributes",
        "$.attributes.date_of_birth",
    }
    stored = await _count(scratch, "SELECT count(*) FROM source_record")
    versions = await _count(scratch, "SELECT count(*) FROM golden_record_history")
    assert stored == len(items)

    again = _mdm(args, scratch)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert f"already stored {len(items)}" in out, out
    assert await _count(scratch, "SELECT count(*) FROM source_record") == stored
    assert await _count(scratch, "SELECT count(*) FROM golden_record_history") == versions


async def test_a_load_killed_half_way_finishes_on_the_next_run_as_if_never_killed(
    tmp_path: Path, server_database_url: str, scratch: str
) -> None:
    items = workers(3000, seed=11)
    path = tmp_path / "big.ndjson"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    args = ["load", "--source", "hcm", "--entity", "worker", "--quiet", "--chunk", "100"]
    args += ["--no-train", str(path)]  # the load alone: training would follow both runs alike

    victim = _mdm(args, scratch, start_new_session=True)
    deadline = time.monotonic() + 240
    while await _count(scratch, "SELECT count(*) FROM source_record") < 300:
        assert victim.poll() is None, "the load ended before it could be killed"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    done = await _count(scratch, "SELECT count(*) FROM source_record")
    # Whole chunks only: the distinct source ids of the first k chunks of 100 rows.
    whole_chunks = {
        len({item["source_id"] for item in items[: k * 100]}) for k in range(len(items) // 100)
    }
    assert 300 <= done < len(items) and done in whole_chunks

    resumed = _mdm(args, scratch)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    # Everything committed is skipped, but ANNA-B's first row (its content was since
    # replaced by a later row of the file) when that later row was committed too.
    skipped = int(re.search(r"already stored ([\d,]+)", out).group(1).replace(",", ""))
    assert skipped in (done, done - 1), out

    async with scratch_database(server_database_url) as clean:
        whole = _mdm(args, clean)
        out, _ = whole.communicate(timeout=600)
        assert whole.returncode == 0, out
        expected = await partition(clean)
    got = await partition(scratch)
    assert got["groups"] == expected["groups"]
    assert got["rules"] == expected["rules"]
    assert got["reviews"] == expected["reviews"]


async def test_csv_and_parquet_rows_store_what_ndjson_stores(
    tmp_path: Path, server_database_url: str
) -> None:
    items = workers(40, seed=3)
    flat = []
    for item in items:
        row: dict[str, Any] = {"source_id": item["source_id"]}
        for k, v in item["attributes"].items():
            if isinstance(v, dict):
                row.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                row[k] = v
        flat.append(row)
    columns = sorted({c for r in flat for c in r})
    ndjson = tmp_path / "w.ndjson"
    ndjson.write_text("".join(json.dumps(i) + "\n" for i in items))
    with (tmp_path / "w.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
    nested = [
        {"source_id": i["source_id"], **{k: v for k, v in i["attributes"].items()}} for i in items
    ]
    pq.write_table(pa.Table.from_pylist(nested), tmp_path / "w.parquet")
    assert len(list(read_rows(tmp_path / "w.csv", "csv"))) == 40

    stored = {}
    for name in ("w.ndjson", "w.csv", "w.parquet"):
        async with scratch_database(server_database_url) as url:
            run = _mdm(
                ["load", "--source", "hcm", "--entity", "worker", "--quiet", str(tmp_path / name)],
                url,
            )
            out, _ = run.communicate(timeout=300)
            assert run.returncode == 0 and "rejected 0" in out, out
            engine = create_async_engine(url)
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT source_id, standardized FROM source_record ORDER BY source_id")
                )
                stored[name] = [(r.source_id, r.standardized) for r in rows]
            await engine.dispose()
    assert len(stored["w.ndjson"]) == 40
    assert stored["w.csv"] == stored["w.ndjson"]
    assert stored["w.parquet"] == stored["w.ndjson"]


async def test_a_load_refreshes_the_planner_statistics_of_its_key_columns(
    scratch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where autovacuum is off or behind, the load refreshes the statistics itself,
    beside the next chunks; only the columns its statements filter and join on."""
    import mdm.adapters.bulk as bulk

    monkeypatch.setattr(bulk, "ANALYZE_EVERY", 100)
    engine = make_engine(scratch, pool_size=1)
    rows = [Row(i + 1, item) for i, item in enumerate(workers(300))]
    report = await bulk_load(engine, load_rules(), "worker", "hcm", rows, chunk_size=100)
    # No refresh is left running. (Not proof that the load waits for the last one:
    # in a load this small it also finishes during the load's own clean-up.)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await engine.dispose()
    assert report.rejected == 0 and report.written == 303
    engine = create_async_engine(scratch)
    async with engine.connect() as conn:
        analyzed = {
            (table, column)
            for table, column in await conn.execute(
                text(
                    "SELECT tablename, attname FROM pg_stats WHERE tablename IN "
                    "('match_key', 'source_record', 'golden_record')"
                )
            )
        }
    await engine.dispose()
    # the refreshes that fell due ran over the key columns
    assert {("match_key", "key"), ("source_record", "source_id")} <= analyzed
    assert {("golden_record", "golden_id"), ("source_record", "golden_id")} <= analyzed
    # and left the documents alone
    assert not analyzed & {("source_record", "raw"), ("golden_record", "attributes")}


async def test_mdm_load_keeps_configured_sensitive_attributes_out_of_events(
    tmp_path: Path, scratch: str
) -> None:
    items = [
        {
            "source_id": f"N{i}",
            "attributes": {"family_name": family, "employee_number": f"EMP-{i:04d}"},
        }
        for i, family in enumerate(FAMILY)
    ]
    path = tmp_path / "workers.ndjson"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    args = ["load", "--source", "hcm", "--entity", "worker", "--quiet", str(path)]

    loaded = _mdm(args, scratch, extra={"MDM_SENSITIVE_ATTRIBUTES": "employee_number"})
    out, _ = loaded.communicate(timeout=300)
    assert loaded.returncode == 0, out
    engine = create_async_engine(scratch)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT envelope::text, envelope FROM outbox"))).all()
    await engine.dispose()
    assert len(rows) == len(items)
    for raw, envelope in rows:
        assert "EMP-" not in raw, raw
        assert "employee_number" not in envelope["payload"]["attributes"]
        assert envelope["payload"]["withheld"] == ["employee_number"]


def test_a_load_line_nested_too_deeply_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "w.ndjson"
    good = json.dumps({"source_id": "W-1", "attributes": {"family_name": "Okafor"}})
    path.write_text(good + "\n" + "[" * 10_000 + "]" * 10_000 + "\n" + good + "\n")
    rows = list(read_rows(path, "ndjson"))
    assert [(r.line, r.item is None) for r in rows] == [(1, False), (2, True), (3, False)]
    assert "nested too deeply" in (rows[1].error or "")


def test_a_load_line_with_a_key_twice_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "w.ndjson"
    good = json.dumps({"source_id": "W-1", "attributes": {"family_name": "Okafor"}})
    twice = '{"source_id": "W-2", "attributes": {"family_name": "A", "family_name": "B"}}'
    path.write_text(good + "\n" + twice + "\n")
    rows = list(read_rows(path, "ndjson"))
    assert [(r.line, r.item is None) for r in rows] == [(1, False), (2, True)]
    assert "more than once in this object (at $.attributes.family_name)" in (rows[1].error or "")


async def test_a_load_after_an_id_was_registered_back_matches_as_the_api_does(
    client: AsyncTestClient, database_url: str
) -> None:
    # The registered record (no attributes) was read into the load's index as a member
    # without features (JSON null), and matching against it failed the load.
    attributes = {
        "family_name": "Okafor",
        "given_name": "Ada",
        "date_of_birth": "1980-01-07",
        "address": {"city": "Berlin", "postal_code": "10115"},
    }
    put = await client.put("/v1/sources/hcm/worker/W-1", json={"attributes": attributes})
    golden_id = put.json()["golden_id"]
    registered = await client.put(f"/v1/xref/worker/{golden_id}/psa", json={"source_id": "R-1"})
    assert registered.status_code == 200, registered.text
    engine = make_engine(database_url, pool_size=1)
    rows = [Row(1, {"source_id": "E-1", "attributes": {**attributes, "given_name": "Ada M."}})]
    report = await bulk_load(engine, load_rules(), "worker", "erp", rows, processes=0)
    await engine.dispose()
    assert report.rejected == 0, report
    xref = await client.get("/v1/xref/worker/erp/E-1")
    assert xref.json()["golden_id"] == golden_id, xref.text


async def test_a_loaded_id_holding_a_slash_is_addressable_through_the_api(
    client: AsyncTestClient, database_url: str
) -> None:
    engine = make_engine(database_url, pool_size=1)
    rows = [Row(1, {"source_id": "INV/2024/001", "attributes": {"family_name": "Okafor"}})]
    report = await bulk_load(engine, load_rules(), "worker", "erp", rows, processes=0)
    await engine.dispose()
    assert report.outcomes == {"created": 1}, report
    path = "/v1/sources/erp/worker/INV%2F2024%2F001"
    updated = await client.put(path, json={"attributes": {"family_name": "Okafor-Ade"}})
    assert (updated.status_code, updated.json()["outcome"]) == (200, "linked"), updated.text
    assert (await client.get("/v1/xref/worker/erp/INV%2F2024%2F001")).status_code == 200
    assert (await client.delete(path)).json()["outcome"] == "deleted"
