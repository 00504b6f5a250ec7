"""The lookup cache's LRU and its guard against storing an answer an eviction overtook."""

from __future__ import annotations

from mdm.adapters.lookup_cache import ANSWER_OVERHEAD, GenerationalLru, answer_cache, answer_size


def live_cache(size: int = 10) -> GenerationalLru[str, bytes]:
    cache: GenerationalLru[str, bytes] = GenerationalLru(size)
    cache.live = True
    return cache


def test_an_answer_read_before_an_eviction_of_its_golden_id_is_not_stored() -> None:
    cache = live_cache()
    read_at = cache.generation  # the database read starts ...
    cache.evict(["g1"])  # ... a commit's invalidation arrives ...
    assert not cache.put("k", "g1", b"stale", read_at)  # ... the stale answer is dropped
    assert cache.get("k") is None


def test_an_eviction_of_other_golden_ids_does_not_block_the_put() -> None:
    cache = live_cache()
    read_at = cache.generation
    cache.evict(["g2", "g3"])
    assert cache.put("k", "g1", b"fresh", read_at)
    assert cache.get("k") == b"fresh"


def test_a_flush_or_forgotten_evictions_block_every_put_begun_before() -> None:
    cache = live_cache()
    read_at = cache.generation
    cache.clear()
    assert not cache.put("k", "g1", b"v", read_at)
    small: GenerationalLru[str, bytes] = GenerationalLru(10, remembered=2)
    small.live = True
    read_at = small.generation
    for tag in ("a", "b", "c"):  # more evictions than it remembers
        small.evict([tag])
    assert not small.put("k", "g1", b"v", read_at)


def test_evicting_a_golden_id_drops_every_answer_naming_it() -> None:
    cache = live_cache()
    cache.put("crm:1", "g1", b"a", cache.generation)
    cache.put("erp:7", "g1", b"b", cache.generation)
    cache.put("crm:2", "g2", b"c", cache.generation)
    cache.evict(["g1"])
    assert cache.get("crm:1") is None and cache.get("erp:7") is None
    assert cache.get("crm:2") == b"c"


def test_bounded_least_recently_used_first() -> None:
    cache = live_cache(size=2)
    cache.put("a", "g1", b"a", cache.generation)
    cache.put("b", "g2", b"b", cache.generation)
    assert cache.get("a") == b"a"  # "b" is now the least recently used
    cache.put("c", "g3", b"c", cache.generation)
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == b"a"
    cache.evict(["g2"])  # its index entry went with it: nothing left behind
    assert len(cache) == 2


def test_nothing_is_stored_while_invalidations_are_not_received_or_size_is_zero() -> None:
    dark: GenerationalLru[str, bytes] = GenerationalLru(10)
    assert not dark.put("k", "g1", b"v", dark.generation)
    off = live_cache(size=0)
    assert not off.put("k", "g1", b"v", off.generation)


def test_the_tag_index_holds_one_key_or_a_set_and_leaves_nothing_behind() -> None:
    cache = live_cache(size=3)
    g = cache.generation
    cache.put("crm:1", "g1", b"a", g)
    cache.put("erp:7", "g1", b"a", g)  # a second key of g1: a set
    cache.put("crm:1", "g2", b"x", g)  # crm:1 now names g2: g1 is back to one key
    assert cache._by_tag == {"g1": "erp:7", "g2": "crm:1"}
    cache.evict(["g1"])
    assert cache.get("erp:7") is None and cache.get("crm:1") == b"x"
    cache.put("a", "g3", b"1", g + 1)
    cache.put("b", "g3", b"2", g + 1)
    cache.put("c", "g4", b"3", g + 1)  # over size: crm:1 (least recently used) goes
    assert cache.get("crm:1") is None and set(cache._by_tag) == {"g3", "g4"}
    cache.put("d", "g5", b"4", g + 1)  # "a" goes, "b" stays as g3's one key
    assert cache._by_tag["g3"] == "b"
    cache.evict(["g3", "g4", "g5"])
    assert len(cache) == 0 and cache._by_tag == {}


def budgeted(max_bytes: int, max_entries: int | None = None) -> GenerationalLru[str, bytes]:
    cache = answer_cache(max_bytes, max_entries)
    cache.live = True
    return cache


def accounted(cache: GenerationalLru[str, bytes]) -> int:
    """What the held answers weigh, summed afresh."""
    return sum(answer_size(key, body) for key, (_tag, body) in cache._entries.items())


def test_an_answer_is_accounted_for_its_lengths_and_the_constant_overhead() -> None:
    assert answer_size("worker/hcm/H00000001", b"x" * 200) == 20 + 200 + ANSWER_OVERHEAD


def test_a_byte_budget_holds_what_fits_and_evicts_the_least_recently_used() -> None:
    body = b"x" * 100
    one = answer_size("k1", body)
    cache = budgeted(3 * one)
    for i in (1, 2, 3):
        assert cache.put(f"k{i}", f"g{i}", body, cache.generation)
    assert len(cache) == 3 and cache.bytes == 3 * one
    assert not cache.room_for("k4", body)
    assert cache.get("k1") == body  # k2 is now the least recently used
    cache.put("k4", "g4", body, cache.generation)
    assert set(cache._entries) == {"k1", "k3", "k4"} and cache.bytes == 3 * one
    # A larger answer makes room by as many of the oldest as it takes.
    big = b"y" * (one + 100)
    cache.put("k5", "g5", big, cache.generation)
    assert set(cache._entries) == {"k4", "k5"}
    assert cache.bytes == accounted(cache) <= cache.max_bytes  # type: ignore[operator]
    assert "g1" not in cache._by_tag and "g3" not in cache._by_tag


def test_an_answer_larger_than_the_whole_budget_is_refused_and_evicts_nothing() -> None:
    cache = budgeted(answer_size("k1", b"a") + 10)
    assert cache.put("k1", "g1", b"a", cache.generation)
    assert not cache.put("k2", "g2", b"z" * 1000, cache.generation)
    assert cache.get("k1") == b"a" and cache.bytes == answer_size("k1", b"a")


def test_invalidation_replacement_and_flush_keep_the_byte_count_right() -> None:
    cache = budgeted(10 * 1024 * 1024)
    g = cache.generation
    cache.put("crm:1", "g1", b"a" * 50, g)
    cache.put("erp:7", "g1", b"a" * 50, g)  # two keys of one golden record
    cache.put("crm:2", "g2", b"b" * 80, g)
    cache.put("crm:2", "g2", b"b" * 120, g)  # replaced: counted once, at its new size
    assert (
        cache.bytes
        == accounted(cache)
        == (answer_size("crm:1", b"a" * 50) + answer_size("erp:7", b"a" * 50))
        + answer_size("crm:2", b"b" * 120)
    )
    cache.evict(["g1"])
    assert cache.bytes == accounted(cache) == answer_size("crm:2", b"b" * 120)
    cache.put("crm:3", "g3", b"c", cache.generation)
    cache.put("crm:2", "g3", b"d", cache.generation)  # crm:2 now names g3
    cache.evict(["g2"])  # no longer crm:2's tag: nothing goes
    assert len(cache) == 2 and cache.bytes == accounted(cache)
    cache.evict(["g3"])
    assert len(cache) == 0 and cache.bytes == 0
    cache.put("crm:4", "g4", b"e", cache.generation)
    cache.clear()
    assert cache.bytes == 0 and cache._by_tag == {}


def test_a_cap_on_answers_bounds_the_cache_along_with_its_budget() -> None:
    cache = budgeted(10 * 1024 * 1024, max_entries=2)
    for i in (1, 2, 3):
        cache.put(f"k{i}", f"g{i}", b"v", cache.generation)
    assert set(cache._entries) == {"k2", "k3"} and cache.bytes == accounted(cache)
    assert not cache.room_for("k4", b"v")
    assert budgeted(0).off and budgeted(100, max_entries=0).off
    assert not budgeted(0).put("k", "g", b"v", 0)
