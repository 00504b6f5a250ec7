"""The garbage collector of a hub process (`mdm serve`), set for its long-lived heap.

A hub process keeps a large heap for its whole life: the ID lookup cache alone is
two dicts of up to millions of entries (mdm/adapters/lookup_cache.py). CPython's
cyclic collector walks every tracked object on each full (generation 2) pass, and
ingestion makes those passes frequent: a batch decodes the match features of
thousands of stored members, hundreds of thousands of containers that live a
while, enough to trip the collector's own rule for a full pass several times per
batch, each pass walking the whole long-lived heap. The settings below keep those
passes off the long-lived heap; their measured effect on batch ingestion is in
docs/benchmarks.md (load-test section).

Two settings and one measure, all process-wide, so only the process's owner
applies them (`create_app(..., own_process=True)`, which `mdm serve` passes):

- `freeze_long_lived` once the hub has started: what is alive then stays alive
  (the modules, the rules, the pools, and the ID lookup cache's two tables, made
  with the app and filled in place); `gc.freeze` moves it out of the collector's
  generations, so no pass walks it again. The cache's entries, added later, are
  tuples of strings and bytes, which the collector stops tracking the first time
  it sees them. Reference counting still frees a frozen object when it goes;
  only its cycles would wait forever, so a collection first frees the cycles
  that are garbage at that moment.
- `observe_pauses` times every collection into the histogram
  mdm_gc_pause_seconds{generation} of /metrics, so what the collector costs a
  running hub is seen, not guessed.
- `tune` makes full passes rarer: one per FULL_EVERY collections of generation 1
  instead of CPython's 10. The young generations, where cycles of a request die,
  are collected as often as before.
- `paused` holds automatic collection off while a batch is ingested (the API's
  batch endpoint). A batch of 1,000 keeps some 500,000 containers alive for its
  two seconds (its candidates' decoded features, its plan); the collections its
  own allocations trigger walk them again and again (generations 1 and 2 took
  about a tenth of a batch's time in `mdm serve`). Reference counting frees them
  at the batch's end as before; cycles made meanwhile wait for the collector's
  next pass, which follows as soon as no batch is in flight, or, while others
  still are, a collection of the young generations when each batch ends (a full
  one every FULL_EVERY such ends), so that back-to-back batches of several
  clients cannot keep the collector off for good.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Histogram

log = logging.getLogger("mdm")

GC_PAUSES = Histogram(
    "mdm_gc_pause_seconds",
    "Pauses of the cyclic garbage collector in this hub process, by generation",
    ["generation"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)

#: Collections of generation 1 between two full ones (CPython's default is 10).
FULL_EVERY = 100


class _Pauses:
    owned = False  # `tune` was called: this process's collector is the hub's to set
    depth = 0  # `paused` blocks in progress
    ends = 0  # blocks that ended while others were still in progress


_pauses = _Pauses()


def tune() -> None:
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
    _pauses.owned = True


@contextmanager
def paused() -> Iterator[None]:
    """Automatic collection held off for the block (see the module's docstring); a
    no-op in a process whose collector the hub does not own (`tune` not called)."""
    if not _pauses.owned:
        yield
        return
    _pauses.depth += 1
    if _pauses.depth == 1:
        gc.disable()
    try:
        yield
    finally:
        _pauses.depth -= 1
        if _pauses.depth == 0:
            gc.enable()
        else:
            _pauses.ends += 1
            gc.collect(2 if _pauses.ends % FULL_EVERY == 0 else 1)


def freeze_long_lived() -> None:
    """Collect what is garbage now, then leave everything alive out of later passes."""
    gc.collect()
    gc.freeze()
    log.info("garbage collector: %d long-lived objects frozen", gc.get_freeze_count())


class _PauseTimer:
    """A `gc.callbacks` entry: each collection's pause into GC_PAUSES."""

    def __init__(self) -> None:
        self.began = 0.0
        self.observers = [GC_PAUSES.labels(str(g)) for g in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.began = time.perf_counter()
        else:
            self.observers[info["generation"]].observe(time.perf_counter() - self.began)


def observe_pauses() -> None:
    """Time every collection of this process (mdm_gc_pause_seconds), once."""
    if not any(isinstance(cb, _PauseTimer) for cb in gc.callbacks):
        gc.callbacks.append(_PauseTimer())
