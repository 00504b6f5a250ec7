"""What one cached ID lookup answer costs in memory (mdm/adapters/lookup_cache.py).

Fills the hub's answer cache (GenerationalLru with the answer weighing `mdm serve`
uses, no byte bound) with `--answers` answers shaped like the load test's store:
one worker a golden record, known to HCM by an id like `H00000042`, encoded by
the hub's own renderer (mdm/api/golden.py render_xref). Then prints, per answer:

- the key's and the encoded answer's lengths (what the cache accounts per answer
  beyond its constant);
- the memory the process's allocations grew by (tracemalloc), and its resident
  set (VmRSS) grew by: key and answer objects, the golden id, the entry's tuple,
  the LRU's slot and the golden-id index, as Python lays them out;
- the constant per answer those leave beyond the lengths, next to the one the
  cache accounts (ANSWER_OVERHEAD).

    python bench/lookup_cache_memory.py [--answers 1000000] [--sources 1]

`--sources N`: N source records a golden record (N keys sharing one answer, as a
warming stores them). Runs in one process, no database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mdm.adapters.lookup_cache import ANSWER_OVERHEAD, answer_cache, xref_key
from mdm.api.golden import render_xref
from mdm.domain.ids import new_golden_id
from mdm.settings import load_sources

SOURCES = ("hcm", "psa", "erp", "crm")


def _rss() -> int:
    status = Path("/proc/self/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def fill(answers: int, sources: int, trace: bool) -> dict[str, Any]:
    """A cache of `answers` answers and what it took: the resident set's growth, or
    (`trace`) the allocations' (tracemalloc's own tables inflate the resident set)."""
    hub: Any = SimpleNamespace(catalog=load_sources())
    cache = answer_cache(max_bytes=None, max_entries=None)
    cache.live = True
    received = dt.datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=dt.UTC)
    lengths = 0
    gc.collect()
    rss0 = _rss()
    if trace:
        tracemalloc.start()
    goldens = answers // sources
    for i in range(goldens):
        golden_id = new_golden_id("worker")
        rows = [
            {
                "golden_id": golden_id,
                "status": "active",
                "source": source,
                "source_id": f"{source[0].upper()}{i:08d}",
                "received_at": received + dt.timedelta(seconds=i),
            }
            for source in SOURCES[:sources]
        ]
        body = render_xref(hub, "worker", rows)
        for r in rows:
            key = xref_key("worker", r["source"], r["source_id"])
            cache.put(key, golden_id, body, cache.generation)
            lengths += len(key) + len(body)
        del rows, body, key, golden_id
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] if trace else _rss() - rss0
    tracemalloc.stop()
    held = len(cache)
    assert held == goldens * sources
    return {
        "answers": held,
        "mean_lengths": lengths / held,
        "per_answer": grown / held,
        "accounted_per_answer": cache.bytes / held,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--sources", type=int, default=1, choices=range(1, len(SOURCES) + 1))
    args = parser.parse_args()
    r = fill(args.answers, args.sources, trace=False)
    traced = fill(args.answers, args.sources, trace=True)["per_answer"]
    mean = r["mean_lengths"]
    print(f"{r['answers']:,} answers, {args.sources} source record(s) a golden record")
    print(f"key + encoded answer lengths: {mean:.1f} bytes an answer")
    print(
        f"allocations (tracemalloc): {traced:.1f} bytes an answer, "
        f"{traced - mean:.1f} beyond the lengths"
    )
    print(
        f"resident set (VmRSS): {r['per_answer']:.1f} bytes an answer, "
        f"{r['per_answer'] - mean:.1f} beyond the lengths"
    )
    print(
        f"accounted by the cache: {r['accounted_per_answer']:.1f} bytes an answer "
        f"(ANSWER_OVERHEAD = {ANSWER_OVERHEAD})"
    )


if __name__ == "__main__":
    main()
