"""Train a model and adopt it only if it is plausible (`mdm train`, and after `mdm load`).

The fitted model and the model in force score the same candidate pairs: a
repeatable sample of held records, each against the golden records the matcher
would compare it with as though it arrived now (its blocking keys, the
candidate index's generic-key cap and at most 40 golden records, the record
itself left out of its own golden record). matching.adoption counts each
model's links, review pairs and pairs left apart and decides; the numbers and
the decision are logged and stored with the fitted version (match_model.adoption),
which is in force only when adopted (or forced).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from matching.adoption import Tally, judge, report, tally
from matching.blocking import blocking_keys
from matching.prepare import Prepared
from mdm.domain.mastering import ActiveModel, MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.stored import Member
from mdm.services.matcher import GENERIC_KEY_CAP, BatchPool, Fitted, fit_model, store_model

log = logging.getLogger(__name__)

#: Held records whose candidate pairs the check scores.
CHECK_SAMPLE = 2_000
#: Records whose candidates are fetched in one go.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Adoption:
    entity: str
    version: int  # the fitted model's stored version
    current_version: int  # the version in force when it was checked
    adopted: bool  # in force now (passed the check, or forced)
    forced: bool
    reasons: tuple[str, ...]  # why the check refused it (empty: it passed)
    current: Tally
    fitted: Tally
    records: int  # records it was fitted on
    prior: float


async def candidate_pairs(
    uow: UnitOfWork, entity: str, model: ActiveModel, records: int = CHECK_SAMPLE
) -> tuple[int, list[tuple[Prepared, list[Prepared]]]]:
    """(record, members of a candidate golden record) for a sample of held records; and
    the number of records sampled."""
    store = uow.matches
    sample = await store.sample_members(entity, records, seed=0.25)
    pairs: list[tuple[Prepared, list[Prepared]]] = []
    for chunk in _chunks(sample, _CHUNK):
        keys = [blocking_keys(model.model, m.features) for m in chunk]
        owners, generic = await store.candidate_owners(
            entity, sorted({k for ks in keys for k in ks}), GENERIC_KEY_CAP
        )
        pool = BatchPool(generic=generic, db_owners=owners)
        members = await store.members({g for found in owners.values() for g in found})
        for record, its_keys in zip(chunk, keys, strict=True):
            for golden_id in pool.candidates(its_keys):
                others = [
                    m.features
                    for m in members.get(golden_id, [])
                    if m.record_id != record.record_id
                ]
                if others:
                    pairs.append((record.features, others))
    return len(sample), pairs


def _chunks(items: Sequence[Member], size: int) -> Iterator[Sequence[Member]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def check_and_store(
    uow: UnitOfWork, fitted: Fitted, *, force: bool = False, records: int = CHECK_SAMPLE
) -> Adoption:
    """Compare `fitted` with the model it started from, store it with the check (in force
    if it passed or `force`), and log the numbers and the decision."""
    current = fitted.current
    sampled, pairs = await candidate_pairs(uow, fitted.entity, current, records)
    before = tally(current.model, current.frequencies, pairs)
    new = fitted.active()
    after = tally(new.model, new.frequencies, pairs)
    verdict = judge(fitted.model, fitted.converged, before, after)
    adopted = verdict.adopt or force
    stored = {
        **report(verdict, force, before, after),
        "compared_with": current.model.version,
        "sample_records": sampled,
        "pairs": len(pairs),
        "converged": fitted.converged,
        "prior": {"current": current.model.prior, "fitted": fitted.model.prior},
    }
    version = await store_model(uow, fitted, adopted=adopted, adoption=stored)
    log.info(
        "%s model version %d %s (against version %d on %d pairs: links %d -> %d, "
        "review %d -> %d, apart %d -> %d)%s",
        fitted.entity,
        version,
        stored["decision"],
        current.model.version,
        len(pairs),
        before.link,
        after.link,
        before.review,
        after.review,
        before.apart,
        after.apart,
        f": {'; '.join(verdict.reasons)}" if verdict.reasons else "",
    )
    return Adoption(
        entity=fitted.entity,
        version=version,
        current_version=current.model.version,
        adopted=adopted,
        forced=force and not verdict.adopt,
        reasons=verdict.reasons,
        current=before,
        fitted=after,
        records=fitted.records,
        prior=fitted.model.prior,
    )


async def train_and_adopt(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    *,
    sample: int = 200_000,
    seed: int = 0,
    force: bool = False,
) -> Adoption:
    """Fit the entity's model on the held records, check it, store it; adopt it if it passed."""
    fitted = await fit_model(uow, rules, entity, sample=sample, seed=seed)
    return await check_and_store(uow, fitted, force=force)


# -- retraining as the held records grow (mdm/api/retrain.py) ---------------------------


def due(held_at_fit: int | None, records: int, growth: float, minimum: int) -> bool:
    """Retrain? `records` live now; `held_at_fit` when the newest model was fitted
    (None: the packaged model is the newest, then `minimum` records are enough)."""
    if held_at_fit is None:
        return records >= minimum
    return records >= growth * max(held_at_fit, 1)


async def retrain_due(uow: UnitOfWork, entity: str, growth: float, minimum: int) -> bool:
    """Whether `entity`'s live records grew by `growth` since its newest fitted model (or
    reached `minimum` under the packaged one), refused models counting as fitted."""
    held = uow.runs
    records = await held.live_records(entity)
    fitted_at = await uow.matches.newest_fit(entity)
    before = None if fitted_at is None else records - await held.live_records(entity, fitted_at)
    return due(before, records, growth, minimum)
