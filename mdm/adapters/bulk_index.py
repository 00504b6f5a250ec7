"""The blocking index of one entity in memory, for a bulk load (mdm.adapters.bulk):
it answers a chunk's candidate reads as the database's index would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from matching.prepare import Prepared as Features
from mdm.services.matcher import GENERIC_KEY_CAP, BatchPool, generic_key

#: MemoryIndex.owners' mark of a generic key (never appended to)
GENERIC: list[str] = []


class MemoryIndex:
    """The blocking index of one entity in memory, answering as `MatchStore` would.

    A key carried by more than `cap` live records is generic (its owner list is
    dropped: it is never a candidate again during the load, as in the database,
    where it only gains records). Golden ids merged away in a unit of work resolve
    to their survivor. A record updated during the load keeps its old keys here
    besides its new ones until the load ends (the database replaces them): they
    can only add candidates, which are scored against the record's current
    features, and count twice towards the cap where old and new share a key.
    """

    def __init__(self, cap: int = GENERIC_KEY_CAP) -> None:
        self.cap = cap
        # generic_key for a key's first and second carriers, asked once (the hot loop)
        self._generic_at = (generic_key(1, cap), generic_key(2, cap))
        # key -> the golden id of the one record carrying it (most keys: a string is
        # not tracked by the garbage collector and is 70 bytes smaller than a list),
        # the golden id of each record carrying it once there are several (so its
        # length is the key's count), or GENERIC once more than `cap` records do
        self.owners: dict[str, str | list[str]] = {}
        # golden id -> the prepared features of its records, in the order they came
        # (handed to matching as they are: `_Members` copies a list before it changes)
        self.members: dict[str, list[Features]] = {}
        # record ("source\x1fsource_id") -> its golden id and its features in that list
        self.golden_of: dict[str, tuple[str, Features]] = {}
        self.merged: dict[str, str] = {}
        self._pending: BatchPool | None = None  # the pool of the unit of work in hand

    def resolve(self, golden_id: str) -> str:
        while golden_id in self.merged:
            golden_id = self.merged[golden_id]
        return golden_id

    async def prime(self, conn: AsyncConnection, entity: str) -> int:
        """Read the live records' keys and features of `entity` from the database."""
        rows = await conn.stream(
            text(
                """
                SELECT s.source, s.source_id, s.golden_id, s.match_features,
                       ARRAY(SELECT m.key FROM match_key m WHERE m.source_record_id = s.id)
                FROM source_record s
                WHERE s.entity = :entity AND s.deleted_at IS NULL
                  AND jsonb_typeof(s.match_features) = 'object'  -- not a registered id's
                """
            ),
            {"entity": entity},
        )
        n = 0
        async for source, source_id, golden_id, prepared, keys in rows:
            self._add(f"{source}\x1f{source_id}", golden_id, keys, prepared)
            n += 1
        return n

    def _add(self, record: str, golden_id: str, keys: Iterable[str], prepared: Features) -> None:
        before = self.golden_of.get(record)
        if before is not None:  # an update: its old features go (its old keys stay)
            listed = self.members.get(self.resolve(before[0]), [])
            for i, old in enumerate(listed):
                if old is before[1]:
                    del listed[i]
                    break
        owners, cap = self.owners, self.cap
        one_is_generic, two_are_generic = self._generic_at
        for key in keys:
            found = owners.get(key)
            if found is None:
                owners[key] = GENERIC if one_is_generic else golden_id
            elif isinstance(found, str):
                owners[key] = GENERIC if two_are_generic else [found, golden_id]
            elif found is not GENERIC:
                found.append(golden_id)
                if generic_key(len(found), cap):
                    owners[key] = GENERIC
        self.golden_of[record] = (golden_id, prepared)
        self.members.setdefault(golden_id, []).append(prepared)

    # -- PoolSource -----------------------------------------------------------------

    async def pool(self, entity: str, keys: Sequence[str]) -> BatchPool:
        owners: dict[str, set[str]] = {}
        generic: set[str] = set()
        index, merged = self.owners, self.merged
        for key in set(keys):
            listed = index.get(key)
            if listed is GENERIC:
                generic.add(key)
            elif listed is not None:
                found = {listed} if isinstance(listed, str) else set(listed)
                # (most keys name no merged-away golden record: no resolving for them)
                if merged and not merged.keys().isdisjoint(found):
                    found = {self.resolve(g) for g in found}
                owners[key] = found
        pool = BatchPool(
            generic=generic,
            db_owners=owners,
            members=_Members(self.members, owners),
        )
        self._pending = pool
        return pool

    def commit(self, source: str) -> None:
        """The unit of work that used the last pool committed: take in what it linked."""
        pool, self._pending = self._pending, None
        if pool is None:
            return
        for loser in pool.merged:
            survivor = self.resolve(pool.resolve(loser))
            if survivor == loser:
                continue
            self.merged[loser] = survivor
            moved = self.members.pop(loser, [])
            self.members.setdefault(survivor, []).extend(moved)
        for golden_id, f, source_id in pool.added:
            golden_id = self.resolve(pool.resolve(golden_id))
            self._add(f"{source}\x1f{source_id}", golden_id, f.blocking, f.prepared)

    def rollback(self) -> None:
        self._pending = None


_ABSENT = object()


class _Members(dict):
    """A unit of work's candidate members (BatchPool.members), taken from the index
    when first asked for: the pool holds every golden record owning one of the unit's
    keys (tens of thousands for a chunk, as the database's pool would), while matching
    scores the best-keyed forty of each record. Only those are looked up.

    A golden record's list is the index's own (matching only reads it; copying some
    40,000 of them a chunk was a twentieth of the loading process's time near a
    million records); `setdefault`, through which the unit of work adds to a list,
    first puts a copy in its place. The index changes only in `commit`, after the
    unit's planning, and no plan keeps a list. A golden id is looked up in the index once: if
    it is not there (or owns none of the unit's keys), or once popped, it stays out.
    """

    def __init__(self, index: dict[str, list[Features]], owners: dict[str, set[str]]):
        super().__init__()
        self._index = index
        self._owners = owners
        self._allowed: set[str] | None = None
        self._out: set[str] = set()  # looked up and not taken, or popped

    def _take(self, golden_id: str) -> Any:
        """The golden record's members from the index, now here (or _ABSENT)."""
        if golden_id not in self._out:
            found = self._index.get(golden_id)
            if found:
                if self._allowed is None:
                    self._allowed = set().union(*self._owners.values()) if self._owners else set()
                if golden_id in self._allowed:
                    dict.__setitem__(self, golden_id, found)
                    return found
            self._out.add(golden_id)
        return _ABSENT

    def get(self, golden_id: str, default: Any = None) -> Any:
        found = dict.get(self, golden_id, _ABSENT)
        if found is _ABSENT:
            found = self._take(golden_id)
        return default if found is _ABSENT else found

    def __getitem__(self, golden_id: str) -> Any:
        found = self.get(golden_id, _ABSENT)
        if found is _ABSENT:
            raise KeyError(golden_id)
        return found

    def __contains__(self, golden_id: object) -> bool:
        return self.get(str(golden_id), _ABSENT) is not _ABSENT

    def setdefault(self, golden_id: str, default: Any = None) -> Any:
        found: Any = self.get(golden_id, _ABSENT)
        if found is _ABSENT:
            return dict.setdefault(self, golden_id, default)
        shared = self._index.get(golden_id)
        if shared is not None and found is shared:  # the index's own list: copy it first
            found = list(shared)
            dict.__setitem__(self, golden_id, found)
        return found

    def pop(self, golden_id: str, *default: Any) -> Any:
        self.get(golden_id)
        self._out.add(golden_id)
        return dict.pop(self, golden_id, *default)
