"""The use cases (mdm/services/) on the in-memory unit of work: no database, no NATS.

Ingest, merge, unmerge, overrides (pins), references and re-matching, each through
the same `UnitOfWork` port the API drives on PostgreSQL. The rules are the packaged
ones with `employee_number` configured sensitive, as a hub started with
MDM_SENSITIVE_ATTRIBUTES=employee_number has them (mdm.bootstrap.rules_of, and
tests/integration/test_sensitive.py): every use case must keep it out of its events
(schemas/events.py: a sensitive attribute is named in `payload.withheld`, never
carried in `payload.attributes` or anywhere else in the envelope), while the golden
record and its history keep the value.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from matching.model import default_model
from mdm.bootstrap import load_rules
from mdm.domain.errors import Conflict, NotFound
from mdm.domain.mastering import MasteringRules
from mdm.domain.stored import UNDECIDED, ReviewFilter
from mdm.services.context import RequestContext
from mdm.services.ingest import Accepted, IncomingRecord, delete_record, ingest_records
from mdm.services.lifecycle import merge_goldens, unmerge_records
from mdm.services.overrides import pin_value, unpin_value
from mdm.services.rematch import Rematch
from mdm.services.reviews import decide
from schemas.events import Event, ReviewEvent
from tests.unit.memory_uow import MemoryUnits

ENTITY = "worker"
SENSITIVE = "employee_number"
EMPLOYEE_NUMBER = "E-90210"

WANDA = {
    "given_name": "Wanda",
    "family_name": "Kowalczyk",
    "email": "wanda.kowalczyk@example.com",
    "employee_number": EMPLOYEE_NUMBER,
}
INGRID = {"given_name": "Ingrid", "family_name": "Sato", "email": "ingrid.sato@example.com"}


def configured_rules() -> MasteringRules:
    """The packaged rules with employee_number declared sensitive (what rules_of builds
    from Settings.auth.sensitive_attributes)."""
    return load_rules(sensitive=(SENSITIVE,))


@pytest.fixture
def rules() -> MasteringRules:
    configured = configured_rules()
    assert SENSITIVE in configured.sensitive
    return configured


@pytest.fixture
def units() -> MemoryUnits:
    return MemoryUnits()


# -- helpers ---------------------------------------------------------------------------


async def put(
    units: MemoryUnits,
    rules: MasteringRules,
    source: str,
    source_id: str,
    attributes: dict[str, Any],
) -> Accepted:
    """One record in its own unit of work, as PUT /v1/sources/{source}/worker/{id} does."""
    async with units.transaction() as uow:
        (result,) = await ingest_records(
            uow, rules, ENTITY, source, [IncomingRecord(source_id, attributes)], RequestContext()
        )
    assert isinstance(result, Accepted), result
    return result


def events(units: MemoryUnits, since: int = 0) -> list[Event]:
    """The golden-record events appended to the outbox (after the first `since` entries)."""
    return [e for e in units.state.outbox[since:] if isinstance(e, Event)]


def of(found: list[Event], golden_id: str) -> list[Event]:
    return [e for e in found if e.golden_id == golden_id]


def assert_withheld(found: list[Event], holders: set[str], *values: str) -> None:
    """No event carries the sensitive attribute or any of `values` anywhere in its
    envelope; every event of a golden record in `holders` names it in `withheld`."""
    assert found, "no events to check"
    for event in found:
        raw = msgspec.json.encode(event).decode()
        assert [v for v in (EMPLOYEE_NUMBER, *values) if v in raw] == [], raw
        assert SENSITIVE not in event.payload.attributes, raw
        if event.golden_id in holders:
            assert SENSITIVE in event.payload.withheld, raw
    assert {e.golden_id for e in found} >= holders


def golden_attributes(units: MemoryUnits, golden_id: str) -> dict[str, Any]:
    return units.state.goldens[golden_id].attributes


def history_attributes(units: MemoryUnits, golden_id: str) -> dict[str, Any]:
    rows = [h for h in units.state.history if h["golden_id"] == golden_id]
    return max(rows, key=lambda h: h["version"])["attributes"]


# -- ingest --------------------------------------------------------------------------------


async def test_ingest_creates_links_and_updates_a_golden_record(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    created = await put(units, rules, "hcm", "W-1", WANDA)
    assert (created.outcome, created.version) == ("created", 1)
    golden_id = created.golden_id
    (first,) = events(units)
    assert (first.type, first.golden_id, first.version) == ("golden.created", golden_id, 1)
    assert first.causation.kind == "source_record"
    assert (first.causation.source, first.causation.source_id) == ("hcm", "W-1")
    assert first.payload.attributes["family_name"] == "Kowalczyk"
    assert [(x.source, x.source_id) for x in first.payload.xrefs] == [("hcm", "W-1")]

    # The same person from PSA, the same e-mail (a strong key): the same golden record.
    linked = await put(
        units,
        rules,
        "psa",
        "P-1",
        {"given_name": "Wanda", "family_name": "Kowalczyk", "email": WANDA["email"]},
    )
    assert (linked.golden_id, linked.outcome, linked.version) == (golden_id, "linked", 2)
    second = events(units)[-1]
    assert (second.golden_id, second.version) == (golden_id, 2)
    assert second.type in ("golden.updated", "xref.linked")
    assert {(x.source, x.source_id) for x in second.payload.xrefs} == {
        ("hcm", "W-1"),
        ("psa", "P-1"),
    }
    assert len(units.state.goldens) == 1

    # Replaying the same record changes nothing: no new version, no event.
    before = len(units.state.outbox)
    replay = await put(units, rules, "hcm", "W-1", WANDA)
    assert (replay.outcome, replay.version) == ("unchanged", 2)
    assert len(units.state.outbox) == before

    # An update of the system of record's record: golden.updated, saying what changed.
    updated = await put(units, rules, "hcm", "W-1", {**WANDA, "family_name": "Kowalczyk-Nowak"})
    assert (updated.golden_id, updated.outcome, updated.version) == (golden_id, "linked", 3)
    (third,) = events(units, before)
    assert (third.type, third.version) == ("golden.updated", 3)
    assert "family_name" in third.payload.changed
    assert third.payload.attributes["family_name"] == "Kowalczyk-Nowak"
    assert golden_attributes(units, golden_id)["family_name"] == "Kowalczyk-Nowak"
    # one history row per version, each with its event
    assert [h["version"] for h in units.state.history] == [1, 2, 3]
    assert [e.version for e in events(units)] == [1, 2, 3]


async def test_ingest_a_different_person_gets_a_golden_record_of_their_own(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda = await put(units, rules, "hcm", "W-1", WANDA)
    ingrid = await put(units, rules, "psa", "P-7", INGRID)
    assert ingrid.outcome == "created"
    assert ingrid.golden_id != wanda.golden_id
    assert [e.type for e in events(units)] == ["golden.created", "golden.created"]


async def test_ingest_links_the_same_person_without_a_strong_key_by_the_model(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    ada = {"given_name": "Ada", "family_name": "Lovelace", "date_of_birth": "1983-07-19"}
    hcm = await put(units, rules, "hcm", "H-1", {**ada, "email": "ada@example.com"})
    psa = await put(units, rules, "psa", "P-1", ada)  # no e-mail: no strong key in common
    assert (psa.golden_id, psa.outcome) == (hcm.golden_id, "linked")
    assert psa.match_probability is not None and psa.match_probability >= 0.99
    (record,) = [r for r in units.state.sources.values() if r.source == "psa"]
    assert (record.link_rule, record.link_model_version) == ("match", 1)
    assert record.link_explanation is not None  # the waterfall behind the link


async def test_ingest_a_batch_holding_one_person_twice_makes_one_golden_record(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    # (Two different employee numbers would be two people: matching.scoring.strangers.)
    without_number = {k: v for k, v in WANDA.items() if k != SENSITIVE}
    async with units.transaction() as uow:
        results = await ingest_records(
            uow,
            rules,
            ENTITY,
            "hcm",
            [IncomingRecord("W-1", WANDA), IncomingRecord("W-2", without_number)],
            RequestContext(),
        )
    first, second = results
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert first.golden_id == second.golden_id
    (created,) = events(units)  # one version, one event, for both records
    assert created.type == "golden.created"
    assert {x.source_id for x in created.payload.xrefs} == {"W-1", "W-2"}


async def test_ingest_keeps_a_configured_sensitive_attribute_out_of_its_events(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    created = await put(units, rules, "hcm", "W-1", WANDA)
    (event,) = events(units)
    assert SENSITIVE in event.payload.changed  # that it is there ...
    assert_withheld([event], {created.golden_id})  # ... never what it is
    # The new number: the event says that it changed, not to what.
    before = len(units.state.outbox)
    await put(units, rules, "hcm", "W-1", {**WANDA, SENSITIVE: "E-31337"})
    (update,) = events(units, before)
    assert update.payload.changed == [SENSITIVE]
    assert_withheld([update], {created.golden_id}, "E-31337")
    # The golden record and its history keep the value, for readers with the grant.
    assert golden_attributes(units, created.golden_id)[SENSITIVE] == "E-31337"
    assert history_attributes(units, created.golden_id)[SENSITIVE] == "E-31337"


# -- merge and unmerge ---------------------------------------------------------------------


async def two_workers(units: MemoryUnits, rules: MasteringRules) -> tuple[str, str]:
    """Wanda (hcm W-1, with her employee number) and Ingrid (psa P-7): two golden records."""
    wanda = (await put(units, rules, "hcm", "W-1", WANDA)).golden_id
    ingrid = (await put(units, rules, "psa", "P-7", INGRID)).golden_id
    assert wanda != ingrid
    return wanda, ingrid


async def merge(
    units: MemoryUnits, rules: MasteringRules, survivor: str, loser: str
) -> tuple[int, list[Event]]:
    before = len(units.state.outbox)
    async with units.transaction() as uow:
        result = await merge_goldens(
            uow, rules, ENTITY, survivor, [loser], "steward.kim", "one person", RequestContext()
        )
    assert (result.survivor_id, result.merged, result.moved) == (survivor, [loser], 1)
    return result.merge_id, events(units, before)


async def test_merge_moves_the_records_and_redirects_the_loser(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda, ingrid = await two_workers(units, rules)
    merge_id, merged = await merge(units, rules, ingrid, wanda)

    assert {(e.golden_id, e.type, e.version) for e in merged} == {
        (ingrid, "golden.merged", 2),
        (wanda, "golden.lost_merge", 2),
    }
    (survivor,) = of(merged, ingrid)
    (loser,) = of(merged, wanda)
    assert survivor.payload.merged_from == [wanda]
    assert loser.payload.merged_into == ingrid
    for event in merged:
        assert event.causation.kind == "steward"
        assert (event.causation.actor, event.causation.merge_id) == ("steward.kim", merge_id)
    assert {(x.source, x.source_id) for x in survivor.payload.xrefs} == {
        ("hcm", "W-1"),
        ("psa", "P-7"),
    }
    state = units.state
    assert (state.goldens[wanda].status, state.goldens[wanda].merged_into) == ("merged", ingrid)
    assert {r.golden_id for r in state.sources.values()} == {ingrid}
    assert [m["survivor_id"] for m in state.merge_events] == [ingrid]

    # The loser is gone for good: acting on it is a conflict, and nothing is written.
    before = len(state.outbox)
    with pytest.raises(Conflict):
        await merge(units, rules, wanda, ingrid)
    assert len(state.outbox) == before
    assert units.rollbacks == 1


async def test_merge_keeps_a_configured_sensitive_attribute_out_of_its_events(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda, ingrid = await two_workers(units, rules)
    _, merged = await merge(units, rules, ingrid, wanda)
    # The survivor took Wanda's employee number; the loser keeps its last attributes.
    assert golden_attributes(units, ingrid)[SENSITIVE] == EMPLOYEE_NUMBER
    assert SENSITIVE in of(merged, ingrid)[0].payload.changed
    assert_withheld(merged, {ingrid, wanda})


async def test_unmerge_restores_the_golden_record_a_merge_took(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda, ingrid = await two_workers(units, rules)
    await merge(units, rules, ingrid, wanda)
    before = len(units.state.outbox)
    async with units.transaction() as uow:
        result = await unmerge_records(
            uow,
            rules,
            ENTITY,
            ingrid,
            [("hcm", "W-1")],
            "steward.kim",
            "two people",
            RequestContext(),
        )
    assert (result.golden_id, result.split_golden_id, result.restored) == (ingrid, wanda, True)
    split = events(units, before)
    assert {(e.golden_id, e.type, e.version) for e in split} == {
        (ingrid, "golden.unmerged", 3),
        (wanda, "golden.unmerged", 3),
    }
    assert of(split, ingrid)[0].payload.split_into == wanda
    assert of(split, wanda)[0].payload.split_from == ingrid
    assert [(x.source, x.source_id) for x in of(split, wanda)[0].payload.xrefs] == [("hcm", "W-1")]
    state = units.state
    assert (state.goldens[wanda].status, state.goldens[wanda].merged_into) == ("active", None)
    assert golden_attributes(units, wanda)["family_name"] == "Kowalczyk"
    assert golden_attributes(units, ingrid)["family_name"] == "Sato"
    # Kept apart from now on: the steward's not-a-match between the two records.
    assert len(state.not_a_match) == 1
    async with units.transaction() as uow:
        assert await uow.merges.apart(wanda, ingrid)
        # Leaving nothing behind is refused.
        with pytest.raises(Conflict):
            await unmerge_records(
                uow, rules, ENTITY, wanda, [("hcm", "W-1")], "kim", None, RequestContext()
            )
        with pytest.raises(NotFound):
            await unmerge_records(
                uow, rules, ENTITY, wanda, [("psa", "P-7")], "kim", None, RequestContext()
            )


async def test_unmerge_keeps_a_configured_sensitive_attribute_out_of_its_events(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda, ingrid = await two_workers(units, rules)
    await merge(units, rules, ingrid, wanda)
    before = len(units.state.outbox)
    async with units.transaction() as uow:
        await unmerge_records(
            uow, rules, ENTITY, ingrid, [("hcm", "W-1")], "steward.kim", None, RequestContext()
        )
    split = events(units, before)
    # Wanda's number went back with her record: her event withholds it, Ingrid's
    # says it changed (it is gone from her golden record).
    assert golden_attributes(units, wanda)[SENSITIVE] == EMPLOYEE_NUMBER
    assert SENSITIVE not in golden_attributes(units, ingrid)
    assert SENSITIVE in of(split, ingrid)[0].payload.changed
    assert_withheld(split, {wanda})


# -- overrides -----------------------------------------------------------------------------


async def pin(
    units: MemoryUnits, rules: MasteringRules, golden_id: str, attribute: str, value: Any
) -> list[Event]:
    before = len(units.state.outbox)
    async with units.transaction() as uow:
        result = await pin_value(
            uow,
            rules,
            ENTITY,
            golden_id,
            attribute,
            value,
            "steward.kim",
            "checked",
            RequestContext(),
        )
    assert result.changed
    return events(units, before)


async def test_a_pin_wins_and_unpinning_gives_the_rules_back(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    golden_id = (await put(units, rules, "hcm", "W-1", WANDA)).golden_id
    (pinned,) = await pin(units, rules, golden_id, "given_name", "Wandzia")
    assert (pinned.type, pinned.version, pinned.payload.changed) == (
        "golden.updated",
        2,
        ["given_name"],
    )
    assert pinned.payload.attributes["given_name"] == "Wandzia"
    assert (pinned.causation.kind, pinned.causation.actor) == ("steward", "steward.kim")
    golden = units.state.goldens[golden_id]
    assert golden.attributes["given_name"] == "Wandzia"
    assert golden.provenance["given_name"]["rule"] == "pin"

    # The system of record sends another value: the pin still wins, so nothing a
    # subscriber sees changed (no new version, no event).
    before = len(units.state.outbox)
    await put(units, rules, "hcm", "W-1", {**WANDA, "given_name": "Wanda Maria"})
    assert golden_attributes(units, golden_id)["given_name"] == "Wandzia"
    assert events(units, before) == []

    before = len(units.state.outbox)
    async with units.transaction() as uow:
        result = await unpin_value(
            uow, rules, ENTITY, golden_id, "given_name", "steward.kim", None, RequestContext()
        )
    assert result.changed
    (unpinned,) = events(units, before)
    assert unpinned.payload.changed == ["given_name"]
    assert unpinned.payload.attributes["given_name"] == "Wanda Maria"
    assert golden_attributes(units, golden_id)["given_name"] == "Wanda Maria"
    assert units.state.pins == {}
    # No pin left to remove: NotFound, and nothing written.
    with pytest.raises(NotFound):
        async with units.transaction() as uow:
            await unpin_value(
                uow, rules, ENTITY, golden_id, "given_name", "kim", None, RequestContext()
            )
    assert len(events(units)) == 3


async def test_a_pin_keeps_a_configured_sensitive_attribute_out_of_its_events(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    golden_id = (await put(units, rules, "hcm", "W-1", WANDA)).golden_id
    # A pin of another attribute: its event still withholds the number.
    assert_withheld(await pin(units, rules, golden_id, "given_name", "Wandzia"), {golden_id})
    # A pin of the sensitive attribute itself: the event says it changed, not to what.
    (event,) = await pin(units, rules, golden_id, SENSITIVE, "E-77777")
    assert event.payload.changed == [SENSITIVE]
    assert_withheld([event], {golden_id}, "E-77777")
    assert golden_attributes(units, golden_id)[SENSITIVE] == "E-77777"
    assert units.state.pins[(golden_id, SENSITIVE)]["value"] == "E-77777"


# -- references ----------------------------------------------------------------------------

MAX = {"given_name": "Maximilian", "family_name": "Oyelaran", "employee_number": "E-1"}
REPORT = {**WANDA, "manager_ref": "M-1"}  # hcm's M-1: her manager


async def test_a_reference_resolves_follows_and_falls_back_to_pending(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda = (await put(units, rules, "hcm", "W-1", REPORT)).golden_id
    (created,) = events(units)
    # hcm's M-1 is not known yet: the reference is pending, the attribute absent.
    assert "manager_ref" not in created.payload.attributes
    reference = created.payload.references["manager_ref"]
    assert (reference.entity, reference.source, reference.source_id) == ("worker", "hcm", "M-1")
    assert reference.golden_id is None

    # The manager arrives: Wanda's golden record names his, in a new version of its own.
    before = len(units.state.outbox)
    manager = (await put(units, rules, "hcm", "M-1", MAX)).golden_id
    arrived = events(units, before)
    assert [(e.golden_id, e.type) for e in arrived] == [
        (manager, "golden.created"),
        (wanda, "golden.updated"),
    ]
    followed = arrived[1]
    assert followed.version == 2
    assert followed.payload.changed == ["manager_ref"]
    assert followed.payload.attributes["manager_ref"] == manager
    reference = followed.payload.references["manager_ref"]
    assert reference.golden_id == manager
    assert [(x.source, x.source_id) for x in reference.xrefs] == [("hcm", "M-1")]
    # with the cause of the change that moved what it names
    assert (followed.causation.source, followed.causation.source_id) == ("hcm", "M-1")
    assert golden_attributes(units, wanda)["manager_ref"] == manager

    # The manager is merged into another golden record: the reference names the survivor.
    other = (await put(units, rules, "psa", "P-7", INGRID)).golden_id
    merge_id, merged = await merge(units, rules, other, manager)
    repointed = of(merged, wanda)
    assert [(e.type, e.version) for e in repointed] == [("golden.updated", 3)]
    assert repointed[0].payload.attributes["manager_ref"] == other
    assert repointed[0].causation.merge_id == merge_id

    # The manager's record is deleted: pending again.
    before = len(units.state.outbox)
    async with units.transaction() as uow:
        await delete_record(uow, rules, ENTITY, "hcm", "M-1", RequestContext())
    deleted = of(events(units, before), wanda)
    assert [(e.type, e.version) for e in deleted] == [("golden.updated", 4)]
    assert "manager_ref" not in deleted[0].payload.attributes
    assert deleted[0].payload.references["manager_ref"].golden_id is None
    async with units.transaction() as uow:
        pending, total = await uow.relationships.pending(ENTITY, 10, 0)
    assert total == 1 and [(p.golden_id, p.source_id) for p in pending] == [(wanda, "M-1")]


async def test_a_reference_change_keeps_a_configured_sensitive_attribute_out_of_events(
    units: MemoryUnits, rules: MasteringRules
) -> None:
    wanda = (await put(units, rules, "hcm", "W-1", REPORT)).golden_id
    before = len(units.state.outbox)
    manager = (await put(units, rules, "hcm", "M-1", MAX)).golden_id
    arrived = events(units, before)
    # Wanda's new version is the referrer's: it comes from following the reference.
    assert [e.version for e in of(arrived, wanda)] == [2]
    assert_withheld(arrived, {wanda, manager}, "E-1")
    async with units.transaction() as uow:
        await delete_record(uow, rules, ENTITY, "hcm", "M-1", RequestContext())
    assert [e.version for e in of(events(units), wanda)] == [1, 2, 3]
    assert_withheld(events(units), {wanda}, "E-1")


# -- re-matching ---------------------------------------------------------------------------

# One person's two records that the packaged model matches on their own evidence.
ADA_HCM = {
    "given_name": "Ada",
    "family_name": "Lovelace",
    "date_of_birth": "1950-01-10",
    "employee_number": EMPLOYEE_NUMBER,
}
ADA_PSA = {"given_name": "Ada", "family_name": "Lovelacee", "date_of_birth": "1950-01-10"}


async def split_then_refit(units: MemoryUnits) -> tuple[MasteringRules, str, str, str]:
    """Ada's two records loaded under a strict version 1 of the worker model (two golden
    records, no review task); then the packaged model stored as a fitted version 2 (as
    tests/integration/test_rematch.py does on PostgreSQL). Answers the rules to re-match
    with (a process started after the fit), the older and newer golden id, and hcm's."""
    strict = default_model(ENTITY).to_dict()
    strict["thresholds"] = {"auto_link": 0.99999, "review": 0.9999}
    del strict["matches_per_record"]
    async with units.transaction() as uow:
        await uow.matches.ensure_model(ENTITY, 1, strict)
    loading = configured_rules()
    hcm = await put(units, loading, "hcm", "H-ada", ADA_HCM)
    psa = await put(units, loading, "psa", "P-ada", ADA_PSA)
    assert hcm.golden_id != psa.golden_id and hcm.review == psa.review == []
    async with units.transaction() as uow:
        version = await uow.matches.add_model(ENTITY, default_model(ENTITY).to_dict(), {}, 2)
    assert version == 2
    older, newer = sorted((hcm.golden_id, psa.golden_id))
    return configured_rules(), older, newer, hcm.golden_id


async def test_rematch_merges_a_pair_the_current_model_matches(units: MemoryUnits) -> None:
    rules, older, newer, _ = await split_then_refit(units)
    before = len(units.state.outbox)

    run = await (await Rematch.claim(units, rules, ENTITY)).run(chunk_size=1)

    assert (run.status, run.model_version, run.merged, run.reviews) == ("finished", 2, 1, 0)
    assert run.done == run.total == 2
    merged = events(units, before)
    assert {(e.golden_id, e.type) for e in merged} == {
        (older, "golden.merged"),
        (newer, "golden.lost_merge"),
    }
    for event in merged:
        assert (event.causation.kind, event.causation.actor) == ("system", "matcher")
        assert "model version 2" in (event.causation.reason or "")
    state = units.state
    assert (state.goldens[newer].status, state.goldens[newer].merged_into) == ("merged", older)
    assert {r.golden_id for r in state.sources.values()} == {older}
    assert [(m["actor"], m["survivor_id"]) for m in state.merge_events] == [("matcher", older)]
    # The run's lock is released, and a second run over the same records changes nothing.
    again = await (await Rematch.claim(units, rules, ENTITY)).run()
    assert (again.status, again.merged, again.reviews) == ("finished", 0, 0)
    assert len(events(units, before)) == 2


async def test_rematch_keeps_a_configured_sensitive_attribute_out_of_its_events(
    units: MemoryUnits,
) -> None:
    rules, older, _, hcm = await split_then_refit(units)
    before = len(units.state.outbox)
    run = await (await Rematch.claim(units, rules, ENTITY)).run()
    assert run.merged == 1
    merged = events(units, before)
    assert {e.type for e in merged} == {"golden.merged", "golden.lost_merge"}
    assert golden_attributes(units, older)[SENSITIVE] == EMPLOYEE_NUMBER
    # The survivor holds the number now; so does the loser if it was hcm's (a lost
    # merge keeps its last attributes).
    assert_withheld(merged, {older, hcm})


async def test_rematch_asks_a_steward_about_a_pair_in_the_review_band(units: MemoryUnits) -> None:
    """The same full name, one without a birth date: the packaged model is unsure."""
    strict = default_model(ENTITY).to_dict()
    strict["thresholds"] = {"auto_link": 0.99999, "review": 0.9999}
    del strict["matches_per_record"]
    async with units.transaction() as uow:
        await uow.matches.ensure_model(ENTITY, 1, strict)
    loading = configured_rules()
    full = {"given_name": "Katarzyna", "family_name": "Wieczorek-Lindqvist"}
    hcm = await put(units, loading, "hcm", "H-k", {**full, "date_of_birth": "1979-06-02"})
    psa = await put(units, loading, "psa", "P-k", full)
    assert hcm.golden_id != psa.golden_id and units.state.review_tasks == {}
    async with units.transaction() as uow:
        await uow.matches.add_model(ENTITY, default_model(ENTITY).to_dict(), {}, 2)
    before = len(units.state.outbox)

    run = await (await Rematch.claim(units, configured_rules(), ENTITY)).run()

    assert (run.status, run.merged, run.reviews) == ("finished", 0, 1)
    (task,) = units.state.review_tasks.values()
    older, newer = sorted((hcm.golden_id, psa.golden_id))
    assert (task["golden_id"], task["candidate_id"], task["status"]) == (newer, older, "open")
    assert (task["reason"], task["model_version"]) == ("review_band", 2)
    (opened,) = units.state.outbox[before:]
    assert isinstance(opened, ReviewEvent)
    assert (opened.type, opened.review_id, opened.version) == ("review.opened", task["id"], 1)
    assert opened.ordering_key == f"review:{task['id']}"
    # Asked once: a second run opens no second task about the same pair.
    again = await (await Rematch.claim(units, configured_rules(), ENTITY)).run()
    assert again.reviews == 0 and len(units.state.review_tasks) == 1

    # A steward's decision (mdm/services/reviews.py): the merge, its audit row and events.
    before = len(units.state.outbox)
    async with units.transaction() as uow:
        decided = await decide(
            uow, configured_rules(), task["id"], "merge", "steward.kim", "same", RequestContext()
        )
        queue, total = await uow.reviews.tasks(ReviewFilter(statuses=UNDECIDED), "id", 10, 0)
    assert (decided.status, decided.survivor_id) == ("merged", older)
    assert (queue, total) == ([], 0)
    after = units.state.outbox[before:]
    resolved = [e for e in after if isinstance(e, ReviewEvent)]
    assert [(e.type, e.version, e.payload.survivor_id) for e in resolved] == [
        ("review.resolved", 2, older)
    ]
    merged = events(units, before)
    assert {(e.golden_id, e.type) for e in merged} == {
        (older, "golden.merged"),
        (newer, "golden.lost_merge"),
    }
    assert {e.causation.review_id for e in merged} == {task["id"]}
    assert [d["decision"] for d in units.state.review_decisions] == ["merge"]
