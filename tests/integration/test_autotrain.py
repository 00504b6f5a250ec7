"""Training without anyone asking: `mdm load` trains, checks, adopts and re-matches;
`mdm train` adopts a plausible model only; a refused model stays out of force."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mdm.adapters.bulk import bulk_load
from mdm.adapters.bulk_files import Row
from mdm.adapters.matching import CachedModels, MatchStore
from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.api.retrain import Retrainer
from mdm.bootstrap import load_rules, make_engine
from mdm.services.adoption import check_and_store
from mdm.services.matcher import fit_model
from mdm.settings import RetrainSettings, Settings
from tests.integration.test_bulk_load import _mdm, workers
from tests.support import scratch_database
from tests.unit.test_matching_model import _older_worker_model


@pytest.fixture
async def scratch(server_database_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_database_url) as url:
        yield url


def write(tmp_path: Path, items: list[dict[str, Any]]) -> Path:
    """The items as NDJSON, one line per source id (its last)."""
    items = list({item["source_id"]: item for item in items}.values())
    path = tmp_path / "workers.ndjson"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


async def rows(url: str, sql: str) -> list[Any]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        found = (await conn.execute(text(sql))).all()
    await engine.dispose()
    return list(found)


ONE_PERSON = (
    {
        "given_name": "Katarzyna",
        "family_name": "Wieczorek-Lindqvist",
        "date_of_birth": "1979-06-02",
        "email": "k.wieczorek@example.org",
    },
    {
        "given_name": "Katrin",
        "family_name": "Wetschorek-Lyndqvist",
        "email": "k.wieczorek@example.com",
    },
)
MODELS = "SELECT version, adopted, adoption FROM match_model WHERE entity = 'worker' ORDER BY 1"
RUNS = "SELECT model_version, status, done, total FROM rematch_run WHERE entity = 'worker'"


async def test_a_load_trains_checks_adopts_and_rematches(tmp_path: Path, scratch: str) -> None:
    # One person twice, the second record mistyped but for the e-mail's local part
    # (another domain), which the packaged model leaves in the review band as two
    # golden records; the model fitted on these records weighs that local part more.
    hcm, psa = ONE_PERSON
    items = workers(600, seed=3)
    items.insert(100, {"source_id": "H-one", "attributes": hcm})
    items.append({"source_id": "P-one", "attributes": psa})
    path = write(tmp_path, items)
    load = _mdm(["load", "--source", "hcm", "--entity", "worker", "--quiet", str(path)], scratch)
    out, _ = load.communicate(timeout=300)
    assert load.returncode == 0, out
    assert "worker model version 2: trained on" in out and "adopted" in out, out

    (packaged, fitted) = await rows(scratch, MODELS)
    assert (packaged.version, packaged.adopted, packaged.adoption) == (1, True, None)
    assert (fitted.version, fitted.adopted) == (2, True)
    check = fitted.adoption
    assert (check["decision"], check["reasons"], check["compared_with"]) == ("adopted", [], 1)
    assert check["converged"] is True and check["pairs"] > 1000
    assert check["current"]["link"] > 100 and check["fitted"]["link"] > 100
    assert sum(check["fitted"].values()) == sum(check["current"].values()) == check["pairs"]
    # The held records were re-matched under the adopted version, to the end.
    [run] = await rows(scratch, RUNS)
    assert (run.model_version, run.status) == (2, "finished") and run.done == run.total > 0
    # Split under the packaged model (a review task of version 1), joined under the fitted one.
    [task] = await rows(
        scratch,
        "SELECT t.model_version, t.golden_id, t.candidate_id FROM review_task t "
        "JOIN source_record s ON s.id = t.record_id WHERE s.source_id = 'P-one'",
    )
    assert task.model_version == 1
    [merge] = await rows(
        scratch,
        "SELECT survivor_id, loser_ids, actor, reason FROM merge_event "
        f"WHERE survivor_id = '{task.candidate_id}'",
    )
    assert (merge.loser_ids, merge.actor) == ([task.golden_id], "matcher")
    assert merge.reason.startswith("re-matched under model version 2")
    goldens = await rows(
        scratch,
        "SELECT DISTINCT golden_id FROM source_record WHERE source_id IN ('H-one', 'P-one')",
    )
    assert goldens == [(task.candidate_id,)]

    again = _mdm(["load", "--source", "hcm", "--entity", "worker", "--quiet", str(path)], scratch)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert len(await rows(scratch, MODELS)) == 2, out  # nothing written: nothing to train


async def test_no_train_leaves_the_model_alone_and_mdm_train_no_rematch_adopts_only(
    tmp_path: Path, scratch: str
) -> None:
    path = write(tmp_path, workers(300, seed=4))
    args = ["load", "--source", "hcm", "--entity", "worker", "--quiet", "--no-train", str(path)]
    load = _mdm(args, scratch)
    out, _ = load.communicate(timeout=300)
    assert load.returncode == 0, out
    assert "model version" not in out, out
    assert [r.version for r in await rows(scratch, MODELS)] == [1]
    assert await rows(scratch, RUNS) == []

    train = _mdm(["train", "worker", "--no-rematch"], scratch)
    out, _ = train.communicate(timeout=300)
    assert train.returncode == 0, out
    assert "adopted" in out and "re-matching" not in out, out
    assert [(r.version, r.adopted) for r in await rows(scratch, MODELS)] == [(1, True), (2, True)]
    assert await rows(scratch, RUNS) == []


async def test_an_implausible_model_is_refused_kept_out_of_force_and_stored_with_why(
    scratch: str,
) -> None:
    rules = load_rules()
    engine = make_engine(scratch, pool_size=1)
    report = await bulk_load(
        engine, rules, "worker", "hcm", [Row(i + 1, x) for i, x in enumerate(workers(300))]
    )
    assert report.written > 0
    async with engine.begin() as conn:
        fitted = await fit_model(SqlUnitOfWork(conn), rules, "worker")
        # Agreeing on the family name made evidence against a match, and EM stuck.
        family = fitted.model.fields[1]
        exact = msgspec.structs.replace(family.levels[0], m=0.001, u=0.01)
        fields = list(fitted.model.fields)
        fields[1] = msgspec.structs.replace(family, levels=(exact, *family.levels[1:]))
        broken = msgspec.structs.replace(fitted.model, fields=tuple(fields))
        done = await check_and_store(
            SqlUnitOfWork(conn), dataclasses.replace(fitted, model=broken, converged=False)
        )
    assert not done.adopted and not done.forced
    assert done.reasons == (
        "EM did not converge",
        "family_name: agreeing (exact) has m 0.001 <= u 0.01",
    )
    assert (done.version, done.current_version) == (2, 1)
    async with engine.connect() as conn:
        assert await MatchStore(conn).current_version("worker") == 1
        assert (await CachedModels().current(MatchStore(conn), "worker")).model.version == 1
        adopted, check = await MatchStore(conn).adoption("worker", 2)
    assert not adopted
    assert check["decision"] == "refused" and check["reasons"] == list(done.reasons)
    assert check["current"]["link"] == done.current.link > 0

    # Forced, the same kind of model is adopted, and says so.
    async with engine.begin() as conn:
        fitted = await fit_model(SqlUnitOfWork(conn), rules, "worker")
        forced = await check_and_store(
            SqlUnitOfWork(conn), dataclasses.replace(fitted, converged=False), force=True
        )
    async with engine.connect() as conn:
        assert await MatchStore(conn).current_version("worker") == forced.version == 3
        adopted, check = await MatchStore(conn).adoption("worker", 3)
    await engine.dispose()
    assert forced.adopted and forced.forced and adopted
    assert check["decision"] == "forced" and check["reasons"] == ["EM did not converge"]


async def test_the_hub_retrains_when_the_held_records_grew(
    scratch: str, settings: Settings
) -> None:
    rules = load_rules()
    engine = make_engine(scratch, pool_size=2)
    items = workers(400, seed=6)
    first = [Row(i + 1, x) for i, x in enumerate(items[:200])]
    await bulk_load(engine, rules, "worker", "hcm", first)
    policy = RetrainSettings(interval=3600, growth=2.0, minimum=150)
    hub = dataclasses.replace(
        settings, database=dataclasses.replace(settings.database, url=scratch), retrain=policy
    )
    retrainer = Retrainer(engine, hub)
    try:
        # 200 records under the packaged model: at least `minimum`, so it trains.
        assert await retrainer.check() == ["worker"]
        [run] = await rows(scratch, RUNS)
        assert (run.model_version, run.status) == (2, "finished")
        # Nothing grew since: nothing to do.
        assert await retrainer.check() == []
        later = [Row(i + 1, x) for i, x in enumerate(items[200:])]
        await bulk_load(engine, rules, "worker", "hcm", later)
        held = len(await rows(scratch, "SELECT id FROM source_record"))
        assert held >= 2 * 200 - 10  # a few later records updated earlier ones
        policy = dataclasses.replace(policy, growth=held / 200)
        retrainer.settings = dataclasses.replace(hub, retrain=policy)
        assert await retrainer.check() == ["worker"]
    finally:
        await engine.dispose()
    assert [r.version for r in await rows(scratch, MODELS)] == [1, 2, 3]


async def test_a_model_stored_by_an_older_release_is_fitted_in_the_packaged_shape(
    scratch: str,
) -> None:
    # A hub that stored an older release's worker model (no `other_mailbox` e-mail
    # level, no exclusive identifiers) takes this release's levels and rules at its next
    # fit, with the check against the model in force, and keeps its keys.
    older = msgspec.structs.replace(_older_worker_model(), version=1)
    engine = make_engine(scratch, pool_size=1)
    async with engine.begin() as conn:
        await MatchStore(conn).ensure_model("worker", 1, older.to_dict())
    rules = load_rules()
    await bulk_load(
        engine, rules, "worker", "hcm", [Row(i + 1, x) for i, x in enumerate(workers(300))]
    )
    async with engine.begin() as conn:
        fitted = await fit_model(SqlUnitOfWork(conn), rules, "worker")
        done = await check_and_store(SqlUnitOfWork(conn), fitted)
    async with engine.connect() as conn:
        stored = await MatchStore(conn).model("worker", done.version)
    await engine.dispose()
    assert stored is not None
    email = next(f for f in stored.model["fields"] if f["name"] == "email")
    assert [lv["label"] for lv in email["levels"]] == [
        "exact",
        "same_local_part",
        "other_mailbox",
        "same_domain",
        "else",
    ]
    assert stored.model["identity"]["exclusive"] == ["national_id", "employee_number"]
    assert stored.model["blocking"] == older.to_dict()["blocking"]
