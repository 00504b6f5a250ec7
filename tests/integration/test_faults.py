"""Fault injection against real processes and servers (issue 8 part 4).

1. kill -9 of `mdm serve` (and its relay child) while a batch's transaction is in
   flight: nothing of it is left; the batch retried with its Idempotency-Key is
   applied exactly once, and a second retry is answered from storage.
2. A PostgreSQL of the test's own is restarted while the hub serves PUTs and GETs:
   every answer is a 2xx or a 503 problem, the hub's pool recovers on its own, and
   nothing answered 2xx is lost.
3. A nats-server of the test's own is restarted while `mdm serve` ingests: its
   relay child publishes every outbox row exactly once, in order per record.

The machine's shared PostgreSQL and NATS are never stopped.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mdm.adapters.migrate import upgrade
from mdm.bootstrap import make_engine
from mdm.settings import AuthSettings, DatabaseSettings, NatsSettings, RelaySettings, Settings
from tests.integration.hub_process import HubProcess, hub_env
from tests.integration.live_hub import serving
from tests.integration.private_postgres import PrivatePostgres
from tests.support import NatsServer, read_stream, scratch_database, wait_for

ADMIN_KEY = "mdm_faults-" + secrets.token_hex(8)
HEADERS = {"X-API-Key": ADMIN_KEY}


@pytest.fixture
async def own_database(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def _count(engine: AsyncEngine, table: str) -> int:
    ((n,),) = await _rows(engine, f"SELECT count(*) FROM {table}")
    return int(n)


async def _outbox_matches_versions(engine: AsyncEngine) -> None:
    """Every golden record's versions 1..v each have exactly one outbox row, and no more."""
    events = await _rows(
        engine, "SELECT golden_id, version FROM outbox ORDER BY golden_id, version"
    )
    expected = [
        (golden_id, v)
        for golden_id, version in await _rows(
            engine, "SELECT golden_id, version FROM golden_record ORDER BY golden_id"
        )
        for v in range(1, version + 1)
    ]
    assert [tuple(e) for e in events] == expected


async def _outbox(engine: AsyncEngine) -> dict[str, tuple[str, int]]:
    """event id -> (ordering key, version) of every outbox row."""
    rows = await _rows(engine, "SELECT event_id::text, golden_id, version FROM outbox")
    return {str(e): (g, int(v)) for e, g, v in rows}


def _check_stream_order(msgs: list[Any], outbox: dict[str, tuple[str, int]]) -> None:
    """Each outbox row in the stream exactly once, versions in order per golden record."""
    ids = [m.header.get("Nats-Msg-Id") if m.header else None for m in msgs]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    assert set(ids) == set(outbox), "the stream and the outbox differ"
    seen: dict[str, list[int]] = defaultdict(list)
    for msg, event_id in zip(msgs, ids, strict=True):
        key, version = outbox[str(event_id)]
        assert msgspec.json.decode(msg.data)["version"] == version
        seen[key].append(version)
    broken = {k: v for k, v in seen.items() if v != list(range(1, len(v) + 1))}
    assert not broken, f"out of order, gaps or repeats: {broken}"


# -- 1. kill -9 mid-batch -------------------------------------------------------------

BATCH = 1000  # the batch endpoint's maximum


def _worker(i: int) -> dict[str, Any]:
    return {
        "given_name": ("Ada", "Bo", "Cem", "Dana", "Eli", "Fay", "Gus", "Hana")[i % 8],
        "family_name": f"Kill{i:04d}",
        "email": f"kill{i}@example.com",
        "employee_number": f"E{100000 + i}",
    }


async def test_kill_9_mid_batch_leaves_nothing_and_the_retry_applies_once(
    own_database: str, nats_url: str, relay_settings: RelaySettings, js: JetStreamContext
) -> None:
    env = hub_env(own_database, nats_url, ADMIN_KEY, relay_settings)
    engine = create_async_engine(own_database)
    hub = HubProcess(env)
    try:
        hub.start()
        # A golden record the batch will link to (HCM's W-0; PSA's R-0 shares its e-mail).
        async with httpx.AsyncClient(headers=HEADERS, timeout=60) as client:
            first = await client.put(
                f"{hub.base}/v1/sources/hcm/worker/W-0", json={"attributes": _worker(0)}
            )
        assert first.status_code == 200, first.text
        golden = first.json()["golden_id"]
        before = {t: await _count(engine, t) for t in _BATCH_TABLES}

        # Hold the batch at its last write: an uncommitted outbox row of the version the
        # batch gives that golden record makes its outbox write (a COPY) wait on the unique index
        # with its source records, golden records and history written, uncommitted.
        async with engine.connect() as blocker:
            await _take_outbox_slot(blocker, golden, version=2)
            body = [{"source_id": f"R-{i}", "attributes": _worker(i)} for i in range(BATCH)]
            key = "batch-" + secrets.token_hex(6)
            outcome: list[object] = []
            sender = threading.Thread(
                target=_post_batch, args=(hub.base, body, key, outcome), daemon=True
            )
            sender.start()
            backend = await _wait_for_blocked_insert(engine, outcome)
            hub.kill()  # SIGKILL to mdm serve and its relay child, mid-transaction
            await blocker.rollback()
        sender.join(60)
        assert outcome and isinstance(outcome[0], httpx.TransportError), outcome

        # PostgreSQL ends the dead client's session; it never committed anything.
        async def gone() -> bool:
            rows = await _rows(engine, "SELECT 1 FROM pg_stat_activity WHERE pid = :p", p=backend)
            return not rows

        await wait_for(gone, timeout=60)
        after = {t: await _count(engine, t) for t in _BATCH_TABLES}
        assert after == before, "part of the killed batch was committed"

        # Restarted, the same request with the same key is applied, once.
        hub = HubProcess(env, port=hub.port)
        hub.start()
        async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
            url = f"{hub.base}/v1/sources/psa/worker/batch"
            retry = await client.post(url, json=body, headers={"Idempotency-Key": key})
            assert retry.status_code == 200, retry.text
            assert "Idempotent-Replayed" not in retry.headers
            results = retry.json()["results"]
            assert retry.json()["accepted"] == BATCH
            assert results[0]["golden_id"] == golden and results[0]["outcome"] == "linked"
            replay = await client.post(url, json=body, headers={"Idempotency-Key": key})
            assert replay.status_code == 200
            assert replay.headers["Idempotent-Replayed"] == "true"
            assert replay.content == retry.content

        # Each record stored once; golden records and their events exactly once.
        assert await _count(engine, "source_record") == BATCH + 1
        assert await _count(engine, "idempotency_key") == 1
        goldens = {r["golden_id"] for r in results}
        active = await _rows(engine, "SELECT golden_id FROM golden_record WHERE status = 'active'")
        assert {g for (g,) in active} == goldens
        assert await _count(engine, "golden_record") == len(goldens)
        await _outbox_matches_versions(engine)

        async def published() -> bool:
            rows = await _rows(engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            return int(rows[0][0]) == 0

        await wait_for(published, timeout=60)
        outbox = await _outbox(engine)
    finally:
        hub.stop()
        await engine.dispose()
    msgs = await read_stream(
        js, relay_settings.stream, f"{relay_settings.subject_prefix}.>", len(outbox), timeout=60
    )
    _check_stream_order(msgs, outbox)


_BATCH_TABLES = (
    "source_record",
    "golden_record",
    "golden_record_history",
    "match_key",
    "outbox",
    "idempotency_key",
    "review_task",
)


async def _take_outbox_slot(conn: AsyncConnection, golden_id: str, version: int) -> None:
    await conn.execute(
        text(
            "INSERT INTO outbox (event_id, entity, golden_id, version, type, subject, envelope, "
            "occurred_at) VALUES (gen_random_uuid(), 'worker', :g, :v, 'golden.updated', "
            "'blocker', '{}'::jsonb, now())"
        ),
        {"g": golden_id, "v": version},
    )


def _post_batch(base: str, body: list[dict[str, Any]], key: str, outcome: list[object]) -> None:
    try:
        outcome.append(
            httpx.post(
                f"{base}/v1/sources/psa/worker/batch",
                json=body,
                headers={**HEADERS, "Idempotency-Key": key},
                timeout=120,
            )
        )
    except httpx.HTTPError as exc:
        outcome.append(exc)


async def _wait_for_blocked_insert(engine: AsyncEngine, outcome: list[object]) -> int:
    """The backend pid of the batch's outbox INSERT, once it waits on our row lock."""
    found: list[int] = []

    async def blocked() -> bool:
        assert not outcome, f"the batch was answered before it reached the outbox: {outcome}"
        rows = await _rows(
            engine,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' "
            "AND (query LIKE 'INSERT INTO outbox%' OR query LIKE 'COPY \"outbox\"%')",
        )
        found.extend(int(r[0]) for r in rows)
        return bool(rows)

    await wait_for(blocked, timeout=90, every=0.02)
    return found[0]


# -- 2. PostgreSQL restarted under load -------------------------------------------------

LOAD_CLIENTS = 6
RESTARTS = 2


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


async def _hub_database(server: PrivatePostgres) -> str:
    """A migrated database on the private server (it goes with the server's folder)."""
    admin = create_async_engine(server.url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text('CREATE DATABASE "mdm"'))
    await admin.dispose()
    url = server.url.rsplit("/", 1)[0] + "/mdm"
    engine = make_engine(url, pool_size=1)
    await upgrade(engine)
    await engine.dispose()
    return url


class _Load:
    """Clients sending single-record PUTs and GETs of what they stored, until stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[tuple[str, str, httpx.Response]] = []  # (method, source_id, answer)
        self.errors: list[tuple[str, str, BaseException]] = []
        self.stored: list[str] = []
        self.stop = asyncio.Event()

    def count(self, method: str, status: int, since: int = 0) -> int:
        return sum(1 for m, _, r in self.answers[since:] if m == method and r.status_code == status)

    def reached(self, method: str, status: int, at_least: int) -> Callable[[], bool]:
        """A condition: `at_least` answers of that status to that method from now on."""
        since = len(self.answers)
        return lambda: self.count(method, status, since) >= at_least

    async def run(self, client_no: int) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=HEADERS, timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                source_id = f"PG-{client_no}-{n}"
                await self._send(client, "PUT", source_id)
                if self.stored:
                    await self._send(client, "GET", self.stored[(n * 7919) % len(self.stored)])

    async def _send(self, client: httpx.AsyncClient, method: str, source_id: str) -> None:
        try:
            if method == "PUT":
                response = await client.put(
                    f"/v1/sources/crm/customer/{source_id}",
                    json={"attributes": {"name": f"Restart Customer {source_id}"}},
                )
            else:
                response = await client.get(f"/v1/xref/customer/crm/{source_id}")
        except httpx.HTTPError as exc:  # a dropped connection or a timeout
            self.errors.append((method, source_id, exc))
            return
        self.answers.append((method, source_id, response))
        if method == "PUT" and response.status_code == 200:
            self.stored.append(source_id)
        elif response.status_code == 503:
            await asyncio.sleep(0.05)  # a polite client waits a little (not Retry-After here)


def _problem_503(response: httpx.Response) -> bool:
    return (
        response.headers.get("content-type", "").startswith("application/problem+json")
        and response.json().get("status") == 503
        and "retry-after" in response.headers
    )


async def test_postgres_restart_under_load_answers_503_and_recovers(
    private_postgres: PrivatePostgres, nats_url: str
) -> None:
    url = await _hub_database(private_postgres)
    settings = Settings(
        database=DatabaseSettings(url=url),
        nats=NatsSettings(url=nats_url),
        relay=RelaySettings(enabled=False),  # the database alone is under test here
        auth=AuthSettings(admin_key=ADMIN_KEY, read_rate=0, write_rate=0),
    )
    with serving(settings) as base:
        load = _Load(base)
        clients = [asyncio.create_task(load.run(i)) for i in range(LOAD_CLIENTS)]
        try:
            await wait_for(load.reached("PUT", 200, 30), timeout=60)
            # Twice: each restart has a moment (shutting down, starting up) when the
            # server answers connections with an error rather than refusing them.
            for _ in range(RESTARTS):
                refused = load.reached("PUT", 503, 5)
                await asyncio.to_thread(private_postgres.stop)
                # Down until requests see it (no sleep: until 503s come back).
                await wait_for(refused, timeout=60)
                await asyncio.to_thread(private_postgres.start)
                # The same hub (no restart) serves again: its pool recovers on its own.
                stored, read = load.reached("PUT", 200, 30), load.reached("GET", 200, 30)
                await wait_for(stored, timeout=60)
                await wait_for(read, timeout=60)
        finally:
            load.stop.set()
            await asyncio.gather(*clients)

        assert not load.errors, f"dropped connections or timeouts: {load.errors[:5]}"
        bad = [
            (m, sid, r.status_code, r.text)
            for m, sid, r in load.answers
            if not (200 <= r.status_code < 300 or (r.status_code == 503 and _problem_503(r)))
        ]
        assert not bad, f"neither 2xx nor a 503 problem: {bad[:5]}"

        # Every PUT answered 200 is stored; every 503'd one succeeds when retried.
        engine = create_async_engine(url)
        try:
            rows = await _rows(engine, "SELECT source_id FROM source_record")
            assert set(load.stored) <= {r[0] for r in rows}
        finally:
            await engine.dispose()
        refused = {sid for m, sid, r in load.answers if m == "PUT" and r.status_code == 503}
        assert refused
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=60) as client:
            for source_id in sorted(refused - set(load.stored)):
                retry = await client.put(
                    f"/v1/sources/crm/customer/{source_id}",
                    json={"attributes": {"name": f"Restart Customer {source_id}"}},
                )
                assert retry.status_code == 200, retry.text


# -- 3. NATS restarted under load ---------------------------------------------------------

RECORDS_PER_CLIENT = 5  # each client cycles over its records: every pass is a new version


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _Ingest:
    """Clients changing their few customers over and over: every PUT is a new version, so
    a backlog holds long runs of versions of the same golden records."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: list[int] = []
        self.errors: list[BaseException] = []
        self.stop = asyncio.Event()

    def reached(self, at_least: int) -> Callable[[], bool]:
        since = len(self.statuses)
        return lambda: sum(1 for s in self.statuses[since:] if s == 200) >= at_least

    async def run(self, client_no: int) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=HEADERS, timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    response = await client.put(
                        f"/v1/sources/crm/customer/N-{client_no}-{n % RECORDS_PER_CLIENT}",
                        json={"attributes": {"name": f"Customer {client_no} pass {n}"}},
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(exc)
                    continue
                self.statuses.append(response.status_code)


async def _stream_messages(url: str) -> int | None:
    """How many messages the stream holds (None while NATS or the stream is not there)."""
    try:
        client = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    except Exception:
        return None
    try:
        return int((await client.jetstream().stream_info("MDM")).state.messages)
    except Exception:
        return None
    finally:
        await client.close()


async def test_nats_restart_under_load_loses_no_event(
    own_database: str, own_nats: NatsServer
) -> None:
    # Small relay rounds: the backlog left by the outage goes out in many rounds, one of
    # which the hang below catches; a short publish timeout ends that round soon.
    env = hub_env(
        own_database,
        own_nats.url,
        ADMIN_KEY,
        MDM_RELAY_MAX_BACKOFF="1",
        MDM_RELAY_BATCH_SIZE="50",
        MDM_RELAY_PUBLISH_TIMEOUT="1",
    )
    engine = create_async_engine(own_database)

    async def pending() -> int:
        rows = await _rows(engine, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return int(rows[0][0])

    async def drained() -> bool:
        return await pending() == 0

    def stream_grew(beyond: int) -> Callable[[], Awaitable[bool]]:
        async def grew() -> bool:
            return ((await _stream_messages(own_nats.url)) or 0) > beyond

        return grew

    rounds: list[tuple[int, object]] = []  # (backend pid, transaction start) of relay rounds

    async def relay_in_round() -> bool:
        """A relay transaction holds claimed rows (its claim query was its last)."""
        rows = await _rows(
            engine,
            "SELECT pid, xact_start FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' AND query LIKE '%SKIP LOCKED%'",
        )
        rounds[:] = [(int(pid), start) for pid, start in rows]
        return bool(rows)

    async def round_ended(hung: set[tuple[int, object]]) -> bool:
        await relay_in_round()
        return not hung & set(rounds)

    hub = HubProcess(env)
    try:
        hub.start()
        load = _Ingest(hub.base)
        clients = [asyncio.create_task(load.run(i)) for i in range(LOAD_CLIENTS)]
        try:
            await wait_for(stream_grew(50), timeout=60)  # the relay publishes
            # NATS stops (SIGTERM) ...
            await asyncio.to_thread(own_nats.stop)
            async with httpx.AsyncClient(timeout=10) as client:
                health = await client.get(f"{hub.base}/health")
            assert health.status_code == 503 and health.json()["nats"] == "unreachable"
            # Ingestion goes on without NATS; a backlog builds up.
            await wait_for(load.reached(250), timeout=60)
            assert await pending() >= 250
            await asyncio.to_thread(own_nats.start)
            # As soon as the relay is back at work on the backlog, NATS hangs (SIGSTOP):
            # the relay's round waits for PubAcks that do not come, some of its messages
            # sit unread in the server's socket, later versions in the chain wait.
            await wait_for(relay_in_round, timeout=60, every=0.005)
            own_nats.freeze()
            try:
                await wait_for(relay_in_round, timeout=60)
                hung = set(rounds)
                # That round gives up (publish timeout) and ends without marking them.
                await wait_for(lambda: round_ended(hung), timeout=60)
            finally:
                own_nats.thaw()
            await asyncio.to_thread(own_nats.stop)  # and stops again
            assert await pending() > 0
            await wait_for(load.reached(50), timeout=60)
            # ... and it is started for good.
            await asyncio.to_thread(own_nats.start)
            await wait_for(load.reached(100), timeout=60)
        finally:
            load.stop.set()
            await asyncio.gather(*clients)
        assert not load.errors, load.errors[:5]
        assert set(load.statuses) == {200}

        # After it settles the relay has published every row, each exactly once, in order.
        await wait_for(drained, timeout=90)
        outbox = await _outbox(engine)
    finally:
        hub.stop()
        await engine.dispose()
    client = await nats.connect(own_nats.url)
    try:
        msgs = await read_stream(client.jetstream(), "MDM", "mdm.>", len(outbox), timeout=60)
    finally:
        await client.close()
    _check_stream_order(msgs, outbox)
    assert max(v for _, v in outbox.values()) > 3  # records went through many versions
