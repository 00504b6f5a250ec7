"""The review queue API on a real PostgreSQL: list, read, assign, decide, bulk, audit, events."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mdm.adapters.data_quality import RULES
from schemas.events import Event, ReviewEvent
from tests.integration.review_data import batches, pair

# The shared client is the admin of MDM_ADMIN_KEY; the `actor` a body names is the
# person it acts for (docs/security.md), so the audit says both.
ADMIN_FOR = "MDM_ADMIN_KEY (admin, key env-admin) on behalf of "


async def put(client: AsyncTestClient, source: str, source_id: str, attrs: dict) -> dict:
    response = await client.put(
        f"/v1/sources/{source}/worker/{source_id}", json={"attributes": attrs}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def one_task(client: AsyncTestClient, i: int) -> dict[str, Any]:
    """A review task: HCM's record with a birth date, PSA's without (same name and town)."""
    hcm, psa = pair(i)
    first = await put(client, "hcm", f"H-{i}", hcm)
    second = await put(client, "psa", f"P-{i}", psa)
    assert second["review"] == [first["golden_id"]], second
    tasks = (await client.get("/v1/reviews", params={"golden_id": second["golden_id"]})).json()
    (task,) = tasks["tasks"]
    return task


async def load_pairs(client: AsyncTestClient, n: int, start: int = 0) -> None:
    hcm, psa = batches(n, start)
    for source, body in (("hcm", hcm), ("psa", psa)):
        response = await client.post(f"/v1/sources/{source}/worker/batch", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == 0


async def review_events(db: AsyncConnection, task_id: int) -> list[ReviewEvent]:
    rows = await db.execute(
        text("SELECT golden_id, version, envelope FROM outbox WHERE golden_id = :k ORDER BY id"),
        {"k": f"review:{task_id}"},
    )
    events = []
    for key, version, envelope in rows:
        event = msgspec.convert(envelope, ReviewEvent)
        assert (event.ordering_key, event.version) == (key, version)
        events.append(event)
    return events


async def test_the_queue_filters_sorts_and_pages(client: AsyncTestClient) -> None:
    await load_pairs(client, 8)
    everything = (await client.get("/v1/reviews", params={"limit": 500})).json()
    total = everything["total"]
    assert total >= 8 and len(everything["tasks"]) == total
    assert {t["status"] for t in everything["tasks"]} == {"open"}
    assert {t["entity"] for t in everything["tasks"]} == {"worker"}

    pages = []
    for offset in range(0, total, 3):
        page = (await client.get("/v1/reviews", params={"limit": 3, "offset": offset})).json()
        assert page["total"] == total and len(page["tasks"]) <= 3
        pages += [t["id"] for t in page["tasks"]]
    assert pages == [t["id"] for t in everything["tasks"]]  # oldest first, nothing twice

    likely = (await client.get("/v1/reviews", params={"sort": "-probability"})).json()["tasks"]
    probabilities = [t["probability"] for t in likely]
    assert probabilities == sorted(probabilities, reverse=True)
    cut = probabilities[len(probabilities) // 2]
    above = (await client.get("/v1/reviews", params={"min_probability": cut})).json()
    assert above["total"] == sum(1 for p in probabilities if p >= cut) < total + 1
    assert all(t["probability"] >= cut for t in above["tasks"])
    below = (await client.get("/v1/reviews", params={"max_probability": cut})).json()
    assert all(t["probability"] <= cut for t in below["tasks"])

    assert (await client.get("/v1/reviews", params={"entity": "customer"})).json()["total"] == 0
    assert (await client.get("/v1/reviews", params={"min_age_hours": 1})).json()["total"] == 0
    assert (await client.get("/v1/reviews", params={"max_age_hours": 1})).json()["total"] == total

    task = everything["tasks"][0]
    assigned = await client.post(
        f"/v1/reviews/{task['id']}/assign", json={"assignee": "steward.kim"}
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assigned_to"] == "steward.kim"
    mine = (await client.get("/v1/reviews", params={"assignee": "steward.kim"})).json()
    assert [t["id"] for t in mine["tasks"]] == [task["id"]]
    nobody = (await client.get("/v1/reviews", params={"assignee": "-"})).json()
    assert nobody["total"] == total - 1

    bad = await client.get("/v1/reviews", params={"entity": "spaceship"})
    assert bad.status_code == 404
    bad = await client.get("/v1/reviews", params={"min_probability": 2})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "query:min_probability"
    bad = await client.get("/v1/reviews", params={"sort": "name"})
    assert bad.status_code == 422


async def test_a_task_shows_both_golden_records_side_by_side_with_the_waterfall(
    client: AsyncTestClient,
) -> None:
    task = await one_task(client, 0)
    response = await client.get(f"/v1/reviews/{task['id']}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["task"]["id"] == task["id"]
    left, right = detail["left"], detail["right"]
    assert (left["golden_id"], right["golden_id"]) == (task["golden_id"], task["candidate_id"])
    assert [(r["source"], r["source_id"], r["under_review"]) for r in left["records"]] == [
        ("psa", "P-0", True)
    ]
    assert [(r["source"], r["under_review"]) for r in right["records"]] == [("hcm", False)]
    # HCM knows the birth date, PSA does not: that is the difference to see.
    assert "date_of_birth" in detail["different"]
    assert "family_name" not in detail["different"]
    assert detail["decidable"] is True and detail["decisions"] == []
    fields = {f["field"] for f in detail["task"]["explanation"]["fields"]}
    assert {"given_name", "family_name", "date_of_birth"} <= fields

    assert (await client.get("/v1/reviews/987654")).status_code == 404
    assert (await client.get("/v1/reviews/abc")).status_code in (400, 404)


async def test_merge_decision_is_audited_in_history_and_published(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    task = await one_task(client, 1)
    survivor = min(task["golden_id"], task["candidate_id"])
    loser = max(task["golden_id"], task["candidate_id"])
    response = await client.post(
        f"/v1/reviews/{task['id']}/decision",
        json={"decision": "merge", "actor": "steward.kim", "comment": "same person, HR confirms"},
        headers={"X-Correlation-ID": "review-42"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "merged" and result["survivor_id"] == survivor

    golden = (await client.get(f"/v1/golden/worker/{survivor}")).json()
    assert {(x["source"], x["source_id"]) for x in golden["xrefs"]} == {
        ("hcm", "H-1"),
        ("psa", "P-1"),
    }
    assert golden["version"] == result["version"]
    moved = await client.get(f"/v1/golden/worker/{loser}", follow_redirects=False)
    assert moved.status_code == 301

    history = (await client.get(f"/v1/golden/worker/{survivor}/history")).json()
    latest = history["versions"][0]
    assert latest["event_type"] == "golden.merged"
    assert latest["cause"] == {
        "kind": "steward",
        "actor": ADMIN_FOR + "steward.kim",
        "reason": "same person, HR confirms",
        "review_id": task["id"],
        "merge_id": latest["cause"]["merge_id"],  # the merge the decision made
    }
    assert isinstance(latest["cause"]["merge_id"], int)
    (decision,) = history["reviews"]
    assert decision["task_id"] == task["id"]
    assert (decision["decision"], decision["status"], decision["actor"], decision["comment"]) == (
        "merge",
        "merged",
        ADMIN_FOR + "steward.kim",
        "same person, HR confirms",
    )
    assert decision["outcome"]["survivor_id"] == survivor

    opened, resolved = await review_events(db, task["id"])
    assert (opened.type, opened.version, opened.payload.status) == ("review.opened", 1, "open")
    assert opened.causation.kind == "source_record" and opened.payload.source_id == "P-1"
    assert (resolved.type, resolved.version) == ("review.resolved", 2)
    assert resolved.payload.decision == "merge" and resolved.payload.survivor_id == survivor
    assert resolved.payload.comment == "same person, HR confirms"
    assert (
        resolved.causation.actor == ADMIN_FOR + "steward.kim"
        and resolved.correlation_id == "review-42"
    )
    assert resolved.subject == "mdm.worker.review.resolved"
    merged = (
        await db.execute(
            text("SELECT envelope FROM outbox WHERE golden_id = :g AND type = 'golden.merged'"),
            {"g": survivor},
        )
    ).scalar_one()
    assert msgspec.convert(merged, Event).causation.review_id == task["id"]

    again = await client.post(
        f"/v1/reviews/{task['id']}/decision", json={"decision": "defer", "actor": "steward.kim"}
    )
    assert again.status_code == 409
    assert len(await review_events(db, task["id"])) == 2


async def test_not_a_match_is_stored_and_never_proposed_again(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    """A record that strongly matches two golden records which do not match each other on
    their own asks a steward about them (several_matches), unless one said not a match."""

    async def scenario(prefix: str, person: dict, decide: bool) -> tuple[bool, list[str]]:
        dob = {"date_of_birth": "1977-04-09" if decide else "1962-12-30"}
        street = "Kastanienallee 41" if decide else "Am Brühl 7"
        home = {"address": {"line1": street, "city": "Görlitz", "country": "DE"}}
        g1 = await put(client, "hcm", f"{prefix}-1", {**person, **dob})
        g2 = await put(client, "erp", f"{prefix}-2", {**person, **home})  # asks about g1
        both = {g1["golden_id"], g2["golden_id"]}
        assert len(both) == 2
        third = await put(client, "psa", f"{prefix}-3", {**person, **dob, **home})
        assert {third["golden_id"], *third["review"]} == both
        tasks = (await client.get("/v1/reviews", params={"golden_id": g1["golden_id"]})).json()
        (task,) = [t for t in tasks["tasks"] if t["reason"] == "several_matches"]
        if decide:
            response = await client.post(
                f"/v1/reviews/{task['id']}/decision",
                json={"decision": "not_a_match", "actor": "steward.lee", "comment": "twins"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["kept_apart"] == 2  # {hcm, psa} x {erp}
        fourth = await put(client, "psa", f"{prefix}-4", {**person, **dob, **home})
        assert fourth["golden_id"] in both
        tasks = (await client.get("/v1/reviews", params={"status": "any"})).json()["tasks"]
        asked = [
            t["reason"]
            for t in tasks
            if t["source_id"] == f"{prefix}-4" and {t["golden_id"], t["candidate_id"]} == both
        ]
        merged = (
            await db.execute(
                text("SELECT count(*) FROM merge_event WHERE survivor_id = ANY(:ids)"),
                {"ids": sorted(both)},
            )
        ).scalar_one()
        return merged > 0, asked

    # Without a decision, another such record finds the two golden records the same now
    # (the third record's evidence joined one of them) and the matcher merges them ...
    first = {"given_name": "Małgorzata", "family_name": "Zwierzchowska-Oyelaran"}
    assert await scenario("A", first, decide=False) == (True, [])
    # ... after a not-a-match on them, it neither merges them nor asks about them again.
    second = {"given_name": "Bronisława", "family_name": "Kowalczyk-Adebayo"}
    assert await scenario("B", second, decide=True) == (False, [])
    pairs = (await db.execute(text("SELECT DISTINCT actor, reason FROM not_a_match"))).all()
    assert pairs == [(ADMIN_FOR + "steward.lee", "twins")]


async def test_defer_then_decide_and_a_superseded_task(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    task = await one_task(client, 2)
    deferred = await client.post(
        f"/v1/reviews/{task['id']}/decision",
        json={"decision": "defer", "actor": "steward.kim", "comment": "ask HR"},
    )
    assert deferred.status_code == 200 and deferred.json()["status"] == "deferred"
    assert (await client.get("/v1/reviews")).json()["total"] == 0
    later = (await client.get("/v1/reviews", params={"status": "deferred"})).json()["tasks"]
    assert [t["id"] for t in later] == [task["id"]]
    decided = await client.post(
        f"/v1/reviews/{task['id']}/decision",
        json={"decision": "not_a_match", "actor": "steward.kim", "comment": "HR says no"},
    )
    assert decided.status_code == 200, decided.text
    events = await review_events(db, task["id"])
    assert [(e.type, e.version, e.payload.status) for e in events] == [
        ("review.opened", 1, "open"),
        ("review.resolved", 2, "deferred"),
        ("review.resolved", 3, "not_a_match"),
    ]
    detail = (await client.get(f"/v1/reviews/{task['id']}")).json()
    assert [d["decision"] for d in detail["decisions"]] == ["not_a_match", "defer"]
    assert detail["decidable"] is False

    # Another task whose golden records a steward merged by hand meanwhile is superseded.
    other = await one_task(client, 3)
    merged = await client.post(
        "/v1/golden/worker/merge",
        json={
            "survivor_id": other["candidate_id"],
            "loser_ids": [other["golden_id"]],
            "actor": "steward.ann",
        },
    )
    assert merged.status_code == 200, merged.text
    assert (await client.get(f"/v1/reviews/{other['id']}")).json()["decidable"] is False
    response = await client.post(
        f"/v1/reviews/{other['id']}/decision", json={"decision": "merge", "actor": "steward.kim"}
    )
    assert response.status_code == 409
    assert "superseded" in response.json()["detail"]
    status = (await client.get(f"/v1/reviews/{other['id']}")).json()["task"]["status"]
    assert status == "superseded"
    assert [e.payload.status for e in await review_events(db, other["id"])] == [
        "open",
        "superseded",
    ]
    merges = (await db.execute(text("SELECT count(*) FROM merge_event"))).scalar_one()
    assert merges == 1  # the hand merge only: the task was not decided twice


async def test_bulk_decisions_succeed_or_fail_one_by_one(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    first = await one_task(client, 4)
    second = await one_task(client, 5)
    done = await one_task(client, 6)
    await client.post(
        f"/v1/reviews/{done['id']}/decision", json={"decision": "defer", "actor": "x"}
    )
    await client.post(
        f"/v1/reviews/{done['id']}/decision", json={"decision": "not_a_match", "actor": "x"}
    )
    response = await client.post(
        "/v1/reviews/decisions",
        json={
            "actor": "steward.kim",
            "comment": "bulk pass",
            "decisions": [
                {"task_id": first["id"], "decision": "merge"},
                {"task_id": 999999, "decision": "merge"},
                {"task_id": done["id"], "decision": "merge"},
                {"task_id": second["id"], "decision": "not_a_match", "comment": "different"},
            ],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["decided"], body["failed"]) == (2, 2)
    by_index = {r["index"]: r for r in body["results"]}
    assert by_index[0]["ok"] and by_index[0]["result"]["status"] == "merged"
    assert by_index[1]["error"]["status"] == 404
    assert by_index[1]["error"]["instance"] == "$.decisions[1]"
    assert by_index[2]["error"]["status"] == 409
    assert by_index[3]["ok"] and by_index[3]["result"]["status"] == "not_a_match"
    rows = dict(
        (
            await db.execute(
                text("SELECT task_id, comment FROM review_decision WHERE actor = :a"),
                {"a": ADMIN_FOR + "steward.kim"},
            )
        ).all()
    )
    assert rows == {first["id"]: "bulk pass", second["id"]: "different"}


async def test_bad_decisions_are_4xx_with_the_field_path(client: AsyncTestClient) -> None:
    task = await one_task(client, 7)
    url = f"/v1/reviews/{task['id']}/decision"
    wrong = await client.post(url, json={"decision": "maybe", "actor": "a"})
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["path"] == "$.decision"
    extra = await client.post(url, json={"decision": "merge", "actor": "a", "force": True})
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["path"] == "$.force"
    empty = await client.post("/v1/reviews/decisions", json={"actor": "a", "decisions": []})
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["path"] == "$.decisions"
    assert (await client.get(f"/v1/reviews/{task['id']}")).json()["task"]["status"] == "open"


async def test_dashboard_and_search(client: AsyncTestClient) -> None:
    task = await one_task(client, 8)
    await client.put(
        "/v1/sources/hcm/worker/H-ONLY-GIVEN", json={"attributes": {"given_name": "Solo"}}
    )
    board = (await client.get("/v1/dashboard")).json()
    records = {(r["entity"], r["key"]): r["count"] for r in board["records"]}
    assert records == {("worker", "hcm"): 2, ("worker", "psa"): 1}
    outcomes = {(r["entity"], r["key"]): r["count"] for r in board["match_outcomes"]}
    assert outcomes == {("worker", "new"): 2, ("worker", "review"): 1}
    assert board["open_reviews_by_age"] == [{"entity": "worker", "bucket": "under_1h", "count": 1}]
    warnings = {r["key"] for r in board["quality_warnings"]}
    assert warnings  # the worker without a family name
    assert board["outbox"]["pending"] >= 4  # no relay in the tests' app
    assert board["review_outcomes"] == [{"entity": "worker", "key": "open", "count": 1}]
    # Exceptions across entities per rule (docs/relationships.md): every rule, counted.
    assert set(board["exceptions"]) == set(RULES)
    assert all(isinstance(n, int) for n in board["exceptions"].values())

    family = pair(8)[0]["family_name"]
    by_name = (await client.get("/v1/search/golden", params={"q": family[:6].lower()})).json()
    assert {h["golden_id"] for h in by_name["hits"]} == {task["golden_id"], task["candidate_id"]}
    assert all(h["matched"] == "name" for h in by_name["hits"])
    by_id = (await client.get("/v1/search/golden", params={"q": "P-8"})).json()["hits"]
    assert [(h["golden_id"], h["matched"]) for h in by_id] == [(task["golden_id"], "psa:P-8")]
    qualified = (await client.get("/v1/search/golden", params={"q": "hcm:H-8"})).json()["hits"]
    assert [h["golden_id"] for h in qualified] == [task["candidate_id"]]
    assert (await client.get("/v1/search/golden", params={"q": "100%_"})).json()["hits"] == []
    assert (await client.get("/v1/search/golden")).status_code == 422


async def test_the_steward_page_is_served(client: AsyncTestClient) -> None:
    for path in ("/steward", "/steward/"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert '<script src="/steward/steward.js">' in page.text
    script = await client.get("/steward/steward.js")
    assert script.status_code == 200 and "X-API-Key" in script.text


async def test_two_stewards_deciding_one_task_at_once_decide_it_once(
    client: AsyncTestClient, db: AsyncConnection
) -> None:
    task = await one_task(client, 9)
    url = f"/v1/reviews/{task['id']}/decision"
    answers = await asyncio.gather(
        client.post(url, json={"decision": "merge", "actor": "steward.kim"}),
        client.post(url, json={"decision": "not_a_match", "actor": "steward.lee"}),
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    decisions = (
        await db.execute(
            text("SELECT count(*) FROM review_decision WHERE task_id = :t"), {"t": task["id"]}
        )
    ).scalar_one()
    assert decisions == 1
    assert [e.type for e in await review_events(db, task["id"])] == [
        "review.opened",
        "review.resolved",
    ]
