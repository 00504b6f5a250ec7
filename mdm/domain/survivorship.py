"""Which source record's value becomes the golden value, attribute by attribute.

An `EntityPolicy` gives every attribute a chain of rules, tried in order: the
first rule that yields a value wins (`longest` yields nothing when no value is
a string, `system_of_record` nothing when that system has no value, ...). When
no rule of the chain yields, the most recent value wins, so a value some source
record holds is never silently dropped. Attribute groups survive together from
one source record, so their parts never mix sources. A steward's `Overrides`
come on top: a pin wins whatever the rules say, an ignore hides one source
record's value of one attribute.

The result never depends on the order of the contributions: candidates are
put in one total order, most recent first (the source's own update time, else
arrival; then arrival; then record id), and every rule gives a tie to the first
candidate in that order. Empty values (None, blank strings, empty lists and
dicts) never win.

Pure and standard-library only; `survivorship_config` reads a policy from TOML.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SYSTEM_OF_RECORD = "system_of_record"
SOURCE_PRIORITY = "source_priority"
MOST_RECENT = "most_recent"
OLDEST = "oldest"
MOST_FREQUENT = "most_frequent"
LONGEST = "longest"
MOST_COMPLETE = "most_complete"
MAX = "max"
MIN = "min"
TRUST = "trust"
AGGREGATE = "aggregate"
PIN = "pin"
STEWARD = "steward"

# Rules that choose a whole source record; only these can decide a group, because
# the others compare single values (a group's value is the dict of its parts).
RECORD_RULES = frozenset(
    {SYSTEM_OF_RECORD, SOURCE_PRIORITY, MOST_RECENT, OLDEST, MOST_FREQUENT, MOST_COMPLETE, TRUST}
)
RULES = RECORD_RULES | {LONGEST, MAX, MIN, AGGREGATE}
# Today's rule set, and what an entity the configuration leaves out gets.
DEFAULT_RULES = (SYSTEM_OF_RECORD, MOST_RECENT)


@dataclass(frozen=True, slots=True)
class Contribution:
    """One live source record of a golden record, as survivorship sees it."""

    record_id: int
    source: str
    source_id: str
    values: Mapping[str, Any]
    source_updated_at: dt.datetime | None
    received_at: dt.datetime

    @property
    def recency(self) -> tuple[dt.datetime, dt.datetime, int]:
        return (self.source_updated_at or self.received_at, self.received_at, self.record_id)


@dataclass(frozen=True, slots=True)
class Survived:
    """Golden attributes and, per attribute, which source record gave it by which rule."""

    attributes: dict[str, Any]
    provenance: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Pin:
    """A steward's value for one attribute: it wins whatever the rules say."""

    value: Any
    actor: str
    reason: str = ""

    def __post_init__(self) -> None:
        if is_empty(self.value):
            raise ValueError("a pin needs a non-empty value; to hide a source value, ignore it")


@dataclass(frozen=True, slots=True)
class Overrides:
    """Steward decisions survivorship obeys: pins per attribute, and ignored values.

    `ignores` holds (attribute, source, source_id): that source record's value
    of that attribute is never used. Ignoring one attribute of a group takes the
    record out of the whole group, since a group's parts come from one record.
    """

    pins: Mapping[str, Pin] = field(default_factory=dict)
    ignores: frozenset[tuple[str, str, str]] = frozenset()

    def ignored(self, attribute: str, contribution: Contribution) -> bool:
        return (attribute, contribution.source, contribution.source_id) in self.ignores


NO_OVERRIDES = Overrides()


@dataclass(frozen=True, slots=True)
class SourceTrust:
    """How much a source is trusted, in [0, 1], halving every `half_life_days` of age."""

    trust: float
    half_life_days: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.trust <= 1.0:
            raise ValueError(f"trust must be within [0, 1], got {self.trust}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be positive, got {self.half_life_days}")

    def at_age(self, age_days: float) -> float:
        if self.half_life_days is None:
            return self.trust
        return self.trust * math.pow(0.5, max(age_days, 0.0) / self.half_life_days)


@dataclass(frozen=True, slots=True)
class AttributeGroup:
    """Attributes that survive together from one source record; `rules` None = the default."""

    name: str
    attributes: tuple[str, ...]
    rules: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class EntityPolicy:
    """The survivorship rules of one entity type. Validated on construction."""

    entity: str
    system_of_record: str | None = None
    default_rules: tuple[str, ...] = DEFAULT_RULES
    attribute_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: tuple[AttributeGroup, ...] = ()
    source_order: tuple[str, ...] = ()
    trust: Mapping[str, SourceTrust] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"entity {self.entity!r}"
        _check_chain(self.default_rules, f"{where}, default rules")
        if AGGREGATE in self.default_rules:
            raise ValueError(f"{where}: aggregate is for single attributes, not the default")
        for name, rules in self.attribute_rules.items():
            _check_chain(rules, f"{where}, attribute {name!r}")
        if len(set(self.source_order)) != len(self.source_order):
            raise ValueError(f"{where}: the source order names a source twice")
        owner: dict[str, str] = {}
        for group in self.groups:
            self._check_group(group, owner, where)

    def _check_group(self, group: AttributeGroup, owner: dict[str, str], where: str) -> None:
        where = f"{where}, group {group.name!r}"
        if len(group.attributes) < 2:
            raise ValueError(f"{where}: a group needs at least two attributes")
        for name in group.attributes:
            if name in owner:
                other = "itself" if owner[name] == group.name else f"group {owner[name]!r}"
                raise ValueError(f"{where}: {name!r} is also in {other}; groups may not overlap")
            if name in self.attribute_rules:
                raise ValueError(
                    f"{where}: {name!r} also has its own rules; a grouped attribute "
                    "survives by its group's rules"
                )
            owner[name] = group.name
        rules = self.group_rules(group)
        _check_chain(rules, where)
        if not_whole := [r for r in rules if r not in RECORD_RULES]:
            raise ValueError(
                f"{where}: rule {not_whole[0]!r} compares single values and cannot decide "
                f"a group; use {', '.join(sorted(RECORD_RULES))}"
            )

    @property
    def priority(self) -> tuple[str, ...]:
        """The order `source_priority` ranks sources in; unlisted sources come after."""
        head = (self.system_of_record,) if self.system_of_record else ()
        return head + tuple(s for s in self.source_order if s != self.system_of_record)

    def rules_for(self, attribute: str) -> tuple[str, ...]:
        return self.attribute_rules.get(attribute, self.default_rules)

    def group_rules(self, group: AttributeGroup) -> tuple[str, ...]:
        return group.rules if group.rules is not None else self.default_rules


def _check_chain(rules: tuple[str, ...], where: str) -> None:
    if not rules:
        raise ValueError(f"{where}: the rule chain is empty")
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ValueError(
            f"{where}: unknown rule {unknown[0]!r}; known rules: {', '.join(sorted(RULES))}"
        )
    if AGGREGATE in rules and len(rules) > 1:
        raise ValueError(f"{where}: aggregate keeps every value and must be the only rule")


def survive(
    contributions: Iterable[Contribution],
    policy: EntityPolicy | str | None = None,
    overrides: Overrides = NO_OVERRIDES,
    now: dt.datetime | None = None,
    *,
    system_of_record: str | None = None,
) -> Survived:
    """Compute golden attributes and their provenance from the live contributions.

    `now` is when the `trust` rule measures a value's age from; by default the
    newest contribution's time, so the result is a function of the inputs alone.
    Passing a system of record's name (or None) instead of a policy is the
    original rule set: the system of record first, then the most recent.
    """
    if not isinstance(policy, EntityPolicy):
        if policy is not None and system_of_record is not None:
            raise TypeError("give the system of record once")
        policy = _legacy_policy(policy if policy is not None else system_of_record)
    elif system_of_record is not None:
        raise TypeError("system_of_record comes from the policy")
    records = sorted(contributions, key=_order, reverse=True)
    anchor = now if now is not None else max((_when(c) for c in records), default=None)
    ctx = _Context(policy, {s: i for i, s in enumerate(policy.priority)}, anchor)
    attributes: dict[str, Any] = {}
    provenance: dict[str, dict[str, Any]] = {}
    grouped: set[str] = set()
    for group in policy.groups:
        grouped.update(group.attributes)
        _survive_group(group, records, ctx, overrides, attributes, provenance)
    names = {n for c in records for n, v in c.values.items() if not is_empty(v)} - grouped
    for name in names:
        candidates = [
            _Candidate(c, c.values[name])
            for c in records
            if not is_empty(c.values.get(name)) and not overrides.ignored(name, c)
        ]
        if not candidates:
            continue
        rules = policy.rules_for(name)
        if rules == (AGGREGATE,):
            attributes[name], provenance[name] = _aggregate(candidates)
        else:
            winner, rule = _decide(candidates, rules, ctx)
            attributes[name] = winner.value
            provenance[name] = _provenance(winner.contribution, rule)
    for name, pin in overrides.pins.items():
        attributes[name] = pin.value
        provenance[name] = {
            "source": STEWARD,
            "source_id": pin.actor,
            "rule": PIN,
            "actor": pin.actor,
        }
    return Survived(dict(sorted(attributes.items())), dict(sorted(provenance.items())))


@functools.lru_cache(maxsize=16)
def _legacy_policy(system_of_record: str | None) -> EntityPolicy:
    return EntityPolicy("", system_of_record=system_of_record)


@dataclass(frozen=True, slots=True)
class _Candidate:
    contribution: Contribution
    value: Any


@dataclass(frozen=True, slots=True)
class _Context:
    policy: EntityPolicy
    rank: dict[str, int]
    anchor: dt.datetime | None

    def age_days(self, contribution: Contribution) -> float:
        if self.anchor is None:
            return 0.0
        return (self.anchor - _when(contribution)).total_seconds() / 86400


def _survive_group(
    group: AttributeGroup,
    records: list[Contribution],
    ctx: _Context,
    overrides: Overrides,
    attributes: dict[str, Any],
    provenance: dict[str, dict[str, Any]],
) -> None:
    candidates = []
    for c in records:
        if any(overrides.ignored(name, c) for name in group.attributes):
            continue
        parts = {n: c.values[n] for n in group.attributes if not is_empty(c.values.get(n))}
        if parts:
            candidates.append(_Candidate(c, parts))
    if not candidates:
        return
    winner, rule = _decide(candidates, ctx.policy.group_rules(group), ctx)
    for name, value in winner.value.items():
        attributes[name] = value
        provenance[name] = _provenance(winner.contribution, rule)


def _decide(
    candidates: list[_Candidate], rules: tuple[str, ...], ctx: _Context
) -> tuple[_Candidate, str]:
    for rule in rules:
        winner = _PICK[rule](candidates, ctx)
        if winner is not None:
            return winner, rule
    return candidates[0], MOST_RECENT


def _provenance(contribution: Contribution, rule: str) -> dict[str, Any]:
    return {"source": contribution.source, "source_id": contribution.source_id, "rule": rule}


def _aggregate(candidates: list[_Candidate]) -> tuple[list[Any], dict[str, Any]]:
    """Every distinct value, most recent first; a list value counts item by item."""
    seen: set[Any] = set()
    values: list[Any] = []
    for candidate in candidates:
        items = candidate.value if isinstance(candidate.value, list) else [candidate.value]
        for item in items:
            key = _key(item)
            if not is_empty(item) and key not in seen:
                seen.add(key)
                values.append(item)
    provenance = _provenance(candidates[0].contribution, AGGREGATE)
    provenance["sources"] = [[x.contribution.source, x.contribution.source_id] for x in candidates]
    return values, provenance


# -- the rules: candidates come most recent first, and max/min keep the first of equals --

_Pick = Callable[[Sequence[_Candidate], _Context], _Candidate | None]


def _system_of_record(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    sor = ctx.policy.system_of_record
    return next((x for x in candidates if x.contribution.source == sor), None)


def _source_priority(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    unlisted = len(ctx.rank)
    return min(candidates, key=lambda x: ctx.rank.get(x.contribution.source, unlisted))


def _most_recent(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    return candidates[0]


def _oldest(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    return min(candidates, key=lambda x: _when(x.contribution))


def _most_frequent(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    counts = Counter(_key(x.value) for x in candidates)
    return max(candidates, key=lambda x: counts[_key(x.value)])


def _longest(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    strings = [x for x in candidates if isinstance(x.value, str)]
    return max(strings, key=lambda x: len(x.value.strip()), default=None)


def _most_complete(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    filled = [x for x in candidates if isinstance(x.value, Mapping | list)]
    return max(filled, key=lambda x: _filled(x.value), default=None)


def _max(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    comparable = _comparable(candidates)
    return max(comparable, key=lambda p: p[0])[1] if comparable else None


def _min(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    comparable = _comparable(candidates)
    return min(comparable, key=lambda p: p[0])[1] if comparable else None


def _trust(candidates: Sequence[_Candidate], ctx: _Context) -> _Candidate | None:
    trust = ctx.policy.trust
    trusted = [x for x in candidates if x.contribution.source in trust]
    return max(
        trusted,
        key=lambda x: trust[x.contribution.source].at_age(ctx.age_days(x.contribution)),
        default=None,
    )


_PICK: dict[str, _Pick] = {
    SYSTEM_OF_RECORD: _system_of_record,
    SOURCE_PRIORITY: _source_priority,
    MOST_RECENT: _most_recent,
    OLDEST: _oldest,
    MOST_FREQUENT: _most_frequent,
    LONGEST: _longest,
    MOST_COMPLETE: _most_complete,
    MAX: _max,
    MIN: _min,
    TRUST: _trust,
}


# -- values --------------------------------------------------------------------------


def is_empty(value: Any) -> bool:
    """None, a blank string, or a list or dict holding only empty values."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping):
        return all(is_empty(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_empty(v) for v in value)
    return False


def _when(contribution: Contribution) -> dt.datetime:
    return contribution.source_updated_at or contribution.received_at


def _order(contribution: Contribution) -> tuple[Any, ...]:
    # record_id settles every real tie; source and source_id make the order total anyway.
    return (*contribution.recency, contribution.source, contribution.source_id)


def _key(value: Any) -> Any:
    """A hashable stand-in for a value; equal values (of the same type) get equal keys."""
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), _key(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(_key(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return (type(value).__name__, value)


def _filled(value: Mapping[str, Any] | list[Any]) -> int:
    items = value.values() if isinstance(value, Mapping) else value
    return sum(not is_empty(v) for v in items)


def _comparable(candidates: Sequence[_Candidate]) -> list[tuple[Any, _Candidate]]:
    """Numbers if there are any, else strings (dates as ISO strings); the rest never compare."""
    numbers = [
        (x.value, x)
        for x in candidates
        if isinstance(x.value, int | float | Decimal)
        and not isinstance(x.value, bool)
        and x.value == x.value  # NaN has no place in an order
    ]
    if numbers:
        return numbers
    return [
        (x.value.isoformat() if isinstance(x.value, dt.date) else x.value, x)
        for x in candidates
        if isinstance(x.value, str | dt.date)
    ]
