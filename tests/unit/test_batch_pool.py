"""A unit of work's candidate pool read lazily answers what one read eagerly answers.

`load_pool(first=...)` reads only the members of each record's best-keyed
candidates; `BatchPool.ensure` reads the rest when needed. The store here is an
in-memory implementation of the CandidateSource port (no database: the port's
PostgreSQL adapter is covered by the integration tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from mdm.adapters.matching import Member
from mdm.services.matcher import MAX_CANDIDATES, BatchPool, Features, load_pool


class Store:
    def __init__(self, owners: dict[str, list[str]]) -> None:
        self.owners = owners
        self.reads: list[list[str]] = []

    async def candidate_owners(
        self, entity: str, keys: Sequence[str], cap: int
    ) -> tuple[dict[str, set[str]], set[str]]:
        found = {k: set(self.owners[k]) for k in keys if k in self.owners}
        return {k: g for k, g in found.items() if len(g) <= cap}, {
            k for k, g in found.items() if len(g) > cap
        }

    async def members(self, golden_ids: Iterable[str]) -> dict[str, list[Member]]:
        ids = sorted(set(golden_ids))
        self.reads.append(ids)
        return {
            g: [Member(i, g, "hcm", f"{g}-{i}", {"m": f"{g}-{i}"}) for i in (1, 2)] for g in ids
        }


def _features(name: str, keys: list[str]) -> Features:
    return Features({"m": name}, keys)


def _state(pool: BatchPool, keys: list[str]) -> tuple[list[str], dict[str, Any]]:
    candidates = pool.candidates(keys)
    return candidates, {g: pool.members.get(g) for g in candidates}


def test_lazy_pool_answers_as_the_eager_one_through_adds_and_merges() -> None:
    async def run() -> None:
        # 45 golden records share key k (one vote each), so a record keyed k has more
        # candidates than MAX_CANDIDATES: the first read covers only its best forty.
        goldens = [f"G{i:02d}" for i in range(45)]
        owners = {"k": goldens, "j": ["G44"]}
        lazy_store, eager_store = Store(owners), Store(owners)
        lazy = await load_pool(lazy_store, "worker", ["k", "j"], cap=50, first=[["k"]])
        eager = await load_pool(eager_store, "worker", ["k", "j"], cap=50)
        assert len(lazy_store.reads[0]) == MAX_CANDIDATES < len(eager_store.reads[0])
        assert _state(lazy, ["k"]) == _state(eager, ["k"])

        # A record joins G44 (outside the first read): added after its members.
        for pool in (lazy, eager):
            await pool.ensure(["G44"])
            pool.add("G44", _features("new-44", ["k", "j"]), "R-1")
        assert _state(lazy, ["k"]) == _state(eager, ["k"])
        assert lazy.members["G44"] == [
            {"m": "G44-1"},
            {"m": "G44-2"},
            {"m": "new-44"},
        ]

        # Two of the best forty merge: a place frees up for G40, read when asked for.
        for pool in (lazy, eager):
            await pool.ensure(["G01", "G00"])
            pool.merge("G01", "G00")
            await pool.ensure(pool.candidates(["k"]))
        assert "G40" in lazy.candidates(["k"])
        assert _state(lazy, ["k"]) == _state(eager, ["k"])
        assert _state(lazy, ["k", "j"]) == _state(eager, ["k", "j"])

    asyncio.run(run())
