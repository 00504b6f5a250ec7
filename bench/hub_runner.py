"""The hub as a matcher in bench/match_quality.py: four ways to run it on one dataset.

Every record goes in through the hub's own ingestion path, `POST /v1/sources/
{source}/{entity}/batch` (200 records a request, in the dataset's order,
in-process over ASGI), into a scratch database on the local PostgreSQL, and
each record's golden id is read back with `POST /v1/xref/lookup` (the answer
the hub gives its integrations).

1. **out of the box**: the packaged model, nothing else.
2. **automatic**: an app with its retraining check on (`Settings.retrain`, the
   Retrainer of `mdm serve`, every `RETRAIN_INTERVAL` seconds, the default
   growth and minimum) ingests the records; then `GET /v1/match/{entity}/status`
   is polled until the hub is idle: no re-matching run pending or running, no
   `mdm train` child at work and none due (the status says so). Whatever the hub
   trained and re-matched by itself is in the result.
3. **mdm train + mdm rematch**: on the database of 1, what `mdm train ENTITY`
   runs (mdm.cli's `_train_and_rematch`: fit, adoption check, adopt if it passes,
   without --force, then re-match).
4. **two-pass**: a fresh database holding the model that 3 adopted, every record
   ingested again. `HubResult.differing` counts the records whose cluster in 3
   is not their cluster here (partitions compared, not golden ids): 0 when
   load-then-rematch equals the two-pass result.

For each: the open review tasks (review_task), the seconds spent in the batch
POSTs, and for 2 and 3 the seconds spent training and re-matching. A record the
hub rejects (422: a FEBRL record without a surname, which the worker schema
requires) gets no golden id; match_quality scores it as a singleton.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import secrets
import sys
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bench.evaluate import differing_records
from mdm.adapters.matching import MatchStore
from mdm.api.app import create_app
from mdm.bootstrap import load_rules, make_engine
from mdm.cli import _train_and_rematch
from mdm.settings import (
    AuthSettings,
    DatabaseSettings,
    NatsSettings,
    RelaySettings,
    RetrainSettings,
    Settings,
    normalize_database_url,
)
from tests.support import scratch_database

Key = tuple[str, str]
ADMIN_KEY = "mdm_bench_" + secrets.token_urlsafe(16)
BATCH = 200
#: Seconds between the automatic row's retraining checks (`mdm serve`: 10 minutes).
RETRAIN_INTERVAL = 2.0
#: The automatic row gives up waiting for the hub to settle after this many seconds.
SETTLE_TIMEOUT = 1800.0

LABELS = (
    "hub, out of the box",
    "hub, automatic training",
    "hub, mdm train + mdm rematch",
    "hub, two-pass (trained model, fresh database)",
)


@dataclass
class HubResult:
    """One way of running the hub on a dataset: its golden ids and what it cost."""

    label: str
    clusters: dict[Key, Hashable] = field(default_factory=dict)
    open_reviews: int | None = None
    ingest_seconds: float | None = None  # summed over the batch POSTs
    train_seconds: float | None = None
    rematch_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    failed: str | None = None
    differing: int | None = None  # the two-pass row: records clustered unlike row 3


def _log(message: str) -> None:
    print(f"  hub: {message}", file=sys.stderr, flush=True)


def _settings(url: str, retrain: RetrainSettings | None = None) -> Settings:
    return Settings(
        database=DatabaseSettings(url=url, pool_size=4),
        nats=NatsSettings(url=os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222")),
        relay=RelaySettings(enabled=False),  # events stay in the outbox; not measured here
        auth=AuthSettings(admin_key=ADMIN_KEY, read_rate=0, write_rate=0),  # unthrottled, as admin
        retrain=retrain or RetrainSettings(),  # interval 0: off, as in any app built in code
    )


def _client(url: str, retrain: RetrainSettings | None = None) -> AsyncTestClient[Any]:
    client: AsyncTestClient[Any] = AsyncTestClient(create_app(_settings(url, retrain)))
    client.headers["X-API-Key"] = ADMIN_KEY
    return client


async def _ingest(
    client: AsyncTestClient[Any], records: Sequence[dict[str, Any]], entity: str
) -> tuple[int, float]:
    """Every record through the batch endpoint, in order, grouped by source: the records
    rejected, and the seconds spent in the POSTs."""
    rejected = 0
    seconds = 0.0
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        by_source: dict[str, list[dict[str, Any]]] = {}
        for r in chunk:
            by_source.setdefault(r["source"], []).append(
                {"source_id": r["source_id"], "attributes": r["attributes"]}
            )
        for source, items in by_source.items():
            began = time.perf_counter()
            response = await client.post(f"/v1/sources/{source}/{entity}/batch", json=items)
            seconds += time.perf_counter() - began
            if response.status_code != 200:
                raise RuntimeError(f"batch failed: {response.status_code} {response.text[:500]}")
            rejected += response.json()["rejected"]
    return rejected, seconds


async def _golden_ids(
    client: AsyncTestClient[Any], records: Sequence[dict[str, Any]], entity: str
) -> dict[Key, Hashable]:
    out: dict[Key, Hashable] = {}
    keys = [(r["source"], r["source_id"]) for r in records]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        response = await client.post(
            "/v1/xref/lookup",
            json={"keys": [{"entity": entity, "source": s, "source_id": i} for s, i in chunk]},
        )
        response.raise_for_status()
        for (source, source_id), result in zip(chunk, response.json()["results"], strict=True):
            if result.get("golden_id"):
                out[(source, source_id)] = result["golden_id"]
    return out


async def _query(url: str, sql: str, **params: Any) -> list[Any]:
    # The test client runs the app on a thread of its own: the bench uses an engine of ours.
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def _open_reviews(url: str, entity: str) -> int:
    [(count,)] = await _query(
        url,
        "SELECT count(*) FROM review_task WHERE entity = :entity AND status = 'open'",
        entity=entity,
    )
    return int(count)


async def _rematch_seconds(url: str, entity: str, after: dt.datetime | None = None) -> float:
    """Wall seconds of the finished re-matching runs of `entity` (started after `after`)."""
    rows = await _query(
        url,
        "SELECT started_at, finished_at FROM rematch_run WHERE entity = :entity"
        " AND status = 'finished'",
        entity=entity,
    )
    return sum(
        (done - began).total_seconds() for began, done in rows if after is None or began >= after
    )


async def _models(url: str, entity: str) -> list[Any]:
    return await _query(
        url,
        "SELECT version, trained_on, adopted, adoption FROM match_model"
        " WHERE entity = :entity ORDER BY version",
        entity=entity,
    )


def _model_notes(models: Sequence[Any]) -> list[str]:
    """What each fitted version was fitted on and whether the check adopted it."""
    notes = []
    for m in models:
        if m.trained_on is None:
            continue
        decision = (m.adoption or {}).get("decision", "adopted" if m.adopted else "refused")
        reasons = "; ".join((m.adoption or {}).get("reasons", []))
        notes.append(
            f"v{m.version} fitted on {m.trained_on:,} records, {decision}"
            + (f" ({reasons})" if reasons else "")
        )
    return notes


async def _out_of_the_box(url: str, records: Sequence[dict[str, Any]], entity: str) -> HubResult:
    result = HubResult(LABELS[0])
    async with _client(url) as client:
        rejected, result.ingest_seconds = await _ingest(client, records, entity)
        result.clusters = await _golden_ids(client, records, entity)
    result.open_reviews = await _open_reviews(url, entity)
    if rejected:
        result.notes.append(f"{rejected} records rejected")
    return result


class _Collect(logging.Handler):
    """The Retrainer's log lines (mdm.retrain), with their times."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.created, record.getMessage()))


async def _automatic(url: str, records: Sequence[dict[str, Any]], entity: str) -> HubResult:
    """Ingest into an app whose retraining check is on, then wait until it is idle."""
    result = HubResult(LABELS[1])
    policy = RetrainSettings(interval=RETRAIN_INTERVAL)
    collect = _Collect()
    logger = logging.getLogger("mdm.retrain")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the bench prints what it needs
    logger.addHandler(collect)
    try:
        async with _client(url, policy) as client:
            began = dt.datetime.now(dt.UTC)
            rejected, result.ingest_seconds = await _ingest(client, records, entity)
            ingested = time.monotonic()
            while True:
                # idle: no re-matching run pending or running, no training running or
                # due (the status reads the retraining check's lock and its policy).
                status = (await client.get(f"/v1/match/{entity}/status")).json()
                # A check has run after the last record (or training started) before idle counts.
                checked = time.monotonic() - ingested > 1.5 * RETRAIN_INTERVAL
                if status["state"] == "idle" and checked:
                    break
                if time.monotonic() - ingested > SETTLE_TIMEOUT:
                    result.failed = (
                        f"not idle {SETTLE_TIMEOUT:.0f} s after the last record: state "
                        f"{status['state']}"
                    )
                    break
                await asyncio.sleep(0.5)
            settle = time.monotonic() - ingested
            result.clusters = await _golden_ids(client, records, entity)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
        logger.propagate = propagate
    result.open_reviews = await _open_reviews(url, entity)
    children = _child_seconds(collect.lines)
    models = await _models(url, entity)
    held = len(records) - rejected
    if not children:
        result.notes.append(
            f"never trained: {held:,} records held, it trains from "
            f"{policy.minimum:,} under the packaged model"
            if held < policy.minimum
            else "never trained"
        )
    else:
        rematch = await _rematch_seconds(url, entity, began)
        result.rematch_seconds = rematch
        result.train_seconds = max(sum(children) - rematch, 0.0)
        runs = f"{len(children)} training run{'s' if len(children) > 1 else ''}"
        result.notes.append(f"{runs}, idle {settle:.0f} s after the load")
        result.notes += _model_notes(models)
    for _, line in collect.lines:
        if line.startswith("mdm train"):
            _log(line.replace("\n", " | "))
    if rejected:
        result.notes.append(f"{rejected} records rejected")
    return result


def _child_seconds(lines: Sequence[tuple[float, str]]) -> list[float]:
    """Seconds of each `mdm train` child the Retrainer ran: from its "training" line to
    its "mdm train ... (exit" line."""
    spans = []
    began: float | None = None
    for at, line in lines:
        if line.endswith(": training"):
            began = at
        elif line.startswith("mdm train") and began is not None:
            spans.append(at - began)
            began = None
    return spans


async def _train_rematch(url: str, records: Sequence[dict[str, Any]], entity: str) -> HubResult:
    """`mdm train ENTITY` (no --force) on the database of the out-of-the-box row."""
    result = HubResult(LABELS[2])
    began = dt.datetime.now(dt.UTC)
    said = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(said):
        await _train_and_rematch(_settings(url), entity, 200_000, 0, False, True)
    seconds = time.perf_counter() - started
    for line in said.getvalue().splitlines():
        _log(f"mdm train {entity}: {line}")
    result.rematch_seconds = await _rematch_seconds(url, entity, began)
    result.train_seconds = seconds - result.rematch_seconds
    result.notes += _model_notes(await _models(url, entity))
    async with _client(url) as client:
        result.clusters = await _golden_ids(client, records, entity)
    result.open_reviews = await _open_reviews(url, entity)
    return result


async def _two_pass(
    url: str, trained_url: str, records: Sequence[dict[str, Any]], entity: str
) -> HubResult | None:
    """A fresh database holding the model in force on `trained_url`, everything again;
    None when that is still the packaged model."""
    stored = await _model_in_force(trained_url, entity)
    if stored is None:
        return None
    model, frequencies, trained_on = stored
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await load_rules().models.current(
                MatchStore(conn), entity
            )  # the packaged one, as version 1
            await MatchStore(conn).add_model(entity, model, frequencies, trained_on)
    finally:
        await engine.dispose()
    result = HubResult(LABELS[3])
    async with _client(url) as client:
        _, result.ingest_seconds = await _ingest(client, records, entity)
        result.clusters = await _golden_ids(client, records, entity)
    result.open_reviews = await _open_reviews(url, entity)
    return result


async def _model_in_force(url: str, entity: str) -> tuple[dict[str, Any], Any, int] | None:
    """The fitted model in force on `url` (model, term frequencies, records fitted on)."""
    rows = await _query(
        url,
        "SELECT model, term_frequencies, trained_on FROM match_model WHERE entity = :entity"
        " AND adopted ORDER BY version DESC LIMIT 1",
        entity=entity,
    )
    if not rows or rows[0].trained_on is None:
        return None
    return rows[0].model, rows[0].term_frequencies, rows[0].trained_on


async def _run(records: Sequence[dict[str, Any]], entity: str) -> list[HubResult]:
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    keys = [(r["source"], r["source_id"]) for r in records]
    results: list[HubResult] = []
    async with scratch_database(server) as url:
        first = await _out_of_the_box(url, records, entity)
        results.append(first)
        _log(f"{first.label}: {first.ingest_seconds:.1f} s in the batch POSTs")
        third = await _guarded(LABELS[2], _train_rematch(url, records, entity))
        if third.failed is None:
            async with scratch_database(server) as fresh:
                fourth = await _guarded(LABELS[3], _two_pass(fresh, url, records, entity))
        else:
            fourth = None
    async with scratch_database(server) as url:
        second = await _guarded(LABELS[1], _automatic(url, records, entity))
    results += [second, third]
    if fourth is None:
        _log("mdm train kept the packaged model: no two-pass row")
    else:
        if fourth.failed is None:
            fourth.differing = differing_records(third.clusters, fourth.clusters, keys)
            _log(f"load-then-rematch against two-pass: {fourth.differing} records differ")
        results.append(fourth)
    return results


async def _guarded(label: str, work: Any) -> Any:
    """`work`'s result, or a HubResult saying how it failed (the table shows it)."""
    try:
        return await work
    except Exception as exc:  # report the failure in the table, never a number
        _log(f"{label} failed: {exc!r}")
        return HubResult(label, failed=repr(exc))


def run_hub(records: list[dict[str, Any]], entity: str) -> list[HubResult]:
    return asyncio.run(_run(records, entity))
