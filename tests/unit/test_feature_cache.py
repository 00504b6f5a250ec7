"""The feature cache's bookkeeping (mdm/adapters/feature_cache.py): entries by row
version, a budget in bytes, the oldest stored first out."""

from __future__ import annotations

from mdm.adapters.feature_cache import ENTRY_OVERHEAD, XMIN, FeatureCache

ONE = b'{"given_name": {"v": "anna"}}'


def test_an_entry_answers_only_for_its_row_version() -> None:
    cache = FeatureCache(10_000)
    cache.put(1, 700, ONE)
    assert cache.get(1, 700) == {"given_name": {"v": "anna"}}
    assert cache.get(1, 701) is None
    assert cache.get(2, 700) is None


def test_the_budget_holds_and_the_oldest_stored_goes_first() -> None:
    size = XMIN + len(ONE) + ENTRY_OVERHEAD
    cache = FeatureCache(3 * size)
    for record_id in (1, 2, 3):
        cache.put(record_id, 700, ONE)
    assert cache.bytes == 3 * size
    cache.get(1, 700)  # being read does not keep an entry longer
    cache.put(4, 700, ONE)
    assert cache.get(1, 700) is None
    assert [cache.get(i, 700) is not None for i in (2, 3, 4)] == [True, True, True]
    assert cache.bytes == 3 * size


def test_a_new_row_version_replaces_the_old_one_in_the_accounts() -> None:
    cache = FeatureCache(10_000)
    cache.put(1, 700, ONE)
    longer = ONE.replace(b"anna", b"annabel")
    cache.put(1, 705, longer)
    assert len(cache) == 1
    assert cache.bytes == XMIN + len(longer) + ENTRY_OVERHEAD
    assert cache.get(1, 700) is None
    assert cache.get(1, 705) == {"given_name": {"v": "annabel"}}


def test_a_budget_of_nothing_keeps_nothing() -> None:
    cache = FeatureCache(0)
    assert cache.off
    cache.put(1, 700, ONE)
    assert len(cache) == 0 and cache.bytes == 0
    small = FeatureCache(ENTRY_OVERHEAD)  # no entry fits
    small.put(1, 700, ONE)
    assert len(small) == 0
