"""Fellegi-Sunter scoring of prepared records, pairwise and against a whole golden record.

Each field contributes the weight of the level its comparator picked,
log2(m/u); a field missing on either side contributes 0. Levels flagged
`tf_adjust` add log2(u_exact / f), where u_exact is the u of the field's first
(exact) level and f the relative frequency of the agreed value, as Splink
does: agreeing on a rare surname counts more than on "Smith". The total match
weight is log2(prior / (1 - prior)) plus the fields' weights, and the match
probability is 2^w / (1 + 2^w).

Every score carries its explanation (the "waterfall"): per field the level,
the two values compared, the weight and the TF adjustment; JSON builtins via
`to_dict()` or `msgspec.json.encode`.

Entity-centric scoring (`score_cluster`) compares an incoming record with
all source records of one golden record; `decide` turns the scores of the
candidate golden records into link / review / new; `score_clusters` scores
two golden records against each other. `pair_weight` is the fast path
without an explanation.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec
from rapidfuzz.distance import JaroWinkler

from matching.comparators import (
    APART_LEVELS,
    NULL,
    SHARED_LEVELS,
    SWAP_SIMILARITY,
    comparable_check,
    compile_levels,
    level_of,
)
from matching.model import MatchModel
from matching.prepare import Prepared

# Relative frequencies below this are read as this (one value in ten million).
MIN_FREQUENCY = 1e-7

NULL_LABEL = "null"

ClusterRule = Literal["field_best", "pairwise_best"]


class TermFrequencies(Protocol):
    """Relative frequency of a value of a field among the records the hub holds.

    Counting golden records rather than source records is closer to what TF
    adjustment needs (how likely another entity shares the value): three
    sources spelling one company "Acme" do not make "acme" a common name.
    """

    def frequency(self, field: str, value: str) -> float | None:
        """The share of `field`'s non-empty values equal to `value`; None if unknown."""
        ...


class CountedFrequencies:
    """TermFrequencies from counts: {field: {value: count}} (a value's "v" feature)."""

    def __init__(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        self._counts = counts
        self._totals = {name: sum(c.values()) for name, c in counts.items()}

    @classmethod
    def from_records(cls, model: MatchModel, records: Iterable[Prepared]) -> CountedFrequencies:
        counts: dict[str, dict[str, int]] = {}
        for record in records:
            for name, value in term_values(model, record).items():
                field_counts = counts.setdefault(name, {})
                field_counts[value] = field_counts.get(value, 0) + 1
        return cls(counts)

    def frequency(self, field: str, value: str) -> float | None:
        count = self._counts.get(field, {}).get(value)
        if not count:
            return None
        return count / self._totals[field]


def term_values(model: MatchModel, prepared: Prepared) -> dict[str, str]:
    """The values whose frequencies TF adjustment reads: {field: value} for the hub to count."""
    out = {}
    for f in model.fields:
        if any(level.tf_adjust for level in f.levels) and (features := prepared.get(f.name)):
            value = features.get("v")
            if isinstance(value, str):
                out[f.name] = value
    return out


# --- results ---------------------------------------------------------------------


class FieldScore(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the waterfall: a field's level, the values compared and its weight."""

    field: str
    level: str
    level_index: int
    left: Any = None
    right: Any = None
    weight: float = 0.0
    tf_adjustment: float = 0.0
    # In a cluster score: the index of the member whose value gave this level.
    member: int | None = None


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """A pairwise score: match weight, probability and the waterfall."""

    weight: float
    probability: float
    prior_weight: float
    fields: tuple[FieldScore, ...]
    model_version: int

    def to_dict(self) -> dict[str, Any]:
        return msgspec.json.decode(msgspec.json.encode(self))


class ClusterScore(msgspec.Struct, frozen=True, kw_only=True):
    """An incoming record scored against all source records of one golden record."""

    weight: float
    probability: float
    prior_weight: float
    fields: tuple[FieldScore, ...]
    model_version: int
    rule: str
    # The member with the highest pairwise weight (the closest source record).
    best_member: int | None
    # Why this golden record cannot be linked to (`conflict`), or None.
    conflict: str | None = None

    def links(self, model: MatchModel) -> bool:
        """At or above `auto_link`, and not another entity (`conflict`)."""
        return self.probability >= model.thresholds.auto_link and self.conflict is None

    def to_dict(self) -> dict[str, Any]:
        return msgspec.json.decode(msgspec.json.encode(self))


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    golden_id: Any
    probability: float
    weight: float
    # Why it cannot be linked to whatever its probability (ClusterScore.conflict).
    conflict: str | None = None

    def links(self, model: MatchModel) -> bool:
        """At or above `auto_link`, and not another entity."""
        return self.probability >= model.thresholds.auto_link and self.conflict is None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """link: join `golden_id`; review: a steward decides among `candidates`; new."""

    outcome: Literal["link", "review", "new"]
    golden_id: Any
    candidates: tuple[Candidate, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return msgspec.json.decode(msgspec.json.encode(self))


# --- the compiled model (predicates and weights computed once per model object) ------


@dataclass(frozen=True, slots=True)
class CompiledField:
    name: str
    predicates: tuple[Any, ...]
    labels: tuple[str, ...]
    weights: tuple[float, ...]
    tf: tuple[bool, ...]
    u_exact: float
    else_index: int
    comparable: Any

    def level(self, a: Prepared, b: Prepared) -> int:
        return level_of(self.predicates, a.get(self.name), b.get(self.name), self.comparable)


@dataclass(frozen=True, slots=True)
class CompiledModel:
    model: MatchModel
    fields: tuple[CompiledField, ...]
    prior_weight: float
    # The model's identity fields (matching.model.Identity) as column indices.
    names: tuple[int, ...] = ()
    distinguishing: tuple[int, ...] = ()
    identifiers: tuple[int, ...] = ()
    corroborating: tuple[int, ...] = ()
    decisive: tuple[int, ...] = ()
    exclusive: tuple[int, ...] = ()
    confirming: tuple[int, ...] = ()
    # The conflicts any member of a golden record holds its score with (`_held_by_any`),
    # each with the column of its field.
    held_by_any: Mapping[str, int] = field(default_factory=dict)


_compiled: dict[int, CompiledModel] = {}


def compile_model(model: MatchModel) -> CompiledModel:
    """The model's predicates and weights, built once per model object and cached."""
    found = _compiled.get(id(model))
    if found is not None and found.model is model:
        return found
    fields = []
    for f in model.fields:
        fields.append(
            CompiledField(
                name=f.name,
                predicates=compile_levels(f.comparator, [level.label for level in f.levels]),
                labels=tuple(level.label for level in f.levels),
                weights=tuple(math.log2(level.m / level.u) for level in f.levels),
                tf=tuple(level.tf_adjust for level in f.levels),
                u_exact=f.levels[0].u,
                else_index=len(f.levels) - 1,
                comparable=comparable_check(f.comparator),
            )
        )
    identity = model.identity_rules()
    column = {f.name: i for i, f in enumerate(model.fields)}
    compiled = CompiledModel(
        model,
        tuple(fields),
        math.log2(model.prior / (1 - model.prior)),
        names=tuple(column[n] for n in identity.names),
        distinguishing=tuple(column[n] for n in identity.distinguishing),
        identifiers=tuple(column[n] for n in identity.identifiers),
        corroborating=tuple(column[n] for n in identity.corroborating),
        decisive=tuple(column[n] for n in identity.decisive),
        exclusive=tuple(column[n] for n in identity.exclusive),
        confirming=tuple(column[n] for n in identity.confirming),
        held_by_any={
            f"{name} disagrees": column[name]
            for name in (
                *identity.decisive,
                *(n for n in identity.distinguishing if n not in identity.names),
                *(n for n in identity.identifiers if _names_holders(model, n)),
            )
        },
    )
    _compiled[id(model)] = compiled
    weakref.finalize(model, _compiled.pop, id(model), None)
    return compiled


def _names_holders(model: MatchModel, name: str) -> bool:
    """Field `name` has a level at which it names two holders (APART_LEVELS)."""
    field_ = next(f for f in model.fields if f.name == name)
    return any(level.label in APART_LEVELS for level in field_.levels)


def probability(weight: float) -> float:
    """2^w / (1 + 2^w), without overflow."""
    if weight >= 0:
        return 1.0 / (1.0 + 2.0**-weight)
    t = 2.0**weight
    return t / (1.0 + t)


def _tf_adjustment(
    f: CompiledField, level: int, a: Mapping[str, Any], b: Mapping[str, Any], tf: Any
) -> float:
    if tf is None or not f.tf[level]:
        return 0.0
    # Exact agreement: one value. A fuzzy level: the more frequent of the two, as
    # Splink does, so that a near-miss on "Smith" never counts as a rare name.
    found = [x for x in (tf.frequency(f.name, a["v"]), tf.frequency(f.name, b["v"])) if x]
    if not found:
        return 0.0
    freq = min(1.0, max(MIN_FREQUENCY, max(found)))
    return math.log2(f.u_exact / freq)


def _field_score(
    f: CompiledField, level: int, a: Any, b: Any, tf: Any, member: int | None = None
) -> FieldScore:
    if level == NULL:
        return FieldScore(
            field=f.name,
            level=NULL_LABEL,
            level_index=NULL,
            left=a.get("v") if a else None,
            right=b.get("v") if b else None,
            member=member,
        )
    adjust = _tf_adjustment(f, level, a, b, tf)
    return FieldScore(
        field=f.name,
        level=f.labels[level],
        level_index=level,
        left=a["v"],
        right=b["v"],
        weight=f.weights[level] + adjust,
        tf_adjustment=adjust,
        member=member,
    )


def comparison_levels(model: MatchModel, a: Prepared, b: Prepared) -> list[int]:
    """The level index of every field (NULL = -1 where a side has no value)."""
    return [f.level(a, b) for f in compile_model(model).fields]


def conflict(
    compiled: CompiledModel, levels: Sequence[int], a: Prepared, b: Prepared
) -> str | None:
    """Why `a`, compared with `b` at `levels` (one per field, NULL where missing), is
    another entity whatever its weight, or None (the model's `identity`):

    - a decisive field disagrees outright: "<field> disagrees" (a junior and a
      senior: their generational suffixes), whatever else agrees;
    - every name compared disagrees outright, crossed too (a given name against
      the other's family name, for swapped names with a typo): "no name agrees"
      (an identifier agreeing with it is a relative's or a housemate's number),
      unless an identifier and a corroborating field (the birth date; for a
      company its address) agree with it: the names were replaced. The
      corroborating field agrees outright (its first level), and so does the
      identifier, or else (one typo away) a confirming field (the home address)
      agrees outright too;
    - an exclusive identifier (the national id) disagrees outright: "<field>
      disagrees", unless a confirming field (the home address) agrees outright
      (one person with an old and a new number), or the confirming field agrees
      at a lower level (a typo, a missing house number) while the given name and
      the birth date agree outright and the family name agrees, or the names are
      swapped and the birth date agrees outright: the same full name, birth date
      and address, one number replaced or mistyped beyond a typo. The weights
      then decide: the other number's weight holds such a pair at review in a
      large store;
    - else a distinguishing field disagreeing outright: "<field> disagrees"
      (siblings and twins differ on the given name, a junior and a senior on the
      birth date), unless an identifier and every other distinguishing field
      agree: a replaced given name with the same birth date, a mistyped birth
      date with the same given name. An identifier alone excuses nothing: a form
      filled in with a relative's number carries the relative's family name and
      address too; nor does one that another identifier contradicts (a level of
      negative weight: another employee number, another mailbox at the same
      firm), as a mother's and a daughter's forms of one name and address do
      when one carries the other's national id;
    - else an identifier naming another holder (another mailbox at one firm's
      domain, matching.comparators.APART_LEVELS): "<field> disagrees", unless
      another identifier agrees outright and none speaks against it. Namesakes at
      one firm, whose mailboxes the firm numbers; one person's alias comes with
      the same national id, and a junior's form carrying his father's national id
      comes with his own employee number.
    """
    return next(_conflicts(compiled, levels, a, b), None)


def _conflicts(
    compiled: CompiledModel, levels: Sequence[int], a: Prepared, b: Prepared
) -> Iterator[str]:
    """Every reason of `conflict`, in its order (the first is the one it gives)."""
    fields = compiled.fields
    if (decided := _decisive_disagreement(compiled, levels)) is not None:
        yield decided
    # An identifier vouches only when no other one speaks against the match (a level of
    # negative weight: another employee number, another mailbox at the same firm).
    identified = any(_identifies(compiled, levels, i) for i in compiled.identifiers) and not any(
        levels[i] != NULL and fields[i].weights[levels[i]] < 0 for i in compiled.identifiers
    )
    if _no_name_agrees(compiled, levels, a, b) and not _names_replaced(compiled, levels):
        yield "no name agrees"
    for i in compiled.exclusive:
        if (
            levels[i] == fields[i].else_index
            and not any(levels[j] == 0 for j in compiled.confirming)
            and not (
                any(_agrees(compiled, levels, j) for j in compiled.confirming)
                and _named_outright(compiled, levels, a, b)
            )
        ):
            yield f"{fields[i].name} disagrees"
    for i in compiled.distinguishing:
        if levels[i] != fields[i].else_index:
            continue
        if i in compiled.names and _names_crossed(compiled, a, b):
            continue  # the names swapped, one of them mistyped
        others = [j for j in compiled.distinguishing if j != i]
        if identified and others and all(_agrees(compiled, levels, j) for j in others):
            continue  # one of them replaced or mistyped: the identifier and the rest agree
        yield f"{fields[i].name} disagrees"
    for i in compiled.identifiers:
        others = [j for j in compiled.identifiers if j != i and levels[j] != NULL]
        if _apart(compiled, levels, i) and not (
            any(levels[j] == 0 for j in others)
            and not any(fields[j].weights[levels[j]] < 0 for j in others)
        ):
            yield f"{fields[i].name} disagrees"


def _named_outright(
    compiled: CompiledModel, levels: Sequence[int], a: Prepared, b: Prepared
) -> bool:
    """Every distinguishing field (the given name, the birth date) is compared and agrees
    outright, and every other name (the family name) agrees, a typo allowed; or the names
    are swapped and the other distinguishing fields agree outright. Twins differ on their
    given names, and share their family name as written."""
    if not compiled.distinguishing:
        return False
    if _names_crossed(compiled, a, b):
        return all(levels[i] == 0 for i in compiled.distinguishing if i not in compiled.names)
    return all(levels[i] == 0 for i in compiled.distinguishing) and all(
        _agrees(compiled, levels, i) for i in compiled.names
    )


def _names_replaced(compiled: CompiledModel, levels: Sequence[int]) -> bool:
    """An identifier and a corroborating field vouch for a record whose names all differ."""
    if not any(levels[i] == 0 for i in compiled.corroborating):
        return False
    agreeing = [i for i in compiled.identifiers if _identifies(compiled, levels, i)]
    return any(levels[i] == 0 for i in agreeing) or (
        bool(agreeing) and any(levels[j] == 0 for j in compiled.confirming)
    )


def _decisive_disagreement(compiled: CompiledModel, levels: Sequence[int]) -> str | None:
    for i in compiled.decisive:
        if levels[i] == compiled.fields[i].else_index:
            return f"{compiled.fields[i].name} disagrees"
    return None


def _no_name_agrees(
    compiled: CompiledModel, levels: Sequence[int], a: Prepared, b: Prepared
) -> bool:
    """Names are compared, and every one disagrees outright, crossed too."""
    names = [i for i in compiled.names if levels[i] != NULL]
    return (
        bool(names)
        and all(levels[i] == compiled.fields[i].else_index for i in names)
        and not _names_crossed(compiled, a, b)
    )


def vouches(model: MatchModel, a: Prepared, b: Prepared) -> bool:
    """Whether an identifier of `a` and `b` agrees and so does one of their names (given or
    family name at any level but "else": fuzzy, nickname, phonetic, swapped, or one
    name against the other's other name), and they are not another entity (`conflict`:
    a junior and a senior, a housemate's number on a form of another given name): the
    strong identifiers may then link them without the model (mdm.services.ingest.plan)."""
    compiled = compile_model(model)
    levels = [f.level(a, b) for f in compiled.fields]
    if conflict(compiled, levels, a, b) is not None:
        return False
    if not any(_identifies(compiled, levels, i) for i in compiled.identifiers):
        return False
    return any(_agrees(compiled, levels, i) for i in compiled.names) or _names_crossed(
        compiled, a, b
    )


def _names_crossed(compiled: CompiledModel, a: Prepared, b: Prepared) -> bool:
    """One name of `a` is the other name ("alt": the family name of a given name) of `b`."""
    for i in compiled.names:
        x, y = a.get(compiled.fields[i].name), b.get(compiled.fields[i].name)
        if not x or not y:
            continue
        for left, right in ((x["v"], y.get("alt")), (x.get("alt"), y["v"])):
            if left and right and JaroWinkler.similarity(left, right) >= SWAP_SIMILARITY:
                return True
    return False


def _identifies(compiled: CompiledModel, levels: Sequence[int], i: int) -> bool:
    """Identifier `i` agrees at a level that is one holder's (not a shared domain)."""
    return (
        _agrees(compiled, levels, i)
        and compiled.model.fields[i].levels[levels[i]].label not in SHARED_LEVELS
    )


def _apart(compiled: CompiledModel, levels: Sequence[int], i: int) -> bool:
    """Identifier `i` says the two are two holders (another mailbox at one firm)."""
    return levels[i] != NULL and compiled.model.fields[i].levels[levels[i]].label in APART_LEVELS


def _agrees(compiled: CompiledModel, levels: Sequence[int], i: int) -> bool:
    return levels[i] != NULL and levels[i] != compiled.fields[i].else_index


def pair_weight(
    compiled: CompiledModel, a: Prepared, b: Prepared, tf: TermFrequencies | None = None
) -> float:
    """The match weight of a pair, without building an explanation (the fast path)."""
    total = compiled.prior_weight
    for f in compiled.fields:
        fa, fb = a.get(f.name), b.get(f.name)
        if fa is None or fb is None:
            continue
        level = level_of(f.predicates, fa, fb, f.comparable)
        if level == NULL:
            continue
        total += f.weights[level]
        if tf is not None and f.tf[level]:
            total += _tf_adjustment(f, level, fa, fb, tf)
    return total


def compare(
    model: MatchModel, a: Prepared, b: Prepared, tf: TermFrequencies | None = None
) -> Comparison:
    """Score one pair of prepared records, with its waterfall."""
    compiled = compile_model(model)
    fields = tuple(
        _field_score(f, f.level(a, b), a.get(f.name), b.get(f.name), tf) for f in compiled.fields
    )
    weight = compiled.prior_weight + sum(s.weight for s in fields)
    return Comparison(
        weight=weight,
        probability=probability(weight),
        prior_weight=compiled.prior_weight,
        fields=fields,
        model_version=model.version,
    )


def score_cluster(
    model: MatchModel,
    incoming: Prepared,
    members: Sequence[Prepared],
    tf: TermFrequencies | None = None,
    *,
    rule: ClusterRule = "field_best",
) -> ClusterScore:
    """Score `incoming` against the source records (`members`) of one golden record.

    "field_best" (the default): per field, the best level the incoming
    record reaches with any member that has the field, since every member
    is a noisy observation of the same entity: a typo in one source's
    family name must not hide the agreement with another's, and one member
    may hold the e-mail while another holds the date of birth. A field's
    value disagrees only when it disagrees with every member holding it, so
    an identifier that matches no member remains strong counter-evidence.
    Agreement with one of k distinct values of the cluster is k times as
    likely by chance, so a level above "else" loses log2(k).

    Why not keep a disagreement with ANY member as counter-evidence: members
    of one golden record legitimately differ on per-system values (employee
    numbers, e-mail addresses, phones), and a golden record already holding
    two national ids is in conflict itself; one wrong member would then veto
    every later link to its golden record.

    "pairwise_best": the best single pairwise comparison with a member. It
    cannot add up evidence that the members hold between them, so partial
    records (a PSA resource with name and e-mail, an HCM person with birth
    date and national id) link less often.
    """
    compiled = compile_model(model)
    if not members:
        raise ValueError("a golden record to score against has at least one member")
    if rule not in ("field_best", "pairwise_best"):
        raise ValueError(f"unknown cluster rule {rule!r}")
    # One pass: every member's level and weight on every field.
    grid = [_member_row(compiled, incoming, member, tf) for member in members]
    # Evidence comes only from members that are not another entity than the
    # incoming record (`conflict`); when every member is, from all of them, and
    # the score says why it cannot link. A member that is another entity on a field
    # one entity has one value of (`_held_by_any`) holds the score too. Members that
    # agree on no name (their identifier and birth date do) are never added up with
    # members that agree on a name: each group is scored on its own, and the better
    # one counts.
    levels = [[level for level, _ in row] for row in grid]
    conflicts = [
        conflict(compiled, row, incoming, member)
        for row, member in zip(levels, members, strict=True)
    ]
    eligible = [i for i, c in enumerate(conflicts) if c is None] or list(range(len(members)))
    renamed = [i for i in eligible if _no_name_agrees(compiled, levels[i], incoming, members[i])]
    named = [i for i in eligible if i not in renamed]
    weight, fields, best_member = max(
        (
            _score_rows(compiled, incoming, members, grid, rows, rule, tf)
            for rows in (named, renamed)
            if rows
        ),
        key=lambda scored: scored[0],
    )
    return ClusterScore(
        weight=weight,
        probability=probability(weight),
        prior_weight=compiled.prior_weight,
        fields=tuple(fields),
        model_version=model.version,
        rule=rule,
        best_member=best_member,
        # The golden record holds another entity than the incoming record (a junior's
        # golden record, one of whose members has no birth date and no suffix): it is
        # not this record's, however well that member agrees.
        conflict=conflicts[best_member]
        or _held_by_any(compiled, incoming, conflicts, levels, members),
    )


def _held_by_any(
    compiled: CompiledModel,
    incoming: Prepared,
    conflicts: Sequence[str | None],
    levels: Sequence[Sequence[int]],
    members: Sequence[Prepared],
) -> str | None:
    """A conflict with any member on a field one entity has one value of: a decisive one
    (a senior's record against a golden record holding his son's), a distinguishing one
    that is no name (a birth date), or an identifier naming another holder (a namesake's
    mailbox at one firm). The best member may have no such value; the golden record
    still holds another person. Names (nicknames, typos, a married name) and other
    identifiers (typos, a second number) vary among one person's records: a conflict
    on them holds only with the member the score comes from.

    Unless another member agrees with the incoming record on that field outright (the
    golden record holds the incoming record's value already, and the member that
    disagrees is one whose typo it accepted: a mistyped birth date that came with the
    same given name and national id), or a member that is no other entity holds the
    same value as the one that disagrees (one person's mailbox, which an alias came
    with that person's national id)."""
    for k, first in enumerate(conflicts):
        if first is None:
            continue
        # Any reason of the member's, not only the first it gives (a namesake's form
        # with another national id holds another birth date too).
        for c in _conflicts(compiled, levels[k], incoming, members[k]):
            column = compiled.held_by_any.get(c)
            if column is None:
                continue
            name = compiled.fields[column].name
            value = members[k][name]["v"]
            if not any(row[column] == 0 for row in levels) and not any(
                conflicts[j] is None and name in members[j] and members[j][name]["v"] == value
                for j in range(len(members))
            ):
                return c
    return None


def _score_rows(
    compiled: CompiledModel,
    incoming: Prepared,
    members: Sequence[Prepared],
    grid: list[list[tuple[int, float]]],
    rows: Sequence[int],
    rule: str,
    tf: TermFrequencies | None,
) -> tuple[float, list[FieldScore], int]:
    """The weight and field scores of `incoming` against the members `rows` (of
    `grid`, one row per member), and the member with the highest pairwise weight."""
    totals = {i: sum(w for _, w in grid[i]) for i in rows}
    best_member = max(rows, key=totals.__getitem__)
    fields = []
    for column, f in enumerate(compiled.fields):
        a = incoming.get(f.name)
        index: int | None
        if rule == "pairwise_best":
            index = best_member
        else:
            index = _best_in_column(grid, column, rows)
        if index is None or grid[index][column][0] == NULL:
            b = members[index].get(f.name) if index is not None else None
            fields.append(_field_score(f, NULL, a, b, tf, index))
            continue
        level = grid[index][column][0]
        b = members[index][f.name]
        score = _field_score(f, level, a, b, tf, index)
        if rule == "field_best" and level != f.else_index:
            distinct = {members[i][f.name]["v"] for i in rows if f.name in members[i]}
            if len(distinct) > 1:
                score = msgspec.structs.replace(
                    score, weight=score.weight - math.log2(len(distinct))
                )
        fields.append(score)
    return compiled.prior_weight + sum(s.weight for s in fields), fields, best_member


def strangers(model: MatchModel, left: Sequence[Prepared], right: Sequence[Prepared]) -> bool:
    """Whether a source record of one golden record is another entity (`conflict`) than a
    source record of the other. Merged, the two would hold two people (or companies),
    however well their best members agree: a father's golden record and his son's, one
    of which holds a record with no birth date, agree through that record alone."""
    compiled = compile_model(model)
    return any(
        conflict(compiled, [f.level(a, b) for f in compiled.fields], a, b) is not None
        for a in left
        for b in right
    )


def score_clusters(
    model: MatchModel,
    left: Sequence[Prepared],
    right: Sequence[Prepared],
    tf: TermFrequencies | None = None,
) -> ClusterScore:
    """Score two golden records against each other: each member of `left` against all of
    `right` (`score_cluster`), the best of them.

    For the case `decide` sends to review because a record reached two golden
    records: once it has joined one, this tells whether the two golden records
    match on their own evidence (then merging them is no chain merge) or are
    only bridged by the new record. `best_member` indexes `right`.
    """
    if not left:
        raise ValueError("a golden record to score has at least one member")
    scores = [score_cluster(model, record, right, tf) for record in left]
    return max(scores, key=lambda s: (s.conflict is None, s.weight))


@dataclass(frozen=True, slots=True)
class Ceiling:
    """For one incoming record: the highest weight each field could give it against
    anyone, and the order in which `below` compares fields (see there)."""

    weights: tuple[float, ...]
    order: tuple[int, ...]
    total: float  # prior + every field's ceiling


def ceiling(compiled: CompiledModel, incoming: Prepared, tf: Any) -> Ceiling:
    """Per field: the best level's weight, plus the largest term-frequency adjustment
    the incoming value can get (it gets the adjustment of the more frequent of the
    two values, so never more than its own value's; a value the counts don't know
    may meet any), or 0 for a missing value (no evidence either way)."""
    weights = []
    for f in compiled.fields:
        a = incoming.get(f.name)
        if a is None:
            weights.append(0.0)
            continue
        adjust = 0.0
        if tf is not None and any(f.tf):
            known = tf.frequency(f.name, a["v"])
            freq = min(1.0, max(MIN_FREQUENCY, known)) if known else MIN_FREQUENCY
            adjust = max(0.0, math.log2(f.u_exact / freq)) if f.u_exact > 0 else 0.0
        best = max(w + (adjust if f.tf[level] else 0.0) for level, w in enumerate(f.weights))
        weights.append(max(0.0, best))
    # Fields without term frequencies first (cheap comparisons, strong identifiers),
    # the highest ceilings first: their disagreement lowers the bound most.
    order = sorted(
        (i for i, f in enumerate(compiled.fields) if incoming.get(f.name) is not None),
        key=lambda i: (any(compiled.fields[i].tf), -weights[i], i),
    )
    return Ceiling(tuple(weights), tuple(order), compiled.prior_weight + sum(weights))


def below(
    compiled: CompiledModel,
    incoming: Prepared,
    members: Sequence[Prepared],
    tf: Any,
    top: Ceiling,
    floor: float,
) -> bool:
    """True only if `score_cluster(...)`'s weight (rule field_best) is certainly below
    `floor`: fields are compared one at a time, each replacing its ceiling by the best
    weight any member reaches on it (the cluster score takes that member's weight, or
    less after the several-values penalty; 0 where no member has the field, and at
    most 0 where one of several members lacks it: the members holding it may be
    left out as conflicts), and the answer comes as soon as the bound drops below the
    floor. False says nothing.
    """
    bound = top.total
    several = len(members) > 1
    margin = 1e-9 * (1.0 + abs(floor))  # the sums run in another order than the score's
    if bound < floor - margin:
        return True
    for i in top.order:
        f = compiled.fields[i]
        name, predicates, comparable = f.name, f.predicates, f.comparable
        a = incoming[name]
        best = None
        for member in members:
            # level_of, inlined (this loop is most of a bulk load's matching)
            b = member.get(name)
            if b is None or (comparable is not None and not comparable(a, b)):
                if several:  # the members with the field may all be left out as conflicts
                    best = 0.0 if best is None else max(best, 0.0)
                continue
            level = len(predicates)
            for index, holds in enumerate(predicates):
                if holds(a, b):
                    level = index
                    break
            weight = f.weights[level]
            if tf is not None and f.tf[level]:
                weight += _tf_adjustment(f, level, a, b, tf)
            if best is None or weight > best:
                best = weight
        bound += (0.0 if best is None else best) - top.weights[i]
        if bound < floor - margin:
            return True
    return False


def weight_of(probability_: float) -> float:
    """The weight whose probability is `probability_` (the inverse of `probability`)."""
    return math.log2(probability_ / (1.0 - probability_))


def _member_row(
    compiled: CompiledModel, incoming: Prepared, member: Prepared, tf: Any
) -> list[tuple[int, float]]:
    row = []
    for f in compiled.fields:
        a, b = incoming.get(f.name), member.get(f.name)
        level = level_of(f.predicates, a, b, f.comparable)
        if level == NULL:  # (always so when a or b is missing)
            row.append((NULL, 0.0))
            continue
        weight = f.weights[level]
        if tf is not None and f.tf[level]:
            assert a is not None and b is not None  # for the type checker: level is not NULL
            weight += _tf_adjustment(f, level, a, b, tf)
        row.append((level, weight))
    return row


def _best_in_column(
    grid: list[list[tuple[int, float]]], column: int, rows: Sequence[int]
) -> int | None:
    """The member (of `rows`) with the highest weight on one field, among those with a value."""
    best = None
    best_weight = -math.inf
    for index in rows:
        level, weight = grid[index][column]
        if level != NULL and weight > best_weight:
            best, best_weight = index, weight
    return best


def _compared(score: ClusterScore) -> str:
    """The candidate's side of the waterfall as text: what it was compared on."""
    return "\x1f".join(repr(f.right) for f in score.fields)


def decide(model: MatchModel, scores: Mapping[Any, ClusterScore], left_out: int = 0) -> Decision:
    """Link, review or new, from the scores of the candidate golden records (by golden id).

    link: exactly one candidate at or above `auto_link`. review: two or more
    at or above `auto_link` (never a silent chain merge), or the best in the
    review band. new: none reaches `review`. Candidates at or above
    `review` are listed best first. A candidate with a conflict (another entity
    whatever its weight: `conflict`) counts as in the review band at most.
    `left_out` candidates were not scored, being certainly below `review`
    (`below`): they could not change the decision.
    """
    t = model.thresholds
    # Equal weights (one pattern of agreement) are ranked by the values compared, then
    # by id: golden ids end in random bits, and the candidates kept (at most a few in
    # review) must not depend on them.
    ranked = sorted(
        (
            Candidate(golden_id=g, probability=s.probability, weight=s.weight, conflict=s.conflict)
            for g, s in scores.items()
        ),
        key=lambda c: (-c.weight, _compared(scores[c.golden_id]), str(c.golden_id)),
    )
    above = [c for c in ranked if c.links(model)]
    band = tuple(c for c in ranked if c.probability >= t.review)
    if len(above) == 1:
        return Decision(
            outcome="link",
            golden_id=above[0].golden_id,
            candidates=band,
            reason=f"one candidate at or above auto_link {t.auto_link}",
        )
    if len(above) > 1:
        return Decision(
            outcome="review",
            golden_id=above[0].golden_id,
            candidates=band,
            reason=f"{len(above)} candidates at or above auto_link {t.auto_link}",
        )
    if band:
        held = band[0].conflict if band[0].probability >= t.auto_link else None
        return Decision(
            outcome="review",
            golden_id=band[0].golden_id,
            candidates=band,
            reason=f"best candidate in the review band [{t.review}, {t.auto_link})"
            + (f", held there: {held}" if held else ""),
        )
    reason = f"no candidate reaches review {t.review}" if ranked or left_out else "no candidate"
    return Decision(outcome="new", golden_id=None, candidates=(), reason=reason)
