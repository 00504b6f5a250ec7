"""Group commit of single-record writes (mdm/services/ingest/group.py), against the
real PostgreSQL: the groups are formed by `GroupCommit` on the hub's own units of
work, the answers read through the API, kill -9 on a real `mdm serve`.

Writes submitted together (asyncio.gather) reach the queue before its drain runs,
so they form one group; the observers record the sizes of the units of work run.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from mdm.adapters.unit_of_work import SqlUnits
from mdm.bootstrap import Hub, make_engine
from mdm.domain.errors import IdempotencyConflict, NotFound, ValidationFailed
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord
from mdm.services.ingest.group import Answered, GroupCommit, IdempotencyClaim, SingleWrite
from mdm.settings import RelaySettings, Settings
from tests.integration.hub_process import HubProcess, hub_env
from tests.integration.live_hub import serving
from tests.integration.prometheus_text import samples
from tests.support import scratch_database, wait_for


def _respond(result: Accepted) -> tuple[int, bytes]:
    return 200, msgspec.json.encode(
        {"golden_id": result.golden_id, "outcome": result.outcome, "version": result.version}
    )


def _put(
    source_id: str,
    name: str,
    source: str = "crm",
    key: str | None = None,
    correlation: str | None = None,
) -> SingleWrite:
    attributes = {"name": name}
    claim = None
    if key is not None:
        claim = IdempotencyClaim(
            f"PUT /v1/sources/{source}/customer/{source_id}", key, name.encode()
        )
    ctx = RequestContext(correlation_id=correlation) if correlation else RequestContext()
    return SingleWrite(
        source, source_id, IncomingRecord(source_id, attributes), ctx, _respond, claim
    )


def _delete(source_id: str, source: str = "crm") -> SingleWrite:
    return SingleWrite(source, source_id, None, RequestContext(), _respond)


@pytest.fixture
async def groups(
    client: AsyncTestClient, database_url: str
) -> AsyncIterator[tuple[GroupCommit, list[int]]]:
    """A GroupCommit with the test hub's rules on units of work of its own (the app's
    engine serves the app's event loop), on the emptied database; and the sizes of
    the units of work it ran."""
    hub: Hub = client.app.state.hub
    engine = make_engine(database_url, pool_size=2)
    committer = GroupCommit(SqlUnits(engine).run, hub.rules)
    sizes: list[int] = []
    committer.observers.append(lambda _entity, n: sizes.append(n))
    yield committer, sizes
    await engine.dispose()


async def _submit(committer: GroupCommit, writes: list[SingleWrite]) -> list[Any]:
    """All of `writes` at once (one group), each one's answer or exception, in order."""
    return await asyncio.gather(
        *(committer.submit("customer", w) for w in writes), return_exceptions=True
    )


async def _names(db: AsyncConnection) -> dict[str, str]:
    rows = await db.execute(text("SELECT source_id, raw->>'name' FROM source_record"))
    return {sid: name for sid, name in rows.all()}


async def test_writes_that_arrive_together_commit_as_one_group_each_with_its_answer(
    groups: tuple[GroupCommit, list[int]], db: AsyncConnection
) -> None:
    committer, sizes = groups
    writes = [_put(f"G-{i}", f"Group Member {i} Ltd") for i in range(10)]
    answers = await _submit(committer, writes)
    assert sizes == [10]
    assert all(isinstance(a, Answered) and a.status == 200 for a in answers), answers
    decoded = [msgspec.json.decode(a.body) for a in answers]
    assert [d["outcome"] for d in decoded] == ["created"] * 10
    assert len({d["golden_id"] for d in decoded}) == 10
    assert len(await _names(db)) == 10
    # One unit of work, yet every golden version has its history row and its event.
    events = (await db.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
    history = (await db.execute(text("SELECT count(*) FROM golden_record_history"))).scalar_one()
    assert events == history == 10


async def test_a_bad_record_fails_alone(
    groups: tuple[GroupCommit, list[int]], db: AsyncConnection
) -> None:
    committer, sizes = groups
    writes = [_put(f"B-{i}", f"Sound Company {i}") for i in range(5)]
    writes.insert(2, _put("B-bad", "   ", key="bad-key"))  # blank once standardized: a 422
    answers = await _submit(committer, writes)
    assert sizes == [6]  # rejected by the batch path, not by a failed transaction
    assert isinstance(answers[2], ValidationFailed)
    assert answers[2].errors[0].path == "$.attributes.name"
    assert [a.status for i, a in enumerate(answers) if i != 2] == [200] * 5
    assert set(await _names(db)) == {f"B-{i}" for i in range(5)}
    # The rejected write's key was released, as a rolled-back request's would be: a
    # corrected retry with the same key is applied.
    retry = _put("B-bad", "Corrected Name Ltd", key="bad-key")
    (answer,) = await _submit(committer, [retry])
    assert isinstance(answer, Answered) and not answer.replayed
    assert (await _names(db))["B-bad"] == "Corrected Name Ltd"


async def test_a_poison_write_is_split_off_and_its_neighbours_commit(
    groups: tuple[GroupCommit, list[int]], db: AsyncConnection
) -> None:
    """A DELETE of a record the source never sent fails its unit of work (a 404 raised
    inside it): the group is halved until that write runs alone."""
    committer, sizes = groups
    writes = [_put(f"P-{i}", f"Neighbour Firm {i}") for i in range(7)]
    writes.insert(5, _delete("never-sent"))
    answers = await _submit(committer, writes)
    assert isinstance(answers[5], NotFound)
    assert all(isinstance(a, Answered) for i, a in enumerate(answers) if i != 5), answers
    assert set(await _names(db)) == {f"P-{i}" for i in range(7)}
    # 8 fail; 4 commit, 4 fail; of those 2 fail (1 commits, 1 fails alone), 2 commit.
    assert sizes == [8, 4, 4, 2, 1, 1, 2]


async def test_two_writes_to_one_record_in_a_group_keep_their_order(
    groups: tuple[GroupCommit, list[int]], db: AsyncConnection
) -> None:
    committer, sizes = groups
    writes = [
        _put("O-1", "First Name Ltd"),
        _put("O-2", "Other Record plc"),
        _put("O-1", "Second Name Ltd"),
        _delete("O-2"),
        _put("O-1", "Third Name Ltd"),
    ]
    answers = await _submit(committer, writes)
    assert sizes == [5]
    assert all(isinstance(a, Answered) for a in answers), answers
    assert (await _names(db))["O-1"] == "Third Name Ltd"
    deleted = await db.execute(
        text("SELECT deleted_at IS NOT NULL FROM source_record WHERE source_id = 'O-2'")
    )
    assert deleted.scalar_one() is True
    outcomes = [msgspec.json.decode(a.body)["outcome"] for a in answers]
    assert outcomes[3] == "deleted"
    golden = await db.execute(
        text(
            "SELECT g.attributes->>'name' FROM golden_record g "
            "JOIN source_record s USING (golden_id) WHERE s.source_id = 'O-1'"
        )
    )
    assert golden.scalar_one() == "Third Name Ltd"


async def test_idempotency_keys_within_and_across_groups(
    groups: tuple[GroupCommit, list[int]], db: AsyncConnection
) -> None:
    committer, sizes = groups
    first = _put("I-1", "Keyed Firm Ltd", key="k-1")
    again = _put("I-1", "Keyed Firm Ltd", key="k-1")  # the same request sent twice at once
    other = _put("I-2", "Another Firm Ltd")
    answers = await _submit(committer, [first, again, other])
    # The second holder of a key waits for the next group and is answered from storage.
    assert sizes == [2, 1]
    assert isinstance(answers[0], Answered) and not answers[0].replayed
    assert isinstance(answers[1], Answered) and answers[1].replayed
    assert answers[1].body == answers[0].body
    assert answers[1].outcome is None  # a replay is not counted as ingested again
    # The same key with another body is that request's conflict, not its group's.
    changed = _put("I-1", "Changed Body Ltd", key="k-1")
    fresh = _put("I-3", "Third Firm Ltd", key="k-3")
    answers = await _submit(committer, [changed, fresh])
    assert isinstance(answers[0], IdempotencyConflict)
    assert isinstance(answers[1], Answered) and answers[1].status == 200
    assert set(await _names(db)) == {"I-1", "I-2", "I-3"}
    assert (await _names(db))["I-1"] == "Keyed Firm Ltd"


async def test_each_write_keeps_its_correlation_id_in_its_events(
    groups: tuple[GroupCommit, list[int]], db: AsyncConnection
) -> None:
    committer, sizes = groups
    writes = [_put(f"C-{i}", f"Traced Firm {i}", correlation=f"sync-{i}") for i in range(4)]
    await _submit(committer, writes)
    assert sizes == [4]
    rows = await db.execute(
        text("SELECT envelope->'causation'->>'source_id', envelope->>'correlation_id' FROM outbox")
    )
    assert dict(rows.all()) == {f"C-{i}": f"sync-{i}" for i in range(4)}


async def test_a_write_is_answered_only_once_its_group_has_committed(
    groups: tuple[GroupCommit, list[int]], database_url: str
) -> None:
    """Each answer, as it arrives, is already visible to another connection."""
    committer, _ = groups
    engine = create_async_engine(database_url)
    seen: list[bool] = []

    async def write_and_look(write: SingleWrite) -> None:
        await committer.submit("customer", write)
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM source_record WHERE source_id = :s"),
                {"s": write.source_id},
            )
            seen.append(found.scalar_one() == 1)

    try:
        await asyncio.gather(
            *(write_and_look(_put(f"D-{i}", f"Durable {i} AG")) for i in range(12))
        )
    finally:
        await engine.dispose()
    assert seen == [True] * 12


async def test_concurrent_puts_through_the_api_are_grouped_and_each_answered(
    client: AsyncTestClient, settings: Settings
) -> None:
    """The hub's own group commit behind PUT and DELETE, on a real HTTP server: good
    writes 200, the bad one a 422 with its field path, fewer units of work than
    requests on /metrics."""
    with serving(settings) as base:
        headers = {"X-API-Key": settings.auth.admin_key or ""}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:

            async def units() -> float:
                found = samples((await http.get("/metrics")).text)
                return found.get('mdm_write_group_size_count{entity="customer"}', 0.0)

            before = await units()
            puts = [
                http.put(
                    f"/v1/sources/crm/customer/A-{i}", json={"attributes": {"name": f"Api Co {i}"}}
                )
                for i in range(32)
            ]
            puts.append(
                http.put("/v1/sources/crm/customer/A-bad", json={"attributes": {"name": " "}})
            )
            responses = await asyncio.gather(*puts)
            assert [r.status_code for r in responses] == [200] * 32 + [422]
            assert responses[-1].json()["errors"][0]["path"] == "$.attributes.name"
            assert len({r.json()["golden_id"] for r in responses[:32]}) == 32
            ran = await units() - before
            assert 1 <= ran < 33, "33 writes sent at once ran as 33 units of work"
            removed = await http.delete("/v1/sources/crm/customer/A-0")
            assert removed.status_code == 200 and removed.json()["outcome"] == "deleted"
            missing = await http.delete("/v1/sources/crm/customer/never-sent")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/problem+json")


# -- kill -9 mid-group ------------------------------------------------------------------

ADMIN_KEY = "mdm_group-" + secrets.token_hex(8)
HEADERS = {"X-API-Key": ADMIN_KEY}
GROUP = 9


# PSA records that share HCM W-0's e-mail address link to its golden record.
ADA = {"given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com"}


def _send(base: str, source_id: str, key: str, outcome: dict[str, object]) -> None:
    body = {"attributes": ADA}
    try:
        outcome[source_id] = httpx.put(
            f"{base}/v1/sources/psa/worker/{source_id}",
            json=body,
            headers={**HEADERS, "Idempotency-Key": key},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        outcome[source_id] = exc


async def test_kill_9_mid_group_keeps_what_was_answered_and_nothing_of_the_group(
    server_database_url: str, nats_url: str, relay_settings: RelaySettings
) -> None:
    """One write commits and is answered; then a group of GROUP writes is held at its
    outbox insert and the hub is killed: the answered write stays, nothing of the
    group is left, and the group's requests retried with their keys apply once."""
    async with scratch_database(server_database_url) as url:
        env = hub_env(url, nats_url, ADMIN_KEY, relay_settings)
        engine = create_async_engine(url)
        hub = HubProcess(env)
        try:
            hub.start()
            async with httpx.AsyncClient(headers=HEADERS, timeout=60) as client:
                first = await client.put(
                    f"{hub.base}/v1/sources/hcm/worker/W-0",
                    json={"attributes": {**ADA, "employee_number": "E500"}},
                )
            assert first.status_code == 200, first.text
            golden = first.json()["golden_id"]

            # Uncommitted outbox rows of versions 2 and 3, each on a connection of its
            # own: a unit of work writing that version waits on it until it is rolled back.
            async with engine.connect() as hold_2, engine.connect() as hold_3:
                for conn, version in ((hold_2, 2), (hold_3, 3)):
                    await conn.execute(
                        text(
                            "INSERT INTO outbox (event_id, entity, golden_id, version, type, "
                            "subject, envelope, occurred_at) VALUES (gen_random_uuid(), "
                            "'worker', :g, :v, 'golden.updated', 'blocker', '{}'::jsonb, now())"
                        ),
                        {"g": golden, "v": version},
                    )
                outcome: dict[str, object] = {}
                keys = {f"R-{i}": f"key-{i}-{secrets.token_hex(4)}" for i in range(GROUP + 1)}
                lone = threading.Thread(target=_send, args=(hub.base, "R-0", keys["R-0"], outcome))
                lone.start()
                await _wait_blocked(engine)  # R-0, alone in its group, at version 2
                senders = [
                    threading.Thread(target=_send, args=(hub.base, sid, key, outcome))
                    for sid, key in keys.items()
                    if sid != "R-0"
                ]
                for sender in senders:
                    sender.start()
                await _wait_queued(hub.base, GROUP + 1)
                await hold_2.rollback()  # R-0 commits and is answered
                lone.join(60)
                assert isinstance(outcome["R-0"], httpx.Response), outcome["R-0"]
                assert outcome["R-0"].status_code == 200
                await _wait_blocked(engine)  # the other nine, one group, at version 3
                async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
                    groups_run = samples((await client.get(f"{hub.base}/metrics")).text)
                assert groups_run['mdm_write_group_size_count{entity="worker"}'] == 3
                assert groups_run['mdm_write_group_size_sum{entity="worker"}'] == GROUP + 2
                hub.kill()
                await hold_3.rollback()
            for sender in senders:
                sender.join(60)
            assert all(isinstance(outcome[k], httpx.TransportError) for k in keys if k != "R-0")

            async with engine.connect() as conn:
                stored = await conn.execute(
                    text("SELECT source_id FROM source_record WHERE source = 'psa'")
                )
                assert [sid for (sid,) in stored] == ["R-0"]  # answered, so committed

            hub = HubProcess(env, port=hub.port)
            hub.start()
            async with httpx.AsyncClient(headers=HEADERS, timeout=60) as client:
                for sid, key in keys.items():
                    body = {"attributes": ADA}
                    retry = await client.put(
                        f"{hub.base}/v1/sources/psa/worker/{sid}",
                        json=body,
                        headers={"Idempotency-Key": key},
                    )
                    assert retry.status_code == 200, retry.text
                    assert ("Idempotent-Replayed" in retry.headers) == (sid == "R-0")
                    assert retry.json()["golden_id"] == golden
            async with engine.connect() as conn:
                count = await conn.execute(
                    text("SELECT count(*) FROM source_record WHERE source = 'psa'")
                )
                assert count.scalar_one() == GROUP + 1
                events = await conn.execute(
                    text("SELECT version FROM outbox WHERE golden_id = :g ORDER BY version"),
                    {"g": golden},
                )
                latest = await conn.execute(
                    text("SELECT version FROM golden_record WHERE golden_id = :g"), {"g": golden}
                )
                assert [v for (v,) in events] == list(range(1, latest.scalar_one() + 1))
        finally:
            hub.stop()
            await engine.dispose()


async def _wait_blocked(engine: Any) -> None:
    """Until a unit of work waits on the blocker's outbox row."""

    async def blocked() -> bool:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' "
                    "AND (query LIKE 'INSERT INTO outbox%' OR query LIKE 'COPY \"outbox\"%')"
                )
            )
            return rows.first() is not None

    await wait_for(blocked, timeout=60, every=0.02)


async def _wait_queued(base: str, requests: int) -> None:
    """Until the hub is serving `requests` PUTs at once (its in-flight gauge)."""

    async def queued() -> bool:
        async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
            found = samples((await client.get(f"{base}/metrics")).text)
        in_flight = sum(
            v
            for k, v in found.items()
            if k.startswith("mdm_requests_in_progress{") and 'method="PUT"' in k
        )
        return in_flight >= requests

    await wait_for(queued, timeout=60, every=0.05)
