"""The in-memory unit of work (tests/unit/memory_uow.py) is a unit of work: every
method every port declares, with the port's parameters; and it commits all or nothing."""

from __future__ import annotations

import datetime as dt
import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from mdm.domain import ports
from mdm.domain.golden import GoldenRecord
from mdm.domain.stored import SourceRecordWrite
from tests.unit.memory_uow import (
    IntegrityError,
    MemoryRunLock,
    MemoryState,
    MemoryUnitOfWork,
    MemoryUnits,
)


def _protocol_members(protocol: type) -> dict[str, Any]:
    """The names a Protocol class declares itself (methods and properties)."""
    assert getattr(protocol, "_is_protocol", False), protocol
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def _check_method(protocol: type, name: str, declared: Callable[..., Any], impl: object) -> None:
    found = getattr(impl, name, None)
    assert found is not None, f"{type(impl).__name__} lacks {protocol.__name__}.{name}"
    assert callable(found), f"{type(impl).__name__}.{name} is not callable"
    is_async = inspect.iscoroutinefunction(declared)
    if name != "transaction":  # an async context manager factory either way
        assert inspect.iscoroutinefunction(found) == is_async, (
            f"{type(impl).__name__}.{name}: async must be {is_async}"
        )
    want = list(inspect.signature(declared).parameters.values())[1:]  # without self
    got = list(inspect.signature(found).parameters.values())
    assert [(p.name, p.kind, p.default) for p in want] == [
        (p.name, p.kind, p.default) for p in got
    ], f"{type(impl).__name__}.{name}{inspect.signature(found)} is not {protocol.__name__}'s"


def _check(protocol: type, impl: object) -> list[str]:
    """Check `impl` against every member of `protocol`; the names checked."""
    members = _protocol_members(protocol)
    assert members, protocol
    for name, declared in members.items():
        if isinstance(declared, property):
            # A property of the UnitOfWork: a store, itself checked against its port.
            assert isinstance(inspect.getattr_static(type(impl), name), property), name
            store_port = typing.get_type_hints(declared.fget, vars(ports))["return"]
            _check(store_port, getattr(impl, name))
        else:
            _check_method(protocol, name, declared, impl)
    return sorted(members)


def test_every_port_is_covered_by_the_check() -> None:
    declared = {
        name
        for name, value in vars(ports).items()
        if isinstance(value, type)
        and getattr(value, "_is_protocol", False)
        and value.__module__ == ports.__name__
    }
    assert declared == {
        "Records",
        "MatchIndex",
        "Merges",
        "OverrideStore",
        "References",
        "Reviews",
        "RematchRuns",
        "Outbox",
        "Tallies",
        "UnitOfWork",
        "RunLock",
        "Units",
    }


def test_the_memory_unit_of_work_has_every_method_of_every_port() -> None:
    uow = MemoryUnitOfWork(MemoryState())
    checked = _check(ports.UnitOfWork, uow)
    assert checked == [
        "lock",
        "matches",
        "merges",
        "outbox",
        "overrides",
        "records",
        "relationships",
        "reviews",
        "runs",
        "tallies",
    ]
    # A store is handed out, not replaced (the port's properties are read-only).
    with pytest.raises(AttributeError):
        uow.records = uow.records  # type: ignore[misc]


def test_a_type_checker_accepts_them_as_the_ports_too() -> None:
    """The same, statically: `mypy --explicit-package-bases -m tests.unit.test_memory_uow`
    checks these assignments structurally (mypy is not run on tests/ by `make lint`)."""
    uow: ports.UnitOfWork = MemoryUnitOfWork(MemoryState())
    units: ports.Units = MemoryUnits()
    assert uow is not None and units is not None


async def test_memory_units_and_their_run_lock_are_the_ports() -> None:
    units = MemoryUnits()
    assert _check(ports.Units, units) == ["run", "session_lock", "transaction"]
    lock = await units.session_lock("worker")
    assert isinstance(lock, MemoryRunLock)
    _check(ports.RunLock, lock)
    assert await units.session_lock("worker") is None  # held: another run may not start
    await lock.release()
    again = await units.session_lock("worker")
    assert again is not None
    await again.release()


async def test_a_transaction_commits_on_success_and_rolls_back_on_error() -> None:
    units = MemoryUnits()
    golden = GoldenRecord("wrk_1", "worker", "active", 1, {"family_name": "Hopper"}, {})
    history = {
        "golden_id": "wrk_1",
        "version": 1,
        "status": "active",
        "attributes": {},
        "provenance": {},
        "xrefs": [],
        "changed": [],
        "event_type": "golden.created",
        "cause": {},
        "changed_at": None,
    }
    async with units.transaction() as uow:
        await uow.records.save_goldens([golden], [history], _at())
    with pytest.raises(RuntimeError, match="boom"):
        async with units.transaction() as uow:
            locked = (await uow.records.lock_goldens(["wrk_1"]))["wrk_1"]
            locked.attributes["family_name"] = "Lovelace"
            locked.version = 2
            await uow.records.save_goldens([locked], [{**history, "version": 2}], _at())
            assert (await uow.records.golden("wrk_1")) is not None
            raise RuntimeError("boom")
    async with units.transaction() as uow:
        stored = await uow.records.golden("wrk_1")
        assert stored is not None
        assert (stored.version, stored.attributes) == (1, {"family_name": "Hopper"})
        assert [h.version for h in await uow.records.history("wrk_1", 10)] == [1]
    assert (units.commits, units.rollbacks) == (2, 1)


async def test_what_a_store_hands_out_is_a_copy() -> None:
    units = MemoryUnits()
    golden = GoldenRecord("wrk_1", "worker", "active", 1, {"family_name": "Hopper"}, {})
    async with units.transaction() as uow:
        await uow.records.save_goldens([golden], [], _at())
        read = await uow.records.lock_goldens(["wrk_1"])
        read["wrk_1"].attributes["family_name"] = "changed without saving"
        again = await uow.records.golden("wrk_1")
        assert again is not None and again.attributes == {"family_name": "Hopper"}


def _at() -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def test_a_dangling_foreign_key_fails_the_commit_and_rolls_back() -> None:
    """source_record.golden_id is checked at commit (deferred): a record may be written
    before its new golden record, but not without one."""
    units = MemoryUnits()
    write = SourceRecordWrite(
        id=None,
        entity="worker",
        source="hcm",
        source_id="H-1",
        golden_id="wrk_nowhere",
        raw={},
        standardized={},
        warnings=[],
        content_hash=b"",
        version=1,
        source_updated_at=None,
        received_at=_at(),
        link_rule="new",
    )
    with pytest.raises(IntegrityError, match="wrk_nowhere"):
        async with units.transaction() as uow:
            assert await uow.records.write_source_records([write]) == {"H-1": 1}
    assert units.state.sources == {}
    assert (units.commits, units.rollbacks) == (0, 1)
