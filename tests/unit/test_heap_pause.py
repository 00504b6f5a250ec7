"""mdm/heap.py `paused`: automatic collection held off while a batch is ingested, in a
process whose collector the hub owns, and back on when no batch is in flight."""

from __future__ import annotations

import gc

import pytest

from mdm import heap


@pytest.fixture
def owned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap._pauses, "owned", True)
    monkeypatch.setattr(heap._pauses, "depth", 0)
    monkeypatch.setattr(heap._pauses, "ends", 0)
    assert gc.isenabled()


def test_a_process_the_hub_does_not_own_keeps_its_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap._pauses, "owned", False)  # create_app without own_process
    with heap.paused():
        assert gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("owned")
def test_collection_is_off_inside_and_on_again_after_even_on_error() -> None:
    with heap.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), heap.paused():
        raise RuntimeError("the batch failed")
    assert gc.isenabled()


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The generations `paused` collected by hand, in order (nothing is collected)."""
    found: list[int] = []
    monkeypatch.setattr(heap.gc, "collect", lambda generation=2: found.append(generation))
    return found


@pytest.mark.usefixtures("owned")
def test_overlapping_batches_collect_the_young_generations_as_each_ends(
    collected: list[int],
) -> None:
    first, second = heap.paused(), heap.paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the second batch is still in flight
    assert not gc.isenabled()
    assert collected == [1]
    second.__exit__(None, None, None)
    assert gc.isenabled()
    assert collected == [1]  # the collector's own passes follow from here


@pytest.mark.usefixtures("owned")
def test_a_full_collection_every_so_many_ends_while_batches_keep_overlapping(
    collected: list[int],
) -> None:
    holding = heap.paused()
    holding.__enter__()
    for _ in range(heap.FULL_EVERY):
        with heap.paused():
            pass
    holding.__exit__(None, None, None)
    assert collected.count(2) == 1 and collected[-1] == 2
    assert collected.count(1) == heap.FULL_EVERY - 1
    assert gc.isenabled()
