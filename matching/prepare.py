"""Prepared records: every feature the comparators and blocking rules need, computed once.

`prepare(model, entity, values)` turns one record's *standardized* values
(the output of `matching.standardize_record`) into a plain JSON-serialisable
dict, one entry per model field that has a value::

    {
      "given_name":    {"v": "william", "ph": "WALAN", "nk": ["william"], "alt": "smith"},
      "family_name":   {"v": "smith", "ph": "SNAT", "alt": "william"},
      "date_of_birth": {"v": "1980-01-31", "y": "1980", "p": [1980, 1, 31], "o": 722845},
      "email":         {"v": "bill@acme.com", "l": "bill", "d": "acme.com"},
      "postal_code":   {"v": "SW1A1AA"},
      "name":          {"v": "acme", "keys": ["acme"], "tok": ["acme"]},      # company
      ...
    }

The hub stores it per source record (a jsonb column) and compares a new
record against its candidates without recomputing theirs. A field missing
from the dict compares as "null" (weight 0). Which features a field gets
depends only on its comparator, its levels and its source paths, so a model
retrained (new m/u/prior) still reads records prepared for an older version;
`feature_fingerprint` changes exactly when stored records must be prepared
again.

Features, by comparator ("v" is always the compared value):

- person_name: v folded, without a generational suffix ("smith jr" ->
  "smith"); ph NYSIIS code of v without spaces; nk (only with a "nickname"
  or "nickname_typo" level) the first token and the names it is a nickname
  of; nt (only with a "nickname_typo" level, and only for a first token that
  is no known name) the nickname groups of the known names one edit away
  (`typo_neighbours`): "rchard" -> [dick, richard]; alt (when
  `source` has a second path) the other name, folded, without its suffix.
  A placeholder ("N/A", "Unknown": `matching.names`) is no name.
- generation: v the generational suffix ("jr", "sr", "ii", "iii", "iv") at the
  end of the first source value that has one (family name, given name).
- company_name: keys the company keys (`company_key`) of every source
  value that is not a placeholder; v the first; tok v's tokens without stop
  words; acr the initials of v when it has two or more tokens; bk the keys
  and acr (for blocking, so that "IBM" meets "International Business
  Machines"); del the first token and, when it has 3 to 8 letters, every
  string it leaves with one letter taken out (for blocking: "marlow" and
  "marlwo" both leave "marlo", so one typo in a short name still meets its
  twin).
- text: v the first source folded; tok its tokens without stop words; num its
  first all-digit token (a house number); alt the second source folded.
- exact: v folded.
- identifier: v without spaces, dots, dashes and slashes, upper case.
- date: v the ISO date; y the year; p [y, m, d] and o the ordinal day when
  v is a valid date (else only v, compared as text).
- email: v, l the local part (without "+tag"), d the domain, ln the local
  part's letters only ("anna.berg2" -> "annaberg").
- phone, postal_code: v digits only / upper case without spaces.
- address (source: line 1, line 2, postal code, city): l1, l2 the street
  lines folded, pc the postal code without spaces, c the city folded, num
  the first all-digit token of the street lines; st the street of line 1
  without its house number (the words holding a digit), hn that number
  (the first word of line 1 holding a digit); v all of them joined.
- domain: all web domains of the sources (websites and e-mail domains, free
  mail domains left out); v the first.
- money: a the amount (float), c the currency; v "amount currency".
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jellyfish
from nicknames import name_triplets
from rapidfuzz.distance import OSA

from matching.comparators import FREE_MAIL
from matching.model import FieldComparison, MatchModel
from matching.names import is_placeholder, split_generation
from matching.standardize import company_key, website_domain
from matching.text import fold

Prepared = dict[str, dict[str, Any]]

# Words that say nothing about which company or project a name is (folded).
STOP_WORDS = frozenset(
    "a an and at de del der des di die du et for in la le les of on the to und van von y".split()
)

_ID_DROP = str.maketrans(dict.fromkeys(" .-/_\t", None))

# Tokens kept per name (each may become a blocking key).
MAX_TOKENS = 5

# A company name's first token gets its deletion neighbourhood (`deletions`) when it
# has this many letters: shorter ones leave strings too common, longer ones too many keys.
DELETIONS_MIN = 3
DELETIONS_MAX = 8


# Short forms the `nicknames` package's table (American English) lacks: German, Dutch,
# French, Italian, Spanish and Scandinavian ones (formal name -> its short forms).
DIMINUTIVES = Path(__file__).with_name("defaults") / "nicknames.toml"
# Given names of the 1990 US census, beside those of the nickname tables: names that are
# taken as written (`typo_neighbours`).
GIVEN_NAMES = Path(__file__).with_name("defaults") / "given_names.txt"

# A given name shorter than this is not read as a mistyped known name: one edit
# from a two- or three-letter string reaches too many names to say which was meant.
TYPO_MIN = 4
# At most this many known names one edit away are kept for a mistyped name.
TYPO_NEIGHBOURS = 6


@functools.lru_cache(maxsize=1)
def _nickname_canonicals() -> dict[str, tuple[str, ...]]:
    """Nickname -> the names it is a nickname of: the `nicknames` package's table and
    the diminutives of `DIMINUTIVES`."""
    table: dict[str, set[str]] = {}
    for canonical, relation, nickname in name_triplets():
        if relation == "has_nickname":
            table.setdefault(nickname, set()).add(canonical)
    with DIMINUTIVES.open("rb") as fh:
        for language in tomllib.load(fh).values():
            for canonical, short_forms in language.items():
                table.setdefault(canonical, set())
                for short in short_forms:
                    table.setdefault(short, set()).add(canonical)
    return {k: tuple(sorted(v)) for k, v in table.items()}


def nickname_group(name: str) -> list[str]:
    """`name` (folded, first token) and every name it is a nickname of, sorted.

    Two given names are nicknames of each other when their groups meet:
    "bill" -> [bill, robert, will, william, willis] meets "william" -> [william].
    """
    first = name.split(" ", 1)[0]
    if not first:
        return []
    return sorted({first, *_nickname_canonicals().get(first, ())})


@functools.lru_cache(maxsize=1)
def _known_names() -> frozenset[str]:
    """Every name of the nickname tables (nickname or formal) and of `GIVEN_NAMES`."""
    table = _nickname_canonicals()
    census = (
        line.strip()
        for line in GIVEN_NAMES.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    return frozenset(table).union(*table.values(), census)


@functools.lru_cache(maxsize=1)
def _known_by_deletion() -> dict[str, tuple[str, ...]]:
    """Every name of the nickname tables under each string it leaves with at most one
    letter taken out (`deletions`): two names one edit apart share one of them."""
    index: dict[str, set[str]] = {}
    for name in _known_names():
        for key in deletions(name):
            index.setdefault(key, set()).add(name)
    return {k: tuple(sorted(v)) for k, v in index.items()}


def typo_neighbours(name: str) -> list[str]:
    """The known given names (`_known_names`) one edit from `name`'s first token (a
    letter replaced, added, dropped, or two neighbours swapped), when that token is no
    known name itself and has at least `TYPO_MIN` letters; else [].

    A name that is known is taken as written: "joy" is not a mistyped "jay". An
    unknown one is read as each name it may have been meant to be: "rchard" ->
    [richard], "bejamin" -> [benjamin].
    """
    first = name.split(" ", 1)[0]
    if len(first) < TYPO_MIN or first in _known_names():
        return []
    index = _known_by_deletion()
    near = {known for key in deletions(first) for known in index.get(key, ())}
    return sorted(n for n in near if OSA.distance(first, n) <= 1)[:TYPO_NEIGHBOURS]


def _get(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if type(node) is dict or isinstance(node, Mapping):  # dict first: the common case
            node = node.get(part)
        else:
            return None
    return node


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _folded(value: Any) -> str:
    text = _text(value)
    return fold(text) if text else ""


def _tokens(folded: str) -> list[str]:
    seen: list[str] = []
    for token in folded.split():
        if token not in STOP_WORDS and token not in seen:
            seen.append(token)
    # Each token can make a blocking key: a long name gets keys from its first few.
    return seen[:MAX_TOKENS]


# --- one function per comparator: source values in, features (or None) out ---------


def _person_name(value: Any) -> str:
    """A person's name folded, without a generational suffix; "" for a placeholder."""
    text = _text(value)
    if not text or is_placeholder(text, person=True):
        return ""
    return split_generation(fold(text))[0]


def _person(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    v = _person_name(raw[0])
    if not v:
        return None
    out: dict[str, Any] = {"v": v, "ph": jellyfish.nysiis(v.replace(" ", ""))}
    labels = {level.label for level in f.levels}
    if "nickname" in labels or "nickname_typo" in labels:
        out["nk"] = nickname_group(v)
    if "nickname_typo" in labels and (near := typo_neighbours(v)):
        out["nt"] = sorted({n for name in near for n in nickname_group(name)})
    if len(raw) > 1 and (alt := _person_name(raw[1])):
        out["alt"] = alt
    return out


def _generation(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    for value in raw:
        text = _text(value)
        if text and (generation := split_generation(fold(text))[1]):
            return {"v": generation}
    return None


def deletions(token: str) -> list[str]:
    """`token` and every string it leaves with one character taken out, sorted.

    Two tokens one edit apart (a letter replaced, added, dropped, or two
    neighbours swapped) share one of these: "marlow" and "marlwo" share "marlo".
    """
    return sorted({token, *(token[:i] + token[i + 1 :] for i in range(len(token)))})


def _company(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    keys: list[str] = []
    for value in raw:
        text = _text(value)
        if not text:
            continue
        key = company_key(text)
        if key and key not in keys and not is_placeholder(key):
            keys.append(key)
    if not keys:
        return None
    tokens = keys[0].split()
    out: dict[str, Any] = {"v": keys[0], "keys": keys, "tok": _tokens(keys[0])}
    out["bk"] = list(keys)
    if len(tokens) >= 2:
        out["acr"] = "".join(t[0] for t in tokens if t not in STOP_WORDS)
        if out["acr"] not in out["bk"]:
            out["bk"].append(out["acr"])
    if out["tok"]:
        first = out["tok"][0]
        out["del"] = deletions(first) if DELETIONS_MIN <= len(first) <= DELETIONS_MAX else [first]
    return out


def _text_features(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    v = _folded(raw[0])
    if not v:
        return None
    out: dict[str, Any] = {"v": v, "tok": _tokens(v)}
    number = next((t for t in v.split() if t.isdigit()), None)
    if number:
        out["num"] = number
    if len(raw) > 1 and (alt := _folded(raw[1])):
        out["alt"] = alt
    return out


def _exact(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    v = _folded(raw[0])
    return {"v": v} if v else None


def _identifier(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    text = _text(raw[0])
    v = text.translate(_ID_DROP).upper() if text else ""
    return {"v": v} if v else None


def _date(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    value = raw[0]
    if isinstance(value, dt.date):
        value = value.isoformat()
    text = _text(value)
    v = text.strip() if text else ""
    if not v:
        return None
    out: dict[str, Any] = {"v": v}
    try:
        day = dt.date.fromisoformat(v)
    except ValueError:
        return out
    out["v"] = day.isoformat()
    out["y"] = f"{day.year:04d}"
    out["p"] = [day.year, day.month, day.day]
    out["o"] = day.toordinal()
    return out


def _email(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    text = _text(raw[0])
    v = text.strip().lower() if text else ""
    if not v:
        return None
    local, _, domain = v.rpartition("@")
    if not local:
        local, domain = domain, ""
    local = local.split("+", 1)[0]
    out = {"v": v, "l": local, "d": domain}
    # The letters of the local part: "anna.berg2" and "anna_berg" are one name.
    if letters := "".join(c for c in local if c.isalpha()):
        out["ln"] = letters
    return out


def _phone(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    text = _text(raw[0]) or ""
    digits = "".join(c for c in text if c.isdigit() and c.isascii())
    return {"v": digits} if len(digits) >= 5 else None


def _postal(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    text = _text(raw[0])
    v = "".join(text.split()).upper() if text else ""
    return {"v": v} if v else None


def _address(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    # Source order: street line 1, street line 2, postal code, city.
    parts = [*raw, None, None, None, None][:4]
    l1, l2, city = _folded(parts[0]), _folded(parts[1]), _folded(parts[3])
    pc_text = _text(parts[2])
    pc = "".join(pc_text.split()).upper() if pc_text else ""
    if not (l1 or pc or city):
        return None
    out: dict[str, Any] = {"v": ", ".join(x for x in (l1, l2, pc, city) if x)}
    for key, value in (("l1", l1), ("l2", l2), ("pc", pc), ("c", city)):
        if value:
            out[key] = value
    number = next((t for t in f"{l1} {l2}".split() if t.isdigit()), None)
    if number:
        out["num"] = number
    if l1:
        street, house = street_and_number(l1)
        if street:
            out["st"] = street
        if house:
            out["hn"] = house
    return out


def street_and_number(line: str) -> tuple[str, str | None]:
    """A folded street line's street (its words without a digit) and house number (its
    first word with a digit): "12a rosenweg" -> ("rosenweg", "12a")."""
    words = line.split()
    street = " ".join(w for w in words if not any(c.isdigit() for c in w))
    house = next((w for w in words if any(c.isdigit() for c in w)), None)
    return street, house


def _domains(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    found: list[str] = []
    for value in raw:
        text = _text(value)
        if not text:
            continue
        text = text.strip().lower()
        host = text.rpartition("@")[2] if "@" in text else website_domain(text)
        if host and host not in FREE_MAIL and host not in found:
            found.append(host)
    return {"v": found[0], "all": found} if found else None


def _money(f: FieldComparison, raw: Sequence[Any]) -> dict[str, Any] | None:
    value = raw[0]
    if not isinstance(value, Mapping):
        return None
    try:
        amount = float(value.get("amount"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if amount != amount or amount in (float("inf"), float("-inf")):
        return None
    currency = _text(value.get("currency")) or ""
    currency = currency.strip().upper()
    return {"v": f"{amount:g} {currency}".strip(), "a": amount, "c": currency}


_FEATURES: dict[str, Callable[[FieldComparison, Sequence[Any]], dict[str, Any] | None]] = {
    "person_name": _person,
    "generation": _generation,
    "company_name": _company,
    "text": _text_features,
    "exact": _exact,
    "identifier": _identifier,
    "date": _date,
    "email": _email,
    "phone": _phone,
    "postal_code": _postal,
    "address": _address,
    "domain": _domains,
    "money": _money,
}


# Comparators that read every source path, not only the first.
_ANY_SOURCE = frozenset({"company_name", "domain", "address", "generation"})


def prepare(model: MatchModel, entity: str, values: Mapping[str, Any]) -> Prepared:
    """Features of one record's standardized `values` for every field of `model`."""
    if entity != model.entity:
        raise ValueError(f"a {model.entity} model cannot prepare a {entity} record")
    out: Prepared = {}
    for f in model.fields:
        raw = [_get(values, path) for path in f.source]
        if raw[0] is None and f.comparator not in _ANY_SOURCE:
            continue
        features = _FEATURES[f.comparator](f, raw)
        if features is not None:
            out[f.name] = features
    return out


def feature_fingerprint(model: MatchModel) -> str:
    """A short hash of what `prepare` computes for `model`: equal means stored records fit."""
    shape = [
        [f.name, f.comparator, list(f.source), [level.label for level in f.levels]]
        for f in model.fields
    ]
    blob = json.dumps([model.entity, shape], separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()
