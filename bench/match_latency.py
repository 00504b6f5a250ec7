"""One-record matching latency with N golden records stored (issue 3, "Latency").

1. Generates N distinct synthetic workers, seeded and fast: name, street and
   place pools are drawn once from Faker (several locales; a few thousand given
   names, tens of thousands of family names with hyphenated double names), then
   combined with numpy. Family and given names are drawn Zipf-like, so common
   surnames exist and the hub's generic-key rule is exercised. Birth dates from
   1958 to 2007; German, British and US postal codes and cities; e-mails made
   from the names with a number (unique: an e-mail is a strong key); 30% with an
   employee number, 40% with a phone.
2. Loads them as `mdm load` does (`mdm.adapters.bulk.bulk_load`: the ingestion
   use case in chunks of 1,000, one transaction each, matching included, with
   candidates from the in-memory copy of the blocking index) into a scratch
   database on the local PostgreSQL, or into `--keep-db NAME` (reused, and a
   load resumed, when it holds workers already), then VACUUM ANALYZE.
3. Probes from "psa": half new people, half near-duplicates of stored workers
   (a typo in the family name, a nickname or an initial for the given name, no
   birth date or no e-mail; never the HCM employee number).
   a. The matching step, `mdm.services.matcher.search` (standardize, features,
      candidates from the blocking index, scores, decision; stores nothing), per
      probe, sequentially, on one connection.
   b. The whole ingest request: `mdm serve` against the database, one PUT per
      probe, sequentially, timed by the client; then 4 concurrent clients for
      `--http-seconds` with fresh probes. With `--relay all` (the default) three
      passes, each with its own probes: MDM_RELAY=0; the relay publishing to
      the local NATS JetStream from a child process of `mdm serve` (the
      default); and MDM_RELAY=inline, the relay inside the serving process
      (into a stream of the run's own, deleted at the end).

With `--keep-db` the PUTs go to a copy of the kept database (CREATE DATABASE ...
TEMPLATE), dropped at the end, so the kept one stays as loaded and later runs
measure the same thing.

    python bench/match_latency.py [--records 1000000] [--probes 2000] [--seed 7]
        [--keep-db mdm_latency_1m] [--http-seconds 30] [--relay all|off|on|inline]
        [--explain] [--during-warming] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mdm.services.matcher as matcher  # noqa: E402
from mdm.adapters.bulk import bulk_load  # noqa: E402
from mdm.adapters.bulk_files import Row  # noqa: E402
from mdm.adapters.matching import CANDIDATES_SQL, MEMBERS_SQL, MatchStore  # noqa: E402
from mdm.adapters.migrate import upgrade  # noqa: E402
from mdm.adapters.repository import fetch_rows  # noqa: E402
from mdm.adapters.unit_of_work import SqlUnitOfWork  # noqa: E402
from mdm.bootstrap import load_rules, make_engine  # noqa: E402
from mdm.settings import normalize_database_url  # noqa: E402
from tests.support import free_port, scratch_database  # noqa: E402

ADMIN_KEY = f"mdm_bench_{secrets.token_hex(16)}"  # the served hub's MDM_ADMIN_KEY
AUTH = {"X-API-Key": ADMIN_KEY}
START = "<!-- match_latency -->"
END = "<!-- match_latency: end -->"
GENERATOR = "match_latency/2"  # changes when the generated people change
BATCH = 1_000
CHUNK = 50_000  # people drawn per seeded generator
HTTP_CLIENTS = 4
PROGRESS_EVERY = 50_000

# --- the synthetic population -----------------------------------------------------

COUNTRIES = ("DE", "GB", "US")
COUNTRY_SHARE = (0.4, 0.3, 0.3)
#: Faker locales whose names each country's workers carry (the first is its own).
NAME_LOCALES = {
    "DE": ("de_DE", "de_AT", "pl_PL", "tr_TR", "it_IT", "nl_NL"),
    "GB": ("en_GB", "en_IE", "en_IN", "pl_PL", "fr_FR"),
    "US": ("en_US", "en_CA", "es_MX", "en_IN", "it_IT"),
}
PLACE_LOCALE = {"DE": "de_DE", "GB": "en_GB", "US": "en_US"}
PLACES = {"DE": 8_000, "GB": 20_000, "US": 20_000}
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "web.de", "icloud.com")
DE_MOBILE = (151, 152, 157, 160, 162, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179)
US_AREA = (212, 213, 305, 312, 404, 415, 503, 617, 702, 713, 808, 919)
FIRST_BIRTH = dt.date(1958, 1, 1)
BIRTH_DAYS = (dt.date(2007, 12, 31) - FIRST_BIRTH).days


def _ascii(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _zipf(n: int, offset: float) -> np.ndarray:
    """Weights of ranks 0..n-1 proportional to 1 / (rank + offset), normalised."""
    w = 1.0 / (np.arange(n, dtype=np.float64) + offset)
    return w / w.sum()


def _jitter(names: list[str], rng: random.Random) -> list[str]:
    """`names` reordered by position plus noise: earlier ones stay ahead on average."""
    noisy = [(i + rng.random() * 3 * len(names), n) for i, n in enumerate(names)]
    return [n for _, n in sorted(noisy)]


def _distinct(draw: Any, count: int) -> list[str]:
    """Up to `count` distinct values of `draw()`, in first-drawn order (deterministic)."""
    seen: dict[str, None] = {}
    for _ in range(count * 4):
        seen.setdefault(draw(), None)
        if len(seen) >= count:
            break
    return list(seen)


@dataclass
class _Pools:
    given: list[str]
    family: list[str]
    given_by_country: dict[str, tuple[np.ndarray, np.ndarray]]  # (pool indices, weights)
    family_by_country: dict[str, tuple[np.ndarray, np.ndarray]]
    streets: dict[str, list[str]]
    places: dict[str, list[tuple[str, str]]]
    domains: list[str]
    nicknames: dict[str, list[str]]


def _pools(seed: int) -> _Pools:
    from faker import Faker
    from nicknames import name_triplets

    locales = sorted({loc for locs in NAME_LOCALES.values() for loc in locs})
    fake = Faker(locales)
    Faker.seed(seed)
    rng = random.Random(seed)
    given: dict[str, int] = {}
    family: dict[str, int] = {}
    given_by, family_by = {}, {}
    for country, locs in NAME_LOCALES.items():
        g_ranked: list[str] = []
        f_ranked: list[str] = []
        for rank, loc in enumerate(locs):
            share = 1.0 if rank == 0 else 0.35  # the country's own names are most
            g_ranked += _distinct(fake[loc].first_name, int(1_500 * share))
            f_ranked += _distinct(fake[loc].last_name, int(4_000 * share))
        g_ranked = list(dict.fromkeys(g_ranked))
        f_ranked = list(dict.fromkeys(f_ranked))
        # Rank by a seeded shuffle that keeps the country's own names ahead on average.
        g_ranked = _jitter(g_ranked, rng)
        f_ranked = _jitter(f_ranked, rng)
        # Double names ("Schulz-Yilmaz", "Smith-Jones") are the long tail: rare each.
        base = f_ranked[:]
        doubles = {f"{rng.choice(base)}-{rng.choice(base)}" for _ in range(12_000)}
        f_ranked += sorted(d for d in doubles if d.split("-")[0] != d.split("-")[1])
        for name in g_ranked:
            given.setdefault(name, len(given))
        for name in f_ranked:
            family.setdefault(name, len(family))
        given_by[country] = (
            np.array([given[n] for n in g_ranked], dtype=np.int32),
            _zipf(len(g_ranked), 30.0),
        )
        family_by[country] = (
            np.array([family[n] for n in f_ranked], dtype=np.int32),
            _zipf(len(f_ranked), 20.0),
        )
    streets = {c: _distinct(fake[loc].street_name, 5_000) for c, loc in PLACE_LOCALE.items()}
    places = {}
    for country, loc in PLACE_LOCALE.items():
        code = fake[loc].zipcode if country == "US" else fake[loc].postcode
        codes = _distinct(code, PLACES[country])
        places[country] = [(pc, fake[loc].city()) for pc in codes]
    domains = _distinct(lambda: fake[rng.choice(locales)].domain_name(), 300)
    nick: dict[str, list[str]] = {}
    for canonical, _, nickname in name_triplets():
        nick.setdefault(canonical, []).append(nickname)
    return _Pools(
        given=list(given),
        family=list(family),
        given_by_country=given_by,
        family_by_country=family_by,
        streets=streets,
        places=places,
        domains=domains,
        nicknames={k: sorted(v) for k, v in nick.items()},
    )


class Population:
    """N distinct workers (index 0..N-1, loaded) and spare new people (index N...).

    Person i is the same for a given (seed, N) whatever the number of spares:
    the loaded and the spare people come from separately seeded generators.
    Distinct: no two share given name, family name and birth date, and every
    e-mail is unique.
    """

    def __init__(self, seed: int, n: int, spare: int) -> None:
        began = time.perf_counter()
        self.seed, self.n = seed, n
        self.pools = _pools(seed)
        # Chunks of CHUNK people, each from its own seeded generator and always drawn
        # whole, so that the people of a smaller N are the first people of a larger
        # one (a kept database can grow) and person i never depends on N.
        chunks: list[dict[str, np.ndarray]] = []
        taken = np.empty(0, dtype=np.int64)
        for k in range(-(-n // CHUNK)):
            chunk = self._draw(np.random.default_rng([seed, 1, k]), CHUNK, taken)
            taken = np.concatenate([taken, chunk["key"]])
            chunks.append(chunk)
        main = {k: np.concatenate([c[k] for c in chunks])[:n] for k in chunks[0]} if chunks else {}
        extra = self._draw(np.random.default_rng([seed, 2]), spare, taken[:n])
        self.cols = {k: np.concatenate([main[k], extra[k]]) if main else extra[k] for k in extra}
        self.emails = self._emails(random.Random(seed))
        self.seconds = time.perf_counter() - began

    def _draw(self, rng: np.random.Generator, size: int, taken: np.ndarray) -> dict:
        pools = self.pools
        country = rng.choice(len(COUNTRIES), size=size, p=COUNTRY_SHARE).astype(np.int8)
        given = np.empty(size, dtype=np.int32)
        family = np.empty(size, dtype=np.int32)
        place = np.empty(size, dtype=np.int32)
        street = np.empty(size, dtype=np.int32)
        for c, name in enumerate(COUNTRIES):
            mask = country == c
            k = int(mask.sum())
            ids, w = pools.given_by_country[name]
            given[mask] = ids[rng.choice(len(ids), size=k, p=w)]
            ids, w = pools.family_by_country[name]
            family[mask] = ids[rng.choice(len(ids), size=k, p=w)]
            place[mask] = rng.integers(0, len(pools.places[name]), size=k)
            street[mask] = rng.integers(0, len(pools.streets[name]), size=k)
        birth = rng.integers(0, BIRTH_DAYS, size=size).astype(np.int32)
        cols = {
            "country": country,
            "given": given,
            "family": family,
            "birth": birth,
            "place": place,
            "street": street,
            "house": rng.integers(1, 250, size=size).astype(np.int16),
            "mail_style": rng.choice(3, size=size, p=(0.7, 0.2, 0.1)).astype(np.int8),
            "mail_domain": rng.integers(0, len(pools.domains), size=size).astype(np.int16),
            "free_mail": rng.random(size) < 0.2,
            "employee": rng.random(size) < 0.3,
            "phone": np.where(rng.random(size) < 0.4, rng.integers(0, 10**7, size=size), -1),
        }
        # Distinct people: redraw the birth date of a repeated (given, family, birth).
        for _ in range(20):
            cols["key"] = (
                cols["given"].astype(np.int64) * len(pools.family) + cols["family"]
            ) * BIRTH_DAYS + cols["birth"]
            _, first = np.unique(cols["key"], return_index=True)
            again = np.ones(size, dtype=bool)
            again[first] = False
            if len(taken):
                again |= np.isin(cols["key"], taken)
            if not again.any():
                break
            cols["birth"][again] = rng.integers(0, BIRTH_DAYS, size=int(again.sum()))
        else:
            raise RuntimeError("could not draw distinct people")
        return cols

    def _emails(self, rng: random.Random) -> list[str]:
        p, c = self.pools, self.cols
        given = [_ascii(n) for n in p.given]
        family = [_ascii(n) for n in p.family]
        seen: set[str] = set()
        out = []
        for g_i, f_i, style, d_i, free in zip(
            c["given"].tolist(),
            c["family"].tolist(),
            c["mail_style"].tolist(),
            c["mail_domain"].tolist(),
            c["free_mail"].tolist(),
            strict=True,
        ):
            g, f = given[g_i], family[f_i]
            local = f"{g}.{f}" if style == 0 else f"{g[:1]}{f}" if style == 1 else f"{f}.{g}"
            domain = FREE_MAIL[d_i % len(FREE_MAIL)] if free else p.domains[d_i]
            number = rng.randrange(1, 100)
            while f"{local}{number}@{domain}" in seen:
                number += rng.randrange(1, 1000)
            email = f"{local}{number}@{domain}"
            seen.add(email)
            out.append(email)
        return out

    def person(self, i: int) -> dict[str, Any]:
        p, c = self.pools, self.cols
        country = COUNTRIES[c["country"][i]]
        postcode, city = p.places[country][c["place"][i]]
        street, house = p.streets[country][c["street"][i]], int(c["house"][i])
        attrs: dict[str, Any] = {
            "given_name": p.given[c["given"][i]],
            "family_name": p.family[c["family"][i]],
            "date_of_birth": (FIRST_BIRTH + dt.timedelta(days=int(c["birth"][i]))).isoformat(),
            "email": self.emails[i],
            "address": {
                "line1": f"{street} {house}" if country == "DE" else f"{house} {street}",
                "postal_code": postcode,
                "city": city,
                "country": country,
            },
        }
        if (phone := int(c["phone"][i])) >= 0:
            attrs["phone"] = {
                "DE": f"+49 {DE_MOBILE[phone % len(DE_MOBILE)]} {phone:07d}{phone % 7}",
                "GB": f"07{(4, 5, 7, 8, 9)[phone % 5]}{phone // 5 % 100:02d} "
                f"{phone // 10 % 1_000_000:06d}",
                "US": f"({US_AREA[phone % len(US_AREA)]}) {200 + phone // 10 % 800}-"
                f"{phone // 1_000 % 10_000:04d}",
            }[country]
        if c["employee"][i]:
            # Unique: a bijection of the index (7,919 is prime to 10**8).
            attrs["employee_number"] = f"E{(i * 7_919 + 12_345) % 10**8:08d}"
        return attrs

    def near_duplicate(self, attrs: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """The same person as another source has them (see the module docstring)."""
        out = {k: v for k, v in attrs.items() if k != "employee_number"}
        changed = False
        family = out["family_name"]
        if rng.random() < 0.6 and len(family) >= 4:
            out["family_name"], changed = _typo(family, rng), True
        given = out.get("given_name") or ""
        r = rng.random()
        nicks = self.pools.nicknames.get(given.lower().split(" ")[0], [])
        if r < 0.3 and nicks:
            out["given_name"], changed = rng.choice(nicks).title(), True
        elif r < 0.5 and given:
            out["given_name"], changed = given[0] + ".", True
        r = rng.random()
        if r < 0.3 or not changed:
            out.pop("date_of_birth", None)
        if r >= 0.3 or not changed:
            out.pop("email", None)
        return out


def _typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return name[:i] + name[i + 1 :]  # a letter dropped
    if kind == 1:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]  # two swapped
    if kind == 2:
        return name[:i] + rng.choice("aeinorstlu") + name[i + 1 :]  # one replaced
    return name[:i] + name[i] + name[i:]  # one doubled


# --- probes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    attributes: dict[str, Any]
    original: str | None = None  # the HCM source id of a near-duplicate's original
    original_golden: str | None = None


class Probes:
    """Probe records: new people (spare indices) and near-duplicates, alternating."""

    def __init__(self, pop: Population, originals: dict[str, tuple[dict, str]], seed: int) -> None:
        self.pop = pop
        self.rng = random.Random(seed * 7919 + 3)
        self.fresh = iter(range(pop.n, len(pop.cols["given"])))
        # Each stored worker is the original of one near-duplicate, unless N is too small.
        self.originals = itertools.cycle(sorted(originals.items(), key=lambda _: self.rng.random()))

    def take(self, count: int) -> list[Probe]:
        out = []
        for j in range(count):
            if j % 2 == 0:
                out.append(Probe(self.pop.person(next(self.fresh))))
            else:
                sid, (raw, golden) = next(self.originals)
                out.append(Probe(self.pop.near_duplicate(raw, self.rng), sid, golden))
        return out


async def _originals(url: str, pop: Population, count: int, seed: int) -> dict:
    """`count` stored HCM workers (raw attributes and golden id), a seeded sample."""
    rng = np.random.default_rng([seed, 3])
    wanted = rng.choice(pop.n, size=min(count, pop.n), replace=False)
    ids = [f"H{int(i):08d}" for i in wanted]
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT source_id, raw, golden_id FROM source_record WHERE entity = 'worker' "
                "AND source = 'hcm' AND source_id = ANY(:ids) AND deleted_at IS NULL"
            ),
            {"ids": ids},
        )
        found = {r.source_id: (r.raw, r.golden_id) for r in rows}
    await engine.dispose()
    return found


# --- loading ------------------------------------------------------------------------


async def _scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()


async def _existing(url: str) -> set[int]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT source_id FROM source_record WHERE entity = 'worker' AND source = 'hcm' "
                "AND source_id LIKE 'H%'"
            )
        )
        out = {int(r.source_id[1:]) for r in rows}
    await engine.dispose()
    return out


@dataclass
class LoadStats:
    loaded: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    progress: list[tuple[int, float, float]] = field(default_factory=list)  # (done, s, window/s)


async def _load(url: str, pop: Population, n: int, have: set[int]) -> LoadStats:
    """Load people 0..n-1 that the database does not hold yet, as `mdm load` does.

    `mdm.adapters.bulk.bulk_load`: chunks of 1,000 through the ingestion use case
    (validation, standardization, strong keys, probabilistic matching, survivorship,
    history, outbox), candidates from the in-memory copy of the blocking index.
    """
    todo = [i for i in range(n) if i not in have]
    stats = LoadStats()
    if not todo:
        return stats
    total = len(todo)
    print(f"loading {total:,} workers ({len(have):,} there already)", flush=True)
    rules = load_rules()
    engine = make_engine(url, pool_size=1)
    began = last_t = time.perf_counter()
    last_done = 0

    def progress(k: int) -> None:
        nonlocal last_t, last_done
        before = stats.loaded
        stats.loaded += k
        if stats.loaded // PROGRESS_EVERY > before // PROGRESS_EVERY or stats.loaded == total:
            now = time.perf_counter()
            window = (stats.loaded - last_done) / (now - last_t)
            stats.progress.append((stats.loaded, now - began, window))
            print(
                f"  loaded {stats.loaded:,}/{total:,} in {now - began:,.0f} s: "
                f"{stats.loaded / (now - began):,.0f} records/s overall, "
                f"{window:,.0f} records/s over the last {stats.loaded - last_done:,}",
                flush=True,
            )
            last_t, last_done = now, stats.loaded

    rows = (Row(i + 1, {"source_id": f"H{i:08d}", "attributes": pop.person(i)}) for i in todo)
    report = await bulk_load(engine, rules, "worker", "hcm", rows, BATCH, progress=progress)
    stats.outcomes.update(report.outcomes)
    if report.rejected:
        stats.outcomes["rejected"] += report.rejected
    stats.seconds = time.perf_counter() - began
    await engine.dispose()
    return stats


async def _vacuum(url: str) -> float:
    began = time.perf_counter()
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    return time.perf_counter() - began


@contextlib.asynccontextmanager
async def _database(server: str, keep: str | None) -> AsyncIterator[str]:
    if keep is None:
        async with scratch_database(server) as url:
            yield url
        return
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        found = await conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": keep}
        )
        if found.first() is None:
            await conn.execute(text(f'CREATE DATABASE "{keep}"'))
    await admin.dispose()
    url = make_url(server).set(database=keep).render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=1)
    await upgrade(engine)
    await engine.dispose()
    yield url


@contextlib.asynccontextmanager
async def _copy_of(server: str, url: str, keep: str | None) -> AsyncIterator[str]:
    """The database the PUTs go to: a copy of a kept database (dropped after), else it."""
    if keep is None:
        yield url
        return
    name = f"{keep}_put_{secrets.token_hex(3)}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    began = time.perf_counter()
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{keep}" STRATEGY FILE_COPY'))
    print(f"copied {keep} to {name} in {time.perf_counter() - began:.0f} s", flush=True)
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


# --- measurements ---------------------------------------------------------------------


def _pct(values: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99, p99.9 (nearest rank) and max."""
    ordered = sorted(values)
    if not ordered:
        nan = float("nan")
        return {"median": nan, "p95": nan, "p99": nan, "p999": nan, "max": 0.0}

    def rank(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, int(np.ceil(q * len(ordered))) - 1))]

    return {
        "median": statistics.median(ordered),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": ordered[-1],
    }


class _CountingStore(MatchStore):
    """MatchStore that counts the rows the candidate lookup reads (for the table)."""

    last: dict[str, int] = {}

    async def candidate_owners(self, entity: str, keys: Sequence[str], cap: int) -> Any:
        owners, generic = await super().candidate_owners(entity, keys, cap)
        _CountingStore.last = {
            "keys": len(set(keys)),
            "generic": len(generic),
            "index_rows": sum(len(v) for v in owners.values()) + len(generic) * (cap + 1),
            "goldens": len({g for v in owners.values() for g in v}),
        }
        return owners, generic

    async def members(self, golden_ids: Any) -> Any:
        found = await super().members(golden_ids)
        _CountingStore.last["members"] = sum(len(v) for v in found.values())
        return found


async def _match_step(url: str, probes: list[Probe], warmup: list[Probe]) -> dict[str, Any]:
    rules = load_rules()
    engine = make_engine(url, pool_size=1)
    times: list[float] = []
    counts: dict[str, list[int]] = {
        k: [] for k in ("scored", "keys", "generic", "index_rows", "goldens", "members")
    }
    outcomes: Counter = Counter()
    dup_linked = dups = 0
    worst: tuple[int, dict[str, Any]] = (-1, {})
    matcher.MatchStore = _CountingStore  # type: ignore[misc]
    try:
        async with engine.connect() as conn:
            for probe in warmup:  # the model cache and the connection, not measured
                await matcher.search(
                    SqlUnitOfWork(conn), rules, "worker", probe.attributes, limit=10_000
                )
                await conn.rollback()
            for probe in probes:
                _CountingStore.last = {}
                t0 = time.perf_counter()
                found = await matcher.search(
                    SqlUnitOfWork(conn), rules, "worker", probe.attributes, limit=10_000
                )
                times.append((time.perf_counter() - t0) * 1000)
                await conn.rollback()
                counts["scored"].append(len(found.scores))
                for k in ("keys", "generic", "index_rows", "goldens", "members"):
                    counts[k].append(_CountingStore.last.get(k, 0))
                if counts["members"][-1] > worst[0]:
                    worst = (counts["members"][-1], probe.attributes)
                outcomes[found.decision.outcome] += 1
                if probe.original is not None:
                    dups += 1
                    dup_linked += (
                        found.decision.outcome == "link"
                        and found.decision.golden_id == probe.original_golden
                    )
    finally:
        matcher.MatchStore = MatchStore  # type: ignore[misc]
        await engine.dispose()
    return {
        "ms": _pct(times),
        "counts": {k: _pct([float(v) for v in vs]) for k, vs in counts.items()},
        "mean": {k: statistics.fmean(vs) for k, vs in counts.items()},
        "outcomes": dict(outcomes),
        "dups": dups,
        "dup_linked": dup_linked,
        "worst": worst[1],
    }


async def _explain(url: str, attributes: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of the candidate and member queries for one probe."""
    from matching import standardize_record

    rules = load_rules()
    engine = make_engine(url, pool_size=1)
    out = []
    async with engine.connect() as conn:
        active = await rules.models.current(MatchStore(conn), "worker")
        std = standardize_record("worker", attributes)
        keys = sorted(set(matcher.features(active, "worker", std.values).blocking))
        cap = matcher.GENERIC_KEY_CAP
        for attempt in (1, 2):
            plan = await fetch_rows(
                conn, "EXPLAIN (ANALYZE, BUFFERS) " + CANDIDATES_SQL, keys, "worker", cap + 1
            )
            out.append(f"-- candidate query ({len(keys)} keys), run {attempt}:")
            out += [r[0] for r in plan]
        owners, _ = await MatchStore(conn).candidate_owners("worker", keys, cap)
        goldens = sorted({g for v in owners.values() for g in v})
        plan = await fetch_rows(conn, "EXPLAIN (ANALYZE, BUFFERS) " + MEMBERS_SQL, goldens)
        out.append(f"-- member query ({len(goldens)} golden records):")
        out += [r[0] for r in plan]
    await engine.dispose()
    return "\n".join(out)


async def _mark_published(url: str) -> int:
    """Outbox rows of the load count as published: the relay pass measures requests,
    not the drain of a backlog of N events the load left behind. Then VACUUM ANALYZE
    the database, as autovacuum would have by then (it is off on these machines): a
    relay keeps its published rows for a week, vacuumed, not a million dead ones; and
    the dead rows of earlier runs' writes (golden records updated again and again)
    are gone: after eight runs on one database without it, single PUTs measured 27/s,
    and 57/s right after a VACUUM ANALYZE (2026-12-02)."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        done = await conn.execute(
            text("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        )
    await engine.dispose()
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE"))
    await admin.dispose()
    return int(done.rowcount or 0)


def metrics(base: str, prefix: str) -> dict[str, float]:
    """The hub's metrics (/metrics) whose line begins with `prefix`: name{labels} -> value."""
    text_ = httpx.get(f"{base}/metrics", headers=AUTH, timeout=30).text
    return {
        line.split(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text_.splitlines()
        if line.startswith(prefix)
    }


class Server:
    """`mdm serve` as its own process on loopback, stopped with SIGTERM."""

    def __init__(
        self,
        url: str,
        relay: str,
        stream: str,
        extra_env: dict[str, str] | None = None,
        serve_args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="match_latency_serve_", suffix=".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
        env.update(
            MDM_DATABASE_URL=url,
            MDM_NATS_URL=os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222"),
            MDM_RELAY={"off": "0", "on": "1", "inline": "inline"}[relay],
            MDM_STREAM=stream,
            MDM_SUBJECT_PREFIX=stream.lower(),
            MDM_LOG_LEVEL="WARNING",
            MDM_ADMIN_KEY=ADMIN_KEY,
            MDM_RATE_LIMIT="0",  # measure the hub, not its throttle
        )
        env.update(extra_env or {})
        mdm = Path(sys.executable).with_name("mdm")
        cmd = [str(mdm)] if mdm.exists() else [sys.executable, "-m", "mdm.cli"]
        self.proc = subprocess.Popen(
            [*cmd, "serve", "--host", "127.0.0.1", "--port", str(self.port), *serve_args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        self.log.seek(0)
        raise RuntimeError(f"mdm serve did not become healthy:\n{self.log.read().decode()[-3000:]}")

    def warmed(self, timeout: float = 900) -> dict[str, float]:
        """Waits for the lookup cache's warming at start (it reads the store's answers,
        a million in some 15 s, on the serving process): its metrics once done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = metrics(self.base, "mdm_lookup_cache_")
            if found.get("mdm_lookup_cache_warm_seconds", 0.0) > 0:
                return found
            time.sleep(1)
        raise RuntimeError("the hub's lookup cache did not finish warming")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _outcome(body: dict[str, Any]) -> str:
    if body.get("review"):
        return "review"
    return "link" if body["outcome"] == "linked" else "new"


def _sequential(base: str, probes: list[Probe], prefix: str) -> dict[str, Any]:
    times: list[float] = []
    outcomes: Counter = Counter()
    dup_linked = dups = 0
    with httpx.Client(base_url=base, timeout=60, headers=AUTH) as client:
        for i, probe in enumerate(probes):
            t0 = time.perf_counter()
            response = client.put(
                f"/v1/sources/psa/worker/{prefix}{i:06d}", json={"attributes": probe.attributes}
            )
            times.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
            body = response.json()
            outcomes[_outcome(body)] += 1
            if probe.original is not None:
                dups += 1
                dup_linked += body["outcome"] == "linked" and body["golden_id"] == (
                    probe.original_golden
                )
    return {"ms": _pct(times), "outcomes": dict(outcomes), "dups": dups, "dup_linked": dup_linked}


async def _sustained(base: str, probes: Iterator[Probe], prefix: str, seconds: float) -> dict:
    times: list[float] = []
    errors: Counter = Counter()
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + seconds
    exhausted = False

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal exhausted
        while time.perf_counter() < stop_at:
            try:
                probe = next(probes)
            except StopIteration:
                exhausted = True
                return
            t0 = time.perf_counter()
            response = await client.put(
                f"/v1/sources/psa/worker/{prefix}{next(counter):06d}",
                json={"attributes": probe.attributes},
            )
            if response.status_code == 200:
                times.append((time.perf_counter() - t0) * 1000)
            else:
                errors[response.status_code] += 1

    limits = httpx.Limits(max_connections=HTTP_CLIENTS, max_keepalive_connections=HTTP_CLIENTS)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=AUTH) as client:
        began = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(HTTP_CLIENTS)))
        elapsed = time.perf_counter() - began
    return {
        "records": len(times),
        "seconds": elapsed,
        "per_s": len(times) / elapsed,
        "ms": _pct(times),
        "errors": dict(errors),
        "exhausted": exhausted,
    }


def _http_pass(
    url: str,
    relay: str,
    stream: str,
    seq: list[Probe],
    more: list[Probe],
    seconds: float,
    during_warming: bool = False,
) -> dict[str, Any]:
    tag = relay[0]
    stamp = f"{int(time.time())}{tag}"
    server = Server(url, relay, stream)
    try:
        server.wait_healthy()
        if not during_warming:  # else the PUTs share the loop with the cache's warming
            server.warmed()
        httpx.put(  # warm the process (model cache, pool), not measured
            f"{server.base}/v1/sources/psa/worker/warm-{stamp}",
            json={"attributes": more.pop().attributes},
            headers=AUTH,
            timeout=60,
        ).raise_for_status()
        seq_result = _sequential(server.base, seq, f"s{stamp}-")
        sustained = asyncio.run(_sustained(server.base, iter(more), f"c{stamp}-", seconds))
    finally:
        server.stop()
    return {"seq": seq_result, "sustained": sustained}


async def _delete_stream(stream: str) -> None:
    import nats

    try:
        nc = await nats.connect(
            os.environ.get("MDM_BENCH_NATS_URL", "nats://127.0.0.1:4222"), connect_timeout=5
        )
    except Exception:  # nothing to clean up without NATS
        return
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:  # never created (no relay pass)
        pass
    await nc.close()


def _machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    mem = ""
    with contextlib.suppress(OSError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.0f} GiB"
    return {
        "arch": platform.machine(),
        "model": model,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --- the report -----------------------------------------------------------------------


def _ms(p: dict[str, float]) -> str:
    return f"{p['median']:.2f} / {p['p95']:.2f} / {p['p99']:.2f} / {p['max']:.2f}"


def _n(p: dict[str, float]) -> str:
    return f"{p['median']:.0f} / {p['p99']:.0f} / {p['max']:.0f}"


def _mix(outcomes: dict[str, int]) -> str:
    return " / ".join(f"{outcomes.get(k, 0):,}" for k in ("link", "review", "new"))


def _table(r: dict[str, Any]) -> str:
    m = r["match"]
    c = m["counts"]
    rows = [
        ("workers stored (HCM) / their golden records", f"{r['stored']:,} / {r['goldens']:,}"),
    ]
    if r.get("load"):
        ld = r["load"]
        rows.append(
            (
                f"load as `mdm load` does ({ld['loaded']:,} records, chunks of "
                f"{BATCH:,}; a resumed load counts its last run only): minutes / "
                "records/s overall / records/s over the last "
                f"{ld['last_window_records']:,}",
                f"{ld['seconds'] / 60:.1f} / {ld['rate']:,.0f} / {ld['last_rate']:,.0f}",
            )
        )
    rows += [
        (
            f"matching step, `search()`, {r['probes']:,} probes one at a time, ms: "
            "median / p95 / p99 / max",
            _ms(m["ms"]),
        ),
        ("candidate golden records scored: median / p99 / max", _n(c["scored"])),
        (
            "blocking keys per probe / keys skipped as generic (> 50 records): median / p99 / max",
            f"{_n(c['keys'])}; {_n(c['generic'])}",
        ),
        (
            "index rows read by the candidate query / golden records they name / their "
            "source records loaded (features): median / p99 / max",
            f"{_n(c['index_rows'])}; {_n(c['goldens'])}; {_n(c['members'])}",
        ),
        ("decisions of the probes (search): link / review / new", _mix(m["outcomes"])),
        (
            "near-duplicates linked to their original's golden record (search)",
            f"{m['dup_linked']:,} of {m['dups']:,}",
        ),
    ]
    for name, h in r["http"].items():
        s, q = h["sustained"], h["seq"]
        label = {
            "off": "MDM_RELAY=0",
            "on": "its relay child process (the default), local JetStream",
            "inline": "MDM_RELAY=inline (relay in the serving process), local JetStream",
        }[name]
        rows += [
            (
                f"whole PUT over HTTP, `mdm serve` with {label}, one client, "
                f"{r['probes']:,} probes, ms: median / p95 / p99 / max",
                _ms(q["ms"]),
            ),
            ("... outcomes: link / review / new", _mix(q["outcomes"])),
            (
                "... near-duplicates linked to their original's golden record",
                f"{q['dup_linked']:,} of {q['dups']:,}",
            ),
            (
                f"... {HTTP_CLIENTS} concurrent clients, {s['seconds']:.0f} s, fresh probes: "
                "records/s; ms median / p95 / p99 / max",
                f"{s['per_s']:,.0f}; {_ms(s['ms'])}"
                + (f"; errors {s['errors']}" if s["errors"] else "")
                + (" (probes ran out)" if s["exhausted"] else ""),
            ),
        ]
    return "\n".join(["| what | figure |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _section(r: dict[str, Any], table: str) -> str:
    mach = r["machine"]
    relay_note = {
        "all": "three times, each pass with its own probes: with `MDM_RELAY=0`; with the "
        "relay publishing every event to the local NATS JetStream from a child process of "
        "`mdm serve` (the default); and with `MDM_RELAY=inline`, the relay inside the "
        "serving process",
        "off": "with `MDM_RELAY=0`",
        "on": "with the relay publishing every event to the local NATS JetStream from a child "
        "process of `mdm serve` (the default)",
        "inline": "with `MDM_RELAY=inline`, the relay inside the serving process",
    }[r["relay"]]
    load = ""
    if r.get("load"):
        ld = r["load"]
        steps = ", ".join(f"{d:,}: {w:,.0f}/s" for d, _, w in ld["progress"])
        load = (
            f"\n\nLoading took {ld['seconds'] / 60:.1f} minutes for {ld['loaded']:,} workers "
            f"({ld['rate']:,.0f} records/s overall; records/s per window of "
            f"{PROGRESS_EVERY:,}, by records loaded: {steps}), then VACUUM ANALYZE "
            f"{r['vacuum']:.0f} s. The load linked {ld['outcomes'].get('linked', 0):,} of the "
            f"distinct generated people to another one (strong key or match)."
        )
    else:
        load = (
            "\n\nThe store was kept (`--keep-db`) and not loaded here: the load's rate is"
            " the bulk-load section's."
        )
    text_ = f"""{START}
## One-record matching with {r["stored"]:,} workers stored (issue 3)

`{r["command"]}`

`bench/match_latency.py` generates {r["records"]:,} distinct synthetic workers (seed
{r["seed"]}: Faker name pools of several locales, {r["pools"]["given"]:,} given and
{r["pools"]["family"]:,} family names drawn Zipf-like; German, British and US postal
codes; unique e-mails; 30% with an employee number, 40% with a phone), loads them
as `mdm load` does (`mdm.adapters.bulk.bulk_load`: the ingestion use case with
matching, source hcm, chunks of {BATCH:,}, one loader) into {r["db_note"]} on the
local PostgreSQL, and runs VACUUM ANALYZE. Probes come from psa: half new people, half
near-duplicates of stored workers (a typo in the family name, a nickname or an initial
for the given name, no birth date or no e-mail, no employee number). The matching step is
`mdm.services.matcher.search` (standardize, features, candidates from the blocking
index, scores, decision; stores nothing) on one connection, one probe at a time,
after {r["warmup"]} warm-up probes. The whole request is a PUT
`/v1/sources/psa/worker/{{id}}` to `mdm serve` (one process) on loopback, timed by
the client (httpx), {relay_note}; the sequential PUTs use the probes the matching
step used, the 4-client phase fresh ones. Before a pass with the relay, the load's
outbox rows are marked published (then `VACUUM ANALYZE outbox`, as autovacuum would
have done), so the relay publishes only the pass's events and not the load's backlog.
Counts come from the hub's own candidate lookup (`MatchStore.candidate_owners` and
`members`, wrapped to count).{load}

Machine: {mach["arch"]}, {mach["model"]}, {mach["cores"]} cores, {mach["memory"]}, Linux
{mach["kernel"]}, Python {mach["python"]}; PostgreSQL {r["pg"]} (default settings) on
the same machine. {r["date"]}.

{table}
{END}"""
    return text_


def _write(section: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    current = doc.read_text()
    if START in current and END in current.split(START, 1)[1]:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        current = before + section + after
    else:
        current = current.rstrip() + "\n\n" + section + "\n"
    doc.write_text(current)


# --- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="workers stored (N)")
    parser.add_argument("--probes", type=int, default=2_000, help="probe records per pass")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", default=None, metavar="NAME", help="load into / reuse NAME")
    parser.add_argument("--http-seconds", type=float, default=30.0)
    parser.add_argument("--relay", choices=("all", "off", "on", "inline"), default="all")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the lookups")
    parser.add_argument(
        "--during-warming",
        action="store_true",
        help="send the PUTs as soon as the hub answers /health, while its lookup cache "
        "warms (by default they wait for the warming)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> None:
    server = normalize_database_url(
        os.environ.get("MDM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    assert server is not None
    passes = ["off", "on", "inline"] if args.relay == "all" else [args.relay]
    warmup = 20
    sustained_cap = int(args.http_seconds * 400) + 1
    per_pass = args.probes + sustained_cap + 1
    spare = warmup + per_pass * len(passes)
    report: dict[str, Any] = {
        "records": args.records,
        "seed": args.seed,
        "probes": args.probes,
        "relay": args.relay,
        "warmup": warmup,
        "db_note": f"the database `{args.keep_db}`" if args.keep_db else "a scratch database",
        "machine": _machine(),
        "date": dt.date.today().isoformat(),
    }
    command = ["python bench/match_latency.py", f"--records {args.records}"]
    if args.probes != 2_000:
        command.append(f"--probes {args.probes}")
    if args.seed != 7:
        command.append(f"--seed {args.seed}")
    if args.keep_db:
        command.append(f"--keep-db {args.keep_db}")
    if args.http_seconds != 30:
        command.append(f"--http-seconds {args.http_seconds:g}")
    if args.relay != "all":
        command.append(f"--relay {args.relay}")
    if args.during_warming:
        command.append("--during-warming")
    report["command"] = " ".join([*command, "--write"])
    stream = f"MDMBENCH{secrets.token_hex(3).upper()}"

    async with _database(server, args.keep_db) as url:
        name = make_url(url).database
        mark = f"{GENERATOR} seed={args.seed}"
        if args.keep_db:
            comment = await _scalar(
                url,
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n",
                n=name,
            )
            if comment and comment != mark:
                print(f"WARNING: {name} was loaded as {comment!r}; this run is {mark!r}")
        have = await _existing(url)
        # People 0..n-1 are the stored ones (more than --records if a kept database grew).
        n = max(args.records, max(have, default=-1) + 1)
        pop = Population(args.seed, n, spare)
        print(
            f"generated {n:,} workers (+{spare:,} spare) in {pop.seconds:.1f} s: "
            f"{len(pop.pools.given):,} given and {len(pop.pools.family):,} family names",
            flush=True,
        )
        report["pools"] = {"given": len(pop.pools.given), "family": len(pop.pools.family)}
        stats = await _load(url, pop, args.records, have)
        if stats.loaded:
            report["vacuum"] = await _vacuum(url)
            last = stats.progress[-1]
            prev_done = stats.progress[-2][0] if len(stats.progress) > 1 else 0
            report["load"] = {
                "loaded": stats.loaded,
                "seconds": stats.seconds,
                "rate": stats.loaded / stats.seconds,
                "last_rate": last[2],
                "last_window_records": last[0] - prev_done,
                "progress": stats.progress,
                "outcomes": dict(stats.outcomes),
            }
            print(f"VACUUM ANALYZE: {report['vacuum']:.0f} s", flush=True)
            if args.keep_db and comment != mark:
                admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
                async with admin.connect() as conn:
                    await conn.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{mark}'"))
                await admin.dispose()
        report["stored"] = await _scalar(
            url,
            "SELECT count(*) FROM source_record WHERE entity = 'worker' AND source = 'hcm' "
            "AND deleted_at IS NULL",
        )
        report["goldens"] = await _scalar(
            url,
            "SELECT count(DISTINCT golden_id) FROM source_record WHERE entity = 'worker' "
            "AND source = 'hcm' AND deleted_at IS NULL",
        )
        report["pg"] = str(await _scalar(url, "SHOW server_version")).split()[0]
        originals = await _originals(url, pop, (per_pass * len(passes)) // 2 + 10, args.seed)
        stream_of_probes = Probes(pop, originals, args.seed)
        warm = stream_of_probes.take(warmup)
        probe_sets = {p: stream_of_probes.take(args.probes) for p in passes}
        more_sets = {p: stream_of_probes.take(sustained_cap) for p in passes}
        first = probe_sets[passes[0]]
        print(
            f"{report['stored']:,} workers stored; matching step, {len(first):,} probes", flush=True
        )
        report["match"] = await _match_step(url, first, warm)
        print(f"  ms median / p95 / p99 / max: {_ms(report['match']['ms'])}", flush=True)
        if args.explain:
            print(await _explain(url, report["match"]["worst"]))
        report["http"] = {}
        async with _copy_of(server, url, args.keep_db) as put_url:
            for p in passes:
                if p != "off":
                    marked = await _mark_published(put_url)
                    print(f"marked {marked:,} outbox rows published before the relay pass")
                print(f"HTTP pass, relay {p}", flush=True)
                report["http"][p] = await asyncio.to_thread(
                    _http_pass,
                    put_url,
                    p,
                    stream,
                    probe_sets[p],
                    more_sets[p],
                    args.http_seconds,
                    args.during_warming,
                )
                h = report["http"][p]
                print(
                    f"  ms median / p95 / p99 / max: {_ms(h['seq']['ms'])}; "
                    f"{h['sustained']['per_s']:,.0f} records/s with {HTTP_CLIENTS} clients",
                    flush=True,
                )
        await _delete_stream(stream)

    table = _table(report)
    print(table)
    if args.write:
        _write(_section(report, table))
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
