"""Golden records, survivorship, source roles and ids: pure domain, no I/O."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdm.domain.errors import UnknownEntity, UnknownSource, WriteForbidden
from mdm.domain.golden import GoldenRecord, XrefDelta
from mdm.domain.ids import _ALPHABET, _encode, new_event_id, new_golden_id
from mdm.domain.sources import Role, SourceCatalog, SourceSystem
from mdm.domain.survivorship import Contribution, survive
from mdm.settings import load_sources

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def contribution(
    record_id: int,
    source: str,
    values: dict,
    updated_days: int | None = None,
    received_days: int = 0,
) -> Contribution:
    updated = T0 + dt.timedelta(days=updated_days) if updated_days is not None else None
    return Contribution(
        record_id,
        source,
        f"{source}-{record_id}",
        values,
        updated,
        T0 + dt.timedelta(days=received_days),
    )


def test_system_of_record_wins_even_when_older() -> None:
    result = survive(
        [
            contribution(1, "crm", {"name": "Acme GmbH"}, updated_days=1),
            contribution(2, "erp", {"name": "ACME", "email": "a@acme.de"}, updated_days=9),
        ],
        system_of_record="crm",
    )
    assert result.attributes == {"name": "Acme GmbH", "email": "a@acme.de"}
    assert result.provenance["name"] == {
        "source": "crm",
        "source_id": "crm-1",
        "rule": "system_of_record",
    }
    assert result.provenance["email"]["rule"] == "most_recent"


def test_most_recent_uses_the_sources_update_time_not_arrival() -> None:
    result = survive(
        [
            contribution(1, "psa", {"phone": "+1"}, updated_days=5, received_days=0),
            contribution(2, "erp", {"phone": "+2"}, updated_days=2, received_days=9),
        ],
        system_of_record="crm",
    )
    assert result.attributes["phone"] == "+1"


def test_without_source_time_arrival_time_counts_and_ties_go_to_the_later_record() -> None:
    result = survive(
        [
            contribution(1, "psa", {"phone": "+1"}, received_days=3),
            contribution(2, "erp", {"phone": "+2"}, received_days=3),
        ],
        system_of_record=None,
    )
    assert result.attributes["phone"] == "+2"


def test_empty_values_never_win() -> None:
    result = survive(
        [
            contribution(1, "crm", {"name": "Acme", "email": None}, updated_days=9),
            contribution(2, "erp", {"name": "ACME", "email": "x@acme.de"}, updated_days=1),
        ],
        system_of_record="crm",
    )
    assert result.attributes["email"] == "x@acme.de"


@given(st.permutations(list(range(5))))
def test_survivorship_does_not_depend_on_input_order(order: list[int]) -> None:
    records = [
        contribution(
            i, ("crm", "erp", "psa")[i % 3], {"a": i, "b": -i}, updated_days=i % 2, received_days=i
        )
        for i in range(5)
    ]
    expected = survive(records, "erp")
    assert survive([records[i] for i in order], "erp") == expected


def crm_first(contributions):  # type: ignore[no-untyped-def]
    return survive(list(contributions), "crm")


def test_recompute_event_types_and_versions() -> None:
    golden = GoldenRecord.new("cus_1", "customer")
    c1 = contribution(1, "crm", {"name": "Acme"})
    first = golden.recompute([c1], crm_first, XrefDelta(linked=frozenset({("crm", "crm-1")})))
    assert first is not None and (first.event_type, first.version) == ("golden.created", 1)

    assert golden.recompute([c1], crm_first, XrefDelta()) is None  # nothing changed: no version

    c2 = contribution(2, "erp", {"name": "ACME"})
    linked = golden.recompute([c1, c2], crm_first, XrefDelta(linked=frozenset({("erp", "erp-2")})))
    assert linked is not None and linked.event_type == "xref.linked" and linked.version == 2

    c3 = contribution(3, "erp", {"name": "ACME", "phone": "+49"})
    updated = golden.recompute([c1, c3], crm_first, XrefDelta())
    assert updated is not None and updated.event_type == "golden.updated"
    assert updated.changed == ["phone"]

    retired = golden.recompute([], crm_first, XrefDelta(unlinked=frozenset({("crm", "crm-1")})))
    assert retired is not None and retired.event_type == "golden.retired"
    assert golden.status == "retired" and golden.version == 4


def test_default_sources_follow_the_usual_ownership() -> None:
    catalog = load_sources()
    assert {
        e: catalog.system_of_record(e) for e in ("customer", "worker", "project", "legal_entity")
    } == {"customer": "crm", "worker": "hcm", "project": "psa", "legal_entity": "erp"}
    assert catalog.authorize_write("psa", "worker") is Role.CONTRIBUTOR
    with pytest.raises(WriteForbidden):
        catalog.authorize_write("crm", "worker")
    with pytest.raises(UnknownSource):
        catalog.authorize_write("sap", "customer")
    with pytest.raises(UnknownEntity):
        catalog.authorize_write("crm", "vendor")


def test_two_systems_of_record_for_one_entity_are_refused() -> None:
    with pytest.raises(ValueError, match="several systems of record"):
        SourceCatalog(
            {
                "a": SourceSystem("a", roles={"customer": Role.SYSTEM_OF_RECORD}),
                "b": SourceSystem("b", roles={"customer": Role.SYSTEM_OF_RECORD}),
            }
        )


def test_golden_ids_are_prefixed_unique_and_time_ordered() -> None:
    ids = [new_golden_id("customer") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(i.startswith("cus_") and len(i) == 30 for i in ids)
    assert new_golden_id("worker").startswith("wrk_")
    earlier = new_golden_id("project")
    import time

    time.sleep(0.002)
    assert new_golden_id("project")[:14] > earlier[:14]


def test_event_ids_are_distinct_version_4_uuids() -> None:
    ids = [new_event_id() for _ in range(3000)]  # more than one read of random bytes
    assert len(set(ids)) == 3000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_threads_minting_at_once_never_take_the_same_random_bytes() -> None:
    import sys
    from concurrent.futures import ThreadPoolExecutor

    def mint(_: int) -> list[str]:
        return [new_event_id() for _ in range(2000)]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: races show
    try:
        with ThreadPoolExecutor(4) as pool:
            ids = [i for batch in pool.map(mint, range(4)) for i in batch]
    finally:
        sys.setswitchinterval(interval)
    assert len(set(ids)) == len(ids) == 8000


def test_a_forked_process_does_not_mint_its_parents_next_id() -> None:
    import os

    new_golden_id("worker")  # the process now holds random bytes for the next ids
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, new_golden_id("worker").encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 100).decode()
    os.close(read)
    ours = new_golden_id("worker")
    assert len(theirs) == 30 and theirs[-16:] != ours[-16:]  # the 80 random bits


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_golden_id_digits_are_the_value_in_crockford_base32(value: int) -> None:
    digits = _encode(value)
    assert len(digits) == 26 and set(digits) <= set(_ALPHABET)
    assert sum(_ALPHABET.index(d) * 32**k for k, d in enumerate(reversed(digits))) == value
