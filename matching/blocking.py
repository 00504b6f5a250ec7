"""Blocking keys: short strings two records share when they are worth comparing.

Each rule of the model makes keys "{rule}:{part}|{part}...", one part per
prepared feature it names ("family_name.ph" -> the family name's NYSIIS code,
"family_name.v[:3]" -> its first three letters, "national_id.v[4:]" -> all but
its first four characters). A record gets several keys,
one or more per rule, so that one typo does not hide a match: a misspelt
family name still meets its twin through the date of birth, the national id
or the e-mail. A feature that is a list (company name tokens, a given name's
nickname group) makes one key per element; a slice of a list keeps
elements ("name.tok[:1]" is the first token), a slice of a text keeps
characters. A rule with a part the record lacks makes no key.

Skipping generic keys (one shared by thousands of records) is the caller's
job: it knows how many records hold each key.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matching.model import BlockingRule, MatchModel
from matching.prepare import Prepared

# Values longer than this are replaced by a hash, so that keys stay short.
MAX_PART_LENGTH = 40


@dataclass(frozen=True, slots=True)
class _Part:
    field: str
    feature: str
    cut: slice | None


def _bound(text: str) -> int | None:
    return int(text) if text else None


@functools.lru_cache(maxsize=256)
def _parts(rule: BlockingRule) -> tuple[_Part, ...]:
    out = []
    for spec in rule.parts:
        path, _, cut = spec.partition("[")
        field, _, feature = path.partition(".")
        start, _, stop = cut.rstrip("]").partition(":")
        out.append(_Part(field, feature, slice(_bound(start), _bound(stop)) if cut else None))
    return tuple(out)


def _short(text: str) -> str:
    if len(text) <= MAX_PART_LENGTH:
        return text
    return "#" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _values(part: _Part, prepared: Prepared) -> list[str]:
    features = prepared.get(part.field)
    if features is None:
        return []
    value: Any = features.get(part.feature)
    if isinstance(value, list):
        # A slice of a list feature keeps elements ("name.tok[:1]": the first token).
        items = value[part.cut] if part.cut is not None else value
        cut = None
    else:
        items, cut = [value], part.cut
    out = []
    for item in items:
        if item is None or isinstance(item, bool):
            continue
        text = item if isinstance(item, str) else str(item)
        if cut is not None:
            text = text[cut]
        # "|" separates parts and ":" the rule name; neither may appear in a part.
        text = text.replace("|", "/").replace(":", ";")
        if text:
            out.append(_short(text))
    return out


def rule_keys(rule: BlockingRule, prepared: Prepared) -> list[str]:
    """The keys one rule makes for one prepared record (possibly none)."""
    choices = [_values(part, prepared) for part in _parts(rule)]
    if not all(choices):
        return []
    keys = []
    for combo in itertools.product(*choices):
        parts = sorted(combo) if rule.unordered else combo
        keys.append(f"{rule.name}:{'|'.join(parts)}")
    return keys


@dataclass(frozen=True, slots=True)
class _Compiled:
    model: MatchModel
    parts: tuple[_Part, ...]  # each distinct part of the model's rules, once
    # (key prefix "name:", whether unordered, the rule's parts as indexes into parts)
    rules: tuple[tuple[str, bool, tuple[int, ...]], ...]


_compiled: dict[int, _Compiled] = {}


def _compile(model: MatchModel) -> _Compiled:
    """The model's rules over its distinct parts (a part such as the date of birth
    serves four worker rules, and is read once per record), cached per model object."""
    found = _compiled.get(id(model))
    if found is not None and found.model is model:
        return found
    parts: list[_Part] = []
    position: dict[str, int] = {}
    rules = []
    for rule in model.blocking:
        indexes = []
        for spec, part in zip(rule.parts, _parts(rule), strict=True):
            if spec not in position:
                position[spec] = len(parts)
                parts.append(part)
            indexes.append(position[spec])
        rules.append((f"{rule.name}:", rule.unordered, tuple(indexes)))
    found = _Compiled(model, tuple(parts), tuple(rules))
    _compiled[id(model)] = found
    return found


def blocking_keys(model: MatchModel, prepared: Prepared) -> list[str]:
    """Every blocking key of a prepared record under `model`: sorted, without duplicates.

    The union of `rule_keys` over the model's rules, each part's values read once.
    """
    compiled = _compile(model)
    values = [_values(part, prepared) for part in compiled.parts]
    keys: set[str] = set()
    for prefix, unordered, indexes in compiled.rules:
        if len(indexes) == 1:
            keys.update([prefix + v for v in values[indexes[0]]])
            continue
        choices = [values[i] for i in indexes]
        if not all(choices):
            continue
        for combo in itertools.product(*choices):
            keys.add(prefix + "|".join(sorted(combo) if unordered else combo))
    return sorted(keys)


def candidate_pairs(
    keys_per_record: Sequence[Iterable[str]], *, max_block_size: int | None = None
) -> np.ndarray:
    """Pairs (i, j), i < j, of records sharing at least one key; shape (n, 2), sorted.

    Keys held by more than `max_block_size` records are skipped (generic
    values), as the hub does. For training and bulk loading.
    """
    blocks: dict[str, list[int]] = {}
    for index, keys in enumerate(keys_per_record):
        for key in keys:
            blocks.setdefault(key, []).append(index)
    n = len(keys_per_record)
    chunks = []
    for members in blocks.values():
        size = len(members)
        if size < 2 or (max_block_size is not None and size > max_block_size):
            continue
        ids = np.asarray(members, dtype=np.int64)
        i, j = np.triu_indices(size, k=1)
        chunks.append(ids[i] * n + ids[j])
    if not chunks:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(chunks))
    pairs = np.stack([codes // n, codes % n], axis=1)
    # A caller may list a key twice for one record; a record is no pair with itself.
    return pairs[pairs[:, 0] != pairs[:, 1]]
