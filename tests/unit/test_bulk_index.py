"""The bulk load's in-memory blocking index (mdm.adapters.bulk_index.MemoryIndex) and the
candidate members it hands a unit of work: the same answers as the database's pool,
without copying the index's lists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdm.adapters.bulk_index import MemoryIndex
from mdm.services.matcher import BatchPool, Features, generic_key


def _pool(index: MemoryIndex, keys: list[str]) -> BatchPool:
    return asyncio.run(index.pool("worker", keys))


def _index() -> tuple[MemoryIndex, dict[str, Any]]:
    index = MemoryIndex(cap=3)
    f = {name: {"v": name} for name in ("a1", "a2", "b1", "c1")}
    index._add("hcm\x1f1", "GA", ["k:a", "k:ab"], f["a1"])
    index._add("hcm\x1f2", "GA", ["k:a"], f["a2"])
    index._add("hcm\x1f3", "GB", ["k:ab", "k:b"], f["b1"])
    index._add("hcm\x1f4", "GC", ["k:c"], f["c1"])
    return index, f


def test_a_unit_sees_the_members_of_the_golden_records_owning_its_keys_only() -> None:
    index, f = _index()
    members = _pool(index, ["k:a", "k:b"]).members
    assert members.get("GA") == [f["a1"], f["a2"]]
    assert members["GB"] == [f["b1"]]
    # GC is in the index but owns none of the unit's keys: as the database's pool
    assert members.get("GC") is None
    assert "GC" not in members
    with pytest.raises(KeyError):
        members["GC"]
    assert members.get("GX", "none") == "none"


def test_adding_to_a_members_list_in_a_unit_leaves_the_index_unchanged() -> None:
    index, f = _index()
    pool = _pool(index, ["k:a", "k:b"])
    assert pool.members.get("GA") is index.members["GA"]  # handed over, not copied
    new = {"v": "new"}
    pool.add("GA", Features(new, ["k:a"]), "5")
    assert pool.members["GA"] == [f["a1"], f["a2"], new]
    assert index.members["GA"] == [f["a1"], f["a2"]]
    pool.merge("GB", "GA")  # GB's members join GA's, in the unit only
    assert pool.members["GA"] == [f["a1"], f["a2"], new, f["b1"]]
    assert pool.members.get("GB") is None  # popped: not taken from the index again
    assert index.members["GB"] == [f["b1"]]


def test_the_index_takes_in_a_committed_unit_updates_and_merges() -> None:
    index, f = _index()
    pool = _pool(index, ["k:a", "k:b"])
    updated = {"v": "a2 again"}
    pool.merge("GB", "GA")
    pool.add("GA", Features(updated, ["k:a"]), "2")  # record 2 again: an update
    index.commit("hcm")
    assert index.resolve("GB") == "GA"
    assert index.members["GA"] == [f["a1"], f["b1"], updated]
    assert "GB" not in index.members
    assert index.golden_of["hcm\x1f2"] == ("GA", updated)
    again = _pool(index, ["k:b"])
    assert again.db_owners == {"k:b": {"GA"}}
    assert again.members["GA"] == [f["a1"], f["b1"], updated]


def test_an_update_removes_the_very_features_it_replaces() -> None:
    index = MemoryIndex()
    same = [{"v": "x"}, {"v": "x"}]  # equal, not identical
    index._add("hcm\x1f1", "G1", ["k"], same[0])
    index._add("hcm\x1f2", "G1", ["k"], same[1])
    index._add("hcm\x1f2", "G1", ["k"], {"v": "y"})
    assert index.members["G1"][0] is same[0]
    assert index.members["G1"][1:] == [{"v": "y"}]


@given(
    cap=st.integers(min_value=0, max_value=4),
    records=st.lists(
        st.tuples(
            st.sampled_from(["G1", "G2", "G3", "G4"]),
            st.sets(st.sampled_from(["k:a", "k:b", "k:c"]), max_size=3),
        ),
        max_size=12,
    ),
)
def test_the_in_memory_index_applies_the_generic_key_rule_of_the_database(
    cap: int, records: list[tuple[str, set[str]]]
) -> None:
    """A key carried by more than `cap` records is generic, as `generic_key` says and
    MatchStore.candidate_owners answers; the others name the golden ids carrying them."""
    index = MemoryIndex(cap=cap)
    carriers: dict[str, list[str]] = {}
    for n, (golden_id, keys) in enumerate(records):
        index._add(f"hcm\x1f{n}", golden_id, sorted(keys), {"n": n})
        for key in keys:
            carriers.setdefault(key, []).append(golden_id)
    pool = _pool(index, ["k:a", "k:b", "k:c"])
    assert pool.generic == {k for k, found in carriers.items() if generic_key(len(found), cap)}
    assert pool.db_owners == {
        k: set(found) for k, found in carriers.items() if not generic_key(len(found), cap)
    }
