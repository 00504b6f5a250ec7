"""Re-matching what the hub holds under a new model (`mdm rematch`, the rematch API),
on a real PostgreSQL.

The records are loaded under a strict first model (every duplicate stays split, no
review task); then the packaged model is stored as a fitted version 2, under which
four pairs match at or above auto_link and two fall in the review band.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from matching.model import default_model
from mdm.adapters.matching import MatchStore
from mdm.adapters.rematch import RematchStore
from mdm.adapters.unit_of_work import SqlUnits
from mdm.bootstrap import Hub, make_engine
from mdm.domain.stored import Run
from mdm.services import rematch as rematch_service
from mdm.services.rematch import Rematch
from tests.support import MakeClient, truncate_hub_tables

# (hcm record, psa record) of one person each.
SAME = {
    "okonkwo": (
        {
            "given_name": "William",
            "family_name": "Okonkwo-Brandt",
            "date_of_birth": "1984-03-17",
            "address": {
                "line1": "Rosenweg 12",
                "city": "Freiburg",
                "postal_code": "79098",
                "country": "DE",
            },
        },
        {
            "given_name": "Bill",
            "family_name": "Okonkwo-Brandtt",
            "date_of_birth": "1984-03-17",
            "address": {"city": "Freiburg", "postal_code": "79098", "country": "DE"},
        },
    ),
    "annika": (
        {"given_name": "Annika", "family_name": "Berglund-Moreau", "date_of_birth": "1980-01-07"},
        {"given_name": "Annika", "family_name": "Berglund-Moreauu", "date_of_birth": "1980-01-07"},
    ),
    "ada": (
        {"given_name": "Ada", "family_name": "Lovelace", "date_of_birth": "1950-01-10"},
        {"given_name": "Ada", "family_name": "Lovelacee", "date_of_birth": "1950-01-10"},
    ),
    "ingrid": (
        {"given_name": "Ingrid", "family_name": "Solheim-Abara", "date_of_birth": "1988-11-30"},
        {"given_name": "Ingrid", "family_name": "Solheim Abara", "date_of_birth": "1988-11-30"},
    ),
}
# Pairs the packaged model puts in the review band (0.5 <= p < 0.99) in a small store
# (its prior at the cap, matching.model.PRIOR_CAP).
LIKELY = {
    "katarzyna": (  # the same full name, one without a birth date
        {
            "given_name": "Katarzyna",
            "family_name": "Wieczorek-Lindqvist",
            "date_of_birth": "1979-06-02",
        },
        {"given_name": "Katarzyna", "family_name": "Wieczorek-Lindqvist"},
    ),
    "tomasz": (  # a nickname in the same town, one without a birth date
        {
            "given_name": "Tomasz",
            "family_name": "Grabowski-Ferreira",
            "date_of_birth": "1975-08-21",
            "address": {"city": "Freiburg", "country": "DE"},
        },
        {
            "given_name": "Tom",
            "family_name": "Grabowski-Ferreira",
            "address": {"city": "Freiburg", "country": "DE"},
        },
    ),
}
PEOPLE = {**SAME, **LIKELY}


async def put(client: AsyncTestClient, source: str, source_id: str, attrs: dict) -> str:
    response = await client.put(
        f"/v1/sources/{source}/worker/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    assert response.json()["review"] == []
    return str(response.json()["golden_id"])


async def store_version_1(
    client: AsyncTestClient, database_url: str, auto_link: float, review: float
) -> None:
    """The packaged worker model with these thresholds and its fixed prior (1e-5), as
    version 1 of the hub's model."""
    model = default_model("worker").to_dict()
    model["thresholds"] = {"auto_link": auto_link, "review": review}
    del model["matches_per_record"]
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await MatchStore(conn).ensure_model("worker", 1, model)
    await engine.dispose()
    client.app.state.hub.rules.models.forget()


async def load_split(client: AsyncTestClient, database_url: str) -> dict[str, tuple[str, str]]:
    """Every person's two records under a strict version 1: two golden records each."""
    await store_version_1(client, database_url, 0.99999, 0.9999)  # nothing in the band
    goldens = {}
    for name, (hcm, psa) in PEOPLE.items():
        goldens[name] = (
            await put(client, "hcm", f"H-{name}", hcm),
            await put(client, "psa", f"P-{name}", psa),
        )
    assert len({g for pair in goldens.values() for g in pair}) == 2 * len(PEOPLE)
    return goldens


async def fit_packaged(client: AsyncTestClient, database_url: str) -> None:
    """Store the packaged model as version 2, as `mdm train` stores a fitted one."""
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await MatchStore(conn).add_model(
            "worker", default_model("worker").to_dict(), {}, 2 * len(PEOPLE)
        )
    await engine.dispose()
    client.app.state.hub.rules.models.forget()


async def rematch(database_url: str, hub: Hub, chunk: int = 3) -> Run:
    """A run in this process (the app's engine belongs to the test client's loop)."""
    engine = make_engine(database_url, pool_size=2)
    try:
        run = await Rematch.claim(SqlUnits(engine), hub.rules, "worker")
        return await run.run(chunk)
    finally:
        await engine.dispose()


async def count(db: AsyncConnection, table: str) -> int:
    return int((await db.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def xref_golden(client: AsyncTestClient, source: str, source_id: str) -> str:
    response = await client.get(f"/v1/xref/worker/{source}/{source_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["golden_id"])


async def test_rematch_merges_what_now_matches_and_asks_about_the_review_band(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    hub: Hub = client.app.state.hub
    goldens = await load_split(client, database_url)
    # A steward merged Annika's two records and took them apart again: not a match.
    annika_psa = goldens["annika"][1]
    survivor, loser = sorted(goldens["annika"])
    merged = await client.post(
        "/v1/golden/worker/merge",
        json={"survivor_id": survivor, "loser_ids": [loser], "actor": "kim"},
    )
    assert merged.status_code == 200, merged.text
    psa_side = {"source": "psa", "source_id": "P-annika"}
    if annika_psa == survivor:
        psa_side = {"source": "hcm", "source_id": "H-annika"}
    unmerged = await client.post(
        f"/v1/golden/worker/{survivor}/unmerge", json={"records": [psa_side], "actor": "kim"}
    )
    assert unmerged.status_code == 200, unmerged.text
    # A steward's value for William's golden record.
    older, newer = sorted(goldens["okonkwo"])
    pinned = await client.put(
        f"/v1/golden/worker/{older}/pins/given_name", json={"value": "Wilhelm", "actor": "kim"}
    )
    assert pinned.status_code in (200, 201), pinned.text
    await fit_packaged(client, database_url)
    events_before = await count(db, "outbox")
    merges_before = await count(db, "merge_event")

    run = await rematch(database_url, hub)

    assert (run.status, run.model_version, run.merged, run.reviews) == ("finished", 2, 3, 2)
    assert run.done == run.total == 2 * len(PEOPLE)
    for name in ("okonkwo", "ada", "ingrid"):
        first, second = sorted(goldens[name])
        assert await xref_golden(client, "hcm", f"H-{name}") == first  # the older survives
        assert await xref_golden(client, "psa", f"P-{name}") == first
        moved = await client.get(f"/v1/golden/worker/{second}", follow_redirects=False)
        assert moved.status_code == 301
    # Kept apart by the steward: neither merged nor asked about.
    assert await xref_golden(client, "hcm", "H-annika") != await xref_golden(
        client, "psa", "P-annika"
    )
    # The pin stays, and still wins.
    golden = (await client.get(f"/v1/golden/worker/{older}")).json()
    assert golden["attributes"]["given_name"] == "Wilhelm"

    rows = (
        await db.execute(
            text("SELECT survivor_id, loser_ids, actor, reason FROM merge_event ORDER BY id")
        )
    ).all()[merges_before:]
    assert sorted((r.survivor_id, tuple(r.loser_ids)) for r in rows) == sorted(
        (min(goldens[n]), (max(goldens[n]),)) for n in ("okonkwo", "ada", "ingrid")
    )
    assert {r.actor for r in rows} == {"matcher"}
    assert all("model version 2" in r.reason for r in rows)
    events = (
        await db.execute(
            text("SELECT type, golden_id, envelope FROM outbox ORDER BY id OFFSET :n"),
            {"n": events_before},
        )
    ).all()
    assert Counter(e.type for e in events) == {
        "golden.merged": 3,
        "golden.lost_merge": 3,
        "review.opened": 2,
    }
    for e in events:
        if e.type.startswith("golden."):
            assert e.envelope["causation"]["kind"] == "system"
            assert e.envelope["causation"]["actor"] == "matcher"

    tasks = (
        await db.execute(
            text(
                "SELECT golden_id, candidate_id, reason, status, model_version FROM review_task"
                " ORDER BY id"
            )
        )
    ).all()
    assert sorted((t.candidate_id, t.golden_id) for t in tasks) == sorted(
        tuple(sorted(goldens[n])) for n in LIKELY
    )
    assert {(t.reason, t.status, t.model_version) for t in tasks} == {("review_band", "open", 2)}

    # Nothing changed since: a second run changes nothing and announces nothing.
    events_before = await count(db, "outbox")
    again = await rematch(database_url, hub, chunk=1)
    assert (again.status, again.merged, again.reviews) == ("finished", 0, 0)
    assert await count(db, "outbox") == events_before
    assert await count(db, "review_task") == len(LIKELY)

    # The matcher's merge is undone by an unmerge, and the next run leaves it undone.
    undone = await client.post(
        f"/v1/golden/worker/{older}/unmerge",
        json={"records": [{"source": "psa", "source_id": "P-okonkwo"}], "actor": "kim"},
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["split_golden_id"] == newer and undone.json()["restored"] is True
    events_before = await count(db, "outbox")
    third = await rematch(database_url, hub)
    assert (third.merged, third.reviews) == (0, 0)
    assert await count(db, "outbox") == events_before
    assert await xref_golden(client, "psa", "P-okonkwo") == newer


async def test_reads_made_a_few_golden_records_at_a_time_decide_the_same(
    client: AsyncTestClient, db: AsyncConnection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows of two golden records in chunks of three: the reads are made again at each
    window's end and after each merge, and every decision is the same."""
    monkeypatch.setattr(rematch_service, "WINDOW", 2)
    await test_rematch_merges_what_now_matches_and_asks_about_the_review_band(
        client, db, database_url
    )


async def test_rematch_does_not_merge_people_of_one_household(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    # Twins at one address: the weights alone reach auto_link, the given names say
    # they are two people (matching.scoring.conflict). A steward decides.
    home = {"line1": "Rosenweg 12", "city": "Freiburg", "postal_code": "79098", "country": "DE"}
    twin = {"family_name": "Keller-Oyelaran", "date_of_birth": "1961-05-02", "address": home}
    strict = default_model("worker").to_dict()
    strict["thresholds"] = {"auto_link": 0.99999999, "review": 0.9999999}
    del strict["matches_per_record"]  # the packaged fixed prior, 1e-5
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await MatchStore(conn).ensure_model("worker", 1, strict)
    await engine.dispose()
    client.app.state.hub.rules.models.forget()
    lukas = await put(client, "hcm", "H-lukas", {**twin, "given_name": "Lukas"})
    jonas = await put(client, "psa", "P-jonas", {**twin, "given_name": "Jonas"})
    await fit_packaged(client, database_url)

    run = await rematch(database_url, client.app.state.hub)

    assert (run.status, run.merged, run.reviews) == ("finished", 0, 1)
    assert await xref_golden(client, "psa", "P-jonas") == jonas != lukas
    task = (
        await db.execute(text("SELECT golden_id, candidate_id, explanation FROM review_task"))
    ).one()
    assert (task.candidate_id, task.golden_id) == tuple(sorted((lukas, jonas)))
    assert task.explanation["conflict"] == "given_name disagrees"


async def test_the_status_shows_pending_work_and_the_api_runs_it(
    client: AsyncTestClient, make_client: MakeClient, database_url: str
) -> None:
    await load_split(client, database_url)
    status = (await client.get("/v1/match/worker/status")).json()
    assert status["model_version"] == 1 and status["trained_on"] is None
    assert status["records"] == 2 * len(PEOPLE)
    assert status["state"] == "idle" and status["rematch"] is None

    await fit_packaged(client, database_url)
    reader = await make_client("reader")
    status = (await reader.get("/v1/match/worker/status")).json()
    assert status["model_version"] == 2 and status["trained_on"] == 2 * len(PEOPLE)
    assert (status["records"], status["records_since_fit"]) == (2 * len(PEOPLE), 0)
    assert status["state"] == "pending"
    assert set(status) == {
        "entity",
        "model_version",
        "fitted_at",
        "trained_on",
        "records",
        "records_since_fit",
        "state",
        "rematch",
    }

    for role in ("reader", "steward"):
        refused = await (await make_client(role)).post("/v1/match/worker/rematch")
        assert refused.status_code == 403
    # One run per entity: while another process holds the run lock, a start is refused.
    engine = create_async_engine(database_url)
    async with engine.connect() as other:
        assert await RematchStore(other).try_lock("worker")
        assert (await reader.get("/v1/match/worker/status")).json()["state"] == "running"
        busy = await client.post("/v1/match/worker/rematch")
        assert busy.status_code == 409, busy.text
    await engine.dispose()
    started = await client.post("/v1/match/worker/rematch", params={"chunk": 2})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["entity"] == "worker" and body["resumed"] is False
    assert body["run"]["total"] == 2 * len(PEOPLE) and body["run"]["model_version"] == 2

    seen = []
    for _ in range(2000):  # until the hub is idle (bounded, so a hang fails)
        status = (await reader.get("/v1/match/worker/status")).json()
        seen.append(status["rematch"]["done"])
        if status["state"] == "idle":
            break
        await asyncio.sleep(0.01)
    assert status["state"] == "idle"
    assert seen == sorted(seen)  # progress only moves forward
    run = status["rematch"]
    assert run["run_id"] == body["run"]["run_id"] and run["status"] == "finished"
    assert (run["done"], run["total"], run["merged"], run["reviews"]) == (
        2 * len(PEOPLE),
        2 * len(PEOPLE),
        4,
        2,
    )
    assert run["finished_at"] >= run["started_at"]

    late = await client.put(
        "/v1/sources/erp/worker/E-1",
        json={"attributes": {"given_name": "Zora", "family_name": "Quill"}},
    )
    assert late.status_code == 200
    status = (await reader.get("/v1/match/worker/status")).json()
    assert (status["records_since_fit"], status["state"]) == (1, "idle")
    assert (await client.get("/v1/match/nothing/status")).status_code in (400, 404)


# -- resuming after kill -9 --------------------------------------------------------------


async def _cli(database_url: str, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "MDM_DATABASE_URL": database_url, "MDM_NATS_URL": "nats://127.0.0.1:1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdm.cli",
        "rematch",
        "worker",
        "--quiet",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _rematch_cli(database_url: str) -> str:
    process = await _cli(database_url, "--chunk", "1")
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _state(db: AsyncConnection) -> dict[str, Any]:
    """What the hub holds, by source ids (golden ids differ from one load to another)."""
    members: dict[str, frozenset[tuple[str, str]]] = {}
    for golden_id, source, source_id in await db.execute(
        text(
            "SELECT s.golden_id, s.source, s.source_id FROM source_record s"
            " JOIN golden_record g ON g.golden_id = s.golden_id WHERE g.status = 'active'"
        )
    ):
        members[golden_id] = members.get(golden_id, frozenset()) | {(source, source_id)}
    tasks = await db.execute(text("SELECT golden_id, candidate_id, status FROM review_task"))
    events = await db.execute(text("SELECT type FROM outbox"))
    merges = await db.execute(text("SELECT actor FROM merge_event"))
    await db.commit()
    return {
        "golden": set(members.values()),
        "tasks": {(members[g], members[c], s) for g, c, s in tasks},
        "events": Counter(t for (t,) in events),
        "merges": Counter(a for (a,) in merges),
    }


async def test_a_run_killed_midway_continues_where_it_stopped(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    await load_split(client, database_url)
    await fit_packaged(client, database_url)
    out = await _rematch_cli(database_url)
    assert "starting re-matching run" in out and "merged 4" in out, out
    uninterrupted = await _state(db)
    assert len(uninterrupted["golden"]) == 2 * len(PEOPLE) - 4

    await truncate_hub_tables(database_url)
    goldens = await load_split(client, database_url)
    await fit_packaged(client, database_url)
    # The run waits on the golden record of the last pair to merge (a steward's
    # transaction holds it) after committing the chunks before it; then it dies.
    last_pair = max((sorted(goldens[n]) for n in SAME), key=lambda pair: pair[0])
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(
                text("SELECT 1 FROM golden_record WHERE golden_id = :g FOR UPDATE"),
                {"g": last_pair[1]},
            )
            process = await _cli(database_url, "--chunk", "1")
            cursor = None
            for _ in range(6000):  # until the first chunk committed (bounded)
                found = await db.execute(text("SELECT cursor FROM rematch_run"))
                cursor = found.scalar_one_or_none()
                await db.commit()
                if cursor is not None:
                    break
                await asyncio.sleep(0.02)
            assert cursor is not None
            process.send_signal(signal.SIGKILL)
            await process.wait()
            await holder.rollback()
        run = (await db.execute(text("SELECT id, status, cursor FROM rematch_run"))).one()
        await db.commit()
        assert run.status == "running" and run.cursor < last_pair[0]
        for _ in range(6000):  # the dead runner's session (and its lock) ends
            if not await RematchStore(db).locked("worker"):
                break
            await asyncio.sleep(0.02)
        await db.commit()
    finally:
        await engine.dispose()

    out = await _rematch_cli(database_url)
    assert f"continuing re-matching run {run.id}" in out, out
    assert await _state(db) == uninterrupted
    rows = (await db.execute(text("SELECT status FROM rematch_run"))).all()
    assert [r.status for r in rows] == ["finished"]


async def test_a_run_in_another_database_is_not_a_run_here(
    database_url: str, server_database_url: str
) -> None:
    """The run lock of the same entity held in another database of the server (another
    hub, a test's scratch database) says nothing about this one."""
    elsewhere = create_async_engine(server_database_url)
    here = create_async_engine(database_url)
    try:
        async with elsewhere.connect() as other:
            assert await RematchStore(other).try_lock("worker")
            async with here.connect() as conn:
                assert not await RematchStore(conn).locked("worker")
                assert await RematchStore(other).locked("worker")
    finally:
        await elsewhere.dispose()
        await here.dispose()


async def test_rematch_withdraws_open_questions_the_model_in_force_no_longer_asks(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    # Under the packaged model in a small store, the same full name alone is asked
    # about; under a model that weighs it below the band (here the packaged weights
    # with the prior of a hundred thousand workers), the question goes: unless a
    # steward has taken it up (deferred).
    opened = {}
    people = (("kept", "Katarzyna", "Wieczorek-Lindqvist"), ("taken up", "Tomasz", "Grabowski"))
    for name, given, family in people:
        base = {"given_name": given, "family_name": family}
        await put(client, "hcm", f"H-{given}", {**base, "date_of_birth": "1979-06-02"})
        response = await client.put(f"/v1/sources/psa/worker/P-{given}", json={"attributes": base})
        assert len(response.json()["review"]) == 1, response.text
        (task,) = (
            await client.get("/v1/reviews", params={"golden_id": response.json()["golden_id"]})
        ).json()["tasks"]
        opened[name] = task["id"]
    deferred = await client.post(
        f"/v1/reviews/{opened['taken up']}/decision",
        json={"decision": "defer", "actor": "steward.lee"},
    )
    assert deferred.status_code == 200, deferred.text
    fixed = default_model("worker").to_dict()
    del fixed["matches_per_record"]  # the packaged fixed prior, 1e-5
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await MatchStore(conn).add_model("worker", fixed, {}, 4)
    await engine.dispose()
    client.app.state.hub.rules.models.forget()

    run = await rematch(database_url, client.app.state.hub)

    assert (run.merged, run.reviews, run.withdrawn) == (0, 0, 1)
    rows = {
        r.id: r
        for r in await db.execute(
            text("SELECT id, status, decided_by, comment FROM review_task ORDER BY id")
        )
    }
    kept = rows[opened["kept"]]
    assert (kept.status, kept.decided_by) == ("superseded", "matcher")
    assert kept.comment.startswith("re-matched under model version 2: probability")
    assert rows[opened["taken up"]].status == "deferred"
    resolved = (
        (
            await db.execute(
                text(
                    "SELECT envelope FROM outbox WHERE type = 'review.resolved' "
                    "AND (envelope->>'review_id')::int = :id"
                ),
                {"id": opened["kept"]},
            )
        )
        .scalars()
        .all()
    )
    assert len(resolved) == 1
    assert resolved[0]["causation"]["kind"] == "system"
    assert resolved[0]["payload"]["status"] == "superseded"
    # A second run withdraws nothing more.
    again = await rematch(database_url, client.app.state.hub)
    assert again.withdrawn == 0


async def test_a_merge_withdraws_the_questions_it_answers(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    # Version 1 asks about every pair (a band down to nearly 0) and links none; the
    # packaged model then merges SAME's pairs (but Annika's, kept apart by a steward).
    await store_version_1(client, database_url, 0.99999, 1e-9)
    goldens = {}
    for name, (hcm, psa) in SAME.items():
        first = await put(client, "hcm", f"H-{name}", hcm)
        response = await client.put(f"/v1/sources/psa/worker/P-{name}", json={"attributes": psa})
        assert response.json()["review"] == [first], response.text
        goldens[name] = (first, response.json()["golden_id"])
    annika = sorted(goldens["annika"])
    merged = await client.post(
        "/v1/golden/worker/merge",
        json={"survivor_id": annika[0], "loser_ids": [annika[1]], "actor": "kim"},
    )
    assert merged.status_code == 200, merged.text
    await fit_packaged(client, database_url)

    run = await rematch(database_url, client.app.state.hub)

    assert run.merged == 3
    tasks = (
        await db.execute(
            text("SELECT id, golden_id, status, decided_by, comment FROM review_task ORDER BY id")
        )
    ).all()
    assert len(tasks) == len(SAME)
    # Each question was answered by a merge: the steward's by hand, the others by the
    # re-match. None is left open about records that now share a golden record.
    by_name = {n: t for n, t in zip(SAME, tasks, strict=True)}
    assert by_name["annika"].status == "superseded"
    assert by_name["annika"].decided_by.endswith("on behalf of kim")
    for name in ("okonkwo", "ada", "ingrid"):
        task = by_name[name]
        assert (task.status, task.decided_by) == ("superseded", "matcher"), name
        assert task.comment.endswith(f"were merged into {min(goldens[name])}")
    assert (await client.get("/v1/reviews")).json()["total"] == 0
    resolved = (
        (
            await db.execute(
                text("SELECT envelope FROM outbox WHERE type = 'review.resolved' ORDER BY id")
            )
        )
        .scalars()
        .all()
    )
    assert sorted(e["review_id"] for e in resolved) == [t.id for t in tasks]
    assert {e["payload"]["status"] for e in resolved} == {"superseded"}


async def test_rematch_does_not_merge_a_golden_record_holding_a_stranger(
    client: AsyncTestClient, db: AsyncConnection, database_url: str
) -> None:
    # Thomas twice, split under a strict version 1; a steward merged his brother
    # Robert (another given name and birth date, the same address) into one of the
    # two. The two Thomases match, but merging would put Robert with the other
    # Thomas too: a steward decides.
    home = {"line1": "Abelhof 58", "city": "Grootschermer", "postal_code": "4534 OG",
            "country": "NL"}  # fmt: skip
    thomas = {"given_name": "Thomas", "family_name": "Lamotte", "date_of_birth": "1979-07-08"}
    await store_version_1(client, database_url, 0.99999999, 0.9999999)
    hcm = await put(client, "hcm", "H-thomas", {**thomas, "address": home})
    psa = await put(client, "psa", "P-thomas", thomas)
    robert = await put(client, "erp", "V-robert", {"given_name": "Robert",
                       "family_name": "Lamotte", "date_of_birth": "1986-11-20",
                       "address": home})  # fmt: skip
    merged = await client.post(
        "/v1/golden/worker/merge",
        json={"survivor_id": psa, "loser_ids": [robert], "actor": "steward.anna", "reason": "x"},
    )
    assert merged.status_code == 200, merged.text
    await fit_packaged(client, database_url)

    run = await rematch(database_url, client.app.state.hub)

    assert (run.merged, run.reviews) == (0, 1)
    assert await xref_golden(client, "hcm", "H-thomas") == hcm != psa
    task = (await db.execute(text("SELECT golden_id, candidate_id FROM review_task"))).one()
    assert tuple(task) == tuple(sorted((hcm, psa), reverse=True))


async def test_the_status_says_training_while_the_hub_trains_the_entity(
    client: AsyncTestClient, database_url: str
) -> None:
    from mdm.domain.sources import ENTITIES
    from mdm.domain.stored import TRAINING_LOCK_CLASS

    await put(client, "hcm", "H-1", {"given_name": "Ada", "family_name": "Lovelace"})
    assert (await client.get("/v1/match/worker/status")).json()["state"] == "idle"
    # What the retraining check holds while its `mdm train` child runs (mdm/api/retrain.py).
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            keys = {"k1": TRAINING_LOCK_CLASS, "k2": ENTITIES.index("worker")}
            await conn.execute(text("SELECT pg_advisory_lock(:k1, :k2)"), keys)
            status = (await client.get("/v1/match/worker/status")).json()
            assert status["state"] == "training"
            other = (await client.get("/v1/match/customer/status")).json()
            assert other["state"] == "idle"
            await conn.execute(text("SELECT pg_advisory_unlock(:k1, :k2)"), keys)
    finally:
        await engine.dispose()
    assert (await client.get("/v1/match/worker/status")).json()["state"] == "idle"


async def test_the_status_says_training_is_due_when_the_hubs_check_would_train(
    client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from mdm.settings import RetrainSettings

    hub: Hub = client.app.state.hub
    await put(client, "hcm", "H-1", {"given_name": "Ada", "family_name": "Lovelace"})
    await put(client, "hcm", "H-2", {"given_name": "Grace", "family_name": "Hopper"})
    # A hub without a retraining check (interval 0, as any app built in code) trains
    # nothing by itself: idle.
    assert (await client.get("/v1/match/worker/status")).json()["state"] == "idle"
    # mdm serve's check, which trains an entity from 2 records under the packaged model
    # (and, for this test, never runs: 10 minutes between checks).
    retrain = RetrainSettings(interval=600, minimum=2)
    monkeypatch.setattr(hub, "settings", dataclasses.replace(hub.settings, retrain=retrain))
    assert (await client.get("/v1/match/worker/status")).json()["state"] == "training_due"
    assert (await client.get("/v1/match/customer/status")).json()["state"] == "idle"


async def test_the_status_after_a_rolled_back_first_use_of_the_packaged_model(
    client: AsyncTestClient,
) -> None:
    """A unit of work that stored an entity's packaged model and then rolled back (a
    request failing after matching) leaves no model row: the status stores it again
    instead of trusting the process's cache (it answered 500 before)."""
    hub: Hub = client.app.state.hub

    class Failed(Exception):
        pass

    async def first_use() -> None:
        async with hub.transaction() as uow:
            active = await hub.rules.models.current(uow.matches, "project")
            assert active.model.version == 1
            raise Failed

    with pytest.raises(Failed):  # on the app's own event loop, as a request would run
        client.blocking_portal.call(first_use)
    answer = await client.get("/v1/match/project/status")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == 1
