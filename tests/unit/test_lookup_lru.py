"""The lookup cache's LRU and its guard against storing an answer an eviction overtook."""

from __future__ import annotations

from mdm.adapters.lookup_cache import GenerationalLru


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
