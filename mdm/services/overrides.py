"""Stewards' survivorship overrides: pin a golden value, ignore a source value.

A pin makes a value win for one attribute of one golden record whatever the
rules say; an ignore keeps one source record's value of one attribute out of
survivorship. Both rerun survivorship at once in the same transaction, so the
golden record's new version, its history row (cause: the steward, with the
reason given) and its event say what the decision changed. The decision itself
is kept with who made it and why (golden_pin, value_ignore).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from matching import standardize_record
from matching.records import REQUIRED
from mdm.domain.errors import FieldProblem, NotFound, ValidationFailed
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.domain.sources import check_entity
from mdm.domain.survivorship import AGGREGATE
from mdm.services.context import RequestContext
from mdm.services.events import Touch, record_changes
from mdm.services.lifecycle import lock_active
from schemas.entities import ENTITY_TYPES
from schemas.events import Causation
from schemas.text import explain


@dataclass(frozen=True, slots=True)
class OverrideResult:
    golden_id: str
    version: int
    changed: bool  # the golden record got a new version


def _check_attribute(entity: str, attribute: str, path: str) -> None:
    fields = ENTITY_TYPES[entity].__struct_fields__
    if attribute not in fields:
        raise ValidationFailed(
            f"{entity} has no attribute {attribute!r}",
            [FieldProblem(path, f"unknown attribute; known: {', '.join(sorted(fields))}")],
        )


#: Attributes that standardizing another attribute reads (a phone's or tax id's country).
_CONTEXT = ("tax_country", "country", "address")


def _pinned_value(
    rules: MasteringRules,
    entity: str,
    attribute: str,
    value: Any,
    golden_attributes: dict[str, Any],
) -> Any:
    """Validate `value` as the entity's schema types `attribute`, then standardize it.

    A pin is held to the same contract as a source record: a value the schema
    rejects, or that standardization flags as invalid (a tax id failing its check
    digit), is refused with the problem at `$.value`. The golden record's country
    attributes are the context, as a source record's own would be.
    """
    probe = {k: golden_attributes[k] for k in _CONTEXT if k in golden_attributes}
    probe = {REQUIRED[entity]: "x", **probe, attribute: value}
    try:
        msgspec.convert(probe, ENTITY_TYPES[entity], strict=False)
    except msgspec.ValidationError as e:
        message = str(e)
        detail = explain(message.split(" - at `$.", 1)[0])
        raise ValidationFailed(
            f"not a valid {entity} {attribute}", [FieldProblem("$.value", detail)]
        ) from None
    std = standardize_record(entity, probe)
    problems = [
        FieldProblem("$.value" + w.path[len(attribute) :], w.message)
        for w in (*std.errors, *std.warnings)
        if w.path == attribute or w.path.startswith(attribute + ".")
    ]
    if problems:
        raise ValidationFailed(f"not a valid {entity} {attribute}", problems)
    standardized = std.values[attribute]
    if rules.survivorship.for_entity(entity).rules_for(attribute) == (AGGREGATE,):
        return [standardized]  # an aggregated attribute is a list; the pin is all of it
    return standardized


async def _recompute(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    golden_id: str,
    actor: str,
    reason: str | None,
    ctx: RequestContext,
    goldens: dict[str, Any],
) -> OverrideResult:
    before = goldens[golden_id].version
    touch = Touch(cause=Causation(kind="steward", actor=actor, reason=reason))
    changes = await record_changes(uow, rules, entity, {golden_id: touch}, ctx, goldens)
    version = changes.versions[golden_id]
    return OverrideResult(golden_id, version, version != before)


async def pin_value(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    golden_id: str,
    attribute: str,
    value: Any,
    actor: str,
    reason: str | None,
    ctx: RequestContext,
) -> OverrideResult:
    """Pin `value` as `attribute` of an active golden record (replacing an earlier pin)."""
    check_entity(entity)
    _check_attribute(entity, attribute, "$.attribute")
    goldens = await lock_active(uow, entity, [golden_id])
    pinned = _pinned_value(rules, entity, attribute, value, goldens[golden_id].attributes)
    await uow.overrides.set_pin(golden_id, attribute, pinned, actor, reason, ctx.received_at)
    return await _recompute(uow, rules, entity, golden_id, actor, reason, ctx, goldens)


async def unpin_value(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    golden_id: str,
    attribute: str,
    actor: str,
    reason: str | None,
    ctx: RequestContext,
) -> OverrideResult:
    """Remove a pin: the rules decide `attribute` again."""
    check_entity(entity)
    goldens = await lock_active(uow, entity, [golden_id])
    if not await uow.overrides.delete_pin(golden_id, attribute):
        raise NotFound(f"{golden_id} has no pin on {attribute!r}")
    return await _recompute(uow, rules, entity, golden_id, actor, reason, ctx, goldens)


async def _member_record(uow: UnitOfWork, golden_id: str, source: str, source_id: str) -> int:
    for m in await uow.merges.members(golden_id):
        if (m.source, m.source_id) == (source, source_id) and not m.deleted:
            return m.record_id
    raise NotFound(f"{source}:{source_id} is not a live source record of {golden_id}")


async def ignore_value(
    uow: UnitOfWork,
    rules: MasteringRules,
    entity: str,
    golden_id: str,
    attribute: str,
    source: str,
    source_id: str,
    actor: str,
    reason: str | None,
    ctx: RequestContext,
    *,
    ignore: bool = True,
) -> OverrideResult:
    """Never use (or, with ignore=False, use again) one source record's `attribute`."""
    check_entity(entity)
    _check_attribute(entity, attribute, "$.attribute")
    goldens = await lock_active(uow, entity, [golden_id])
    record_id = await _member_record(uow, golden_id, source, source_id)
    store = uow.overrides
    if ignore:
        await store.set_ignore(record_id, attribute, actor, reason, ctx.received_at)
    elif not await store.delete_ignore(record_id, attribute):
        raise NotFound(f"{source}:{source_id}'s {attribute!r} is not ignored")
    return await _recompute(uow, rules, entity, golden_id, actor, reason, ctx, goldens)


async def list_overrides(uow: UnitOfWork, entity: str, golden_id: str) -> dict[str, Any]:
    check_entity(entity)
    golden = await uow.records.golden(golden_id)
    if golden is None or golden.entity != entity:
        raise NotFound(f"no {entity} golden record {golden_id!r}")
    store = uow.overrides
    return {"pins": await store.pins(golden_id), "ignores": await store.ignores(golden_id)}
