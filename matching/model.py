"""The match model: what is compared, how, with which weights, and where the bands lie.

One model per entity type, declarative and versioned (stored with every link
it makes). It round-trips through JSON and TOML. A model holds:

- `fields`: each compared field names a comparator, the attribute paths it
  reads (`source`) and its ordered levels. A level is a comparator predicate
  written as its label ("exact", "jaro_winkler>=0.92", ...; the last is
  "else") with m = P(level | match) and u = P(level | non-match), and
  `tf_adjust` to weigh agreement on a rare value more (see matching.scoring).
- `blocking`: rules making candidate keys from prepared features
  (see matching.blocking).
- `thresholds`: `auto_link` and `review` as match probabilities.
- `prior`: lambda, the probability that two random records match.
- `matches_per_record`: r, how many other held records of the same entity a
  record has on average. When set, the prior follows the store: with N records
  held, lambda = r / (N - 1) (`MatchModel.at_size`), bounded by `PRIOR_CAP` and
  `PRIOR_MIN`; `prior` is then lambda at the size the model was fitted on.
- `identity`: which fields say who a record is, beyond their weights: an
  outright disagreement on them holds a candidate below `auto_link`
  (see `Identity` and matching.scoring).

Default models for the four entities ship as `matching/defaults/{entity}.toml`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

import msgspec

from matching.comparators import COMPARATORS, ELSE, LevelError, compile_levels

ENTITIES = ("customer", "worker", "project", "legal_entity")

# m and u of one field's levels must each sum to 1 within this tolerance.
SUM_TOLERANCE = 0.01

# The prior a model that follows the store never exceeds: r / (N - 1) for a store of
# about a thousand records with one other record of each thing. A smaller store is
# judged as though it held that many: the first records are not linked on weaker
# evidence than the later ones, while a trial hub holds a handful of records.
PRIOR_CAP = 1e-3
# ... and never falls below (a store of some hundred million records).
PRIOR_MIN = 1e-9
# Store sizes are rounded to steps of 2^(1/8) (9 %) before the prior is derived from
# them: the weight of the prior moves by at most 1/16 bit for a rounding, and a process
# compiles a model once per step rather than once per record received.
SIZE_STEPS_PER_DOUBLING = 8

_FEATURE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*(\[-?[0-9]*:-?[0-9]*\])?$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ModelError(ValueError):
    """A match model that is not valid; the message names the offending part."""


# The subclasses repeat `frozen=True`: msgspec inherits it, but mypy's dataclass rules
# would take a subclass without it for a mutable one.
class _Base(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    pass


class Level(_Base, frozen=True):
    """One comparison level: its predicate label, m and u, and whether TF adjusts it."""

    label: str
    m: float
    u: float
    tf_adjust: bool = False


class FieldComparison(_Base, frozen=True):
    """A compared field: its name (in explanations), comparator, attribute paths and levels."""

    name: str
    comparator: str
    source: tuple[str, ...]
    levels: tuple[Level, ...]


class BlockingRule(_Base, frozen=True):
    """Keys "{name}:{part}|{part}..." from prepared features "field.feature", maybe sliced.

    A part may end in a Python slice of the value: "family_name.v[:3]",
    "national_id.v[4:]", "phone.v[-7:]".
    """

    name: str
    parts: tuple[str, ...]
    # Sort the parts' values before joining, so that swapped names meet.
    unordered: bool = False


class Identity(_Base, frozen=True):
    """The fields whose outright disagreement ("else") means another entity.

    - `names`: when every name compared disagrees, it is another entity whatever
      else agrees (a form carrying a relative's national id, a tax id on another
      company's invoice): a steward decides at most.
    - `distinguishing`: fields on which people of one household differ (given
      name, birth date: siblings, twins, a junior and a senior); one disagreeing
      is another person, unless an identifier agrees.
    - `identifiers`: fields whose agreement (any level but "else") excuses a
      distinguishing disagreement, and that let a strong key link at once
      when a name agrees too (mdm.services.ingest.plan).
    - `corroborating`: fields that, agreeing outright (their first level) in the
      same source record as an identifier, make it the same entity though no
      name agrees (both names replaced, a company renamed): a relative's or a
      housemate's number comes with another birth date, another company's tax
      id with another address. The weights then decide.
    - `decisive`: fields whose outright disagreement is another entity whatever
      else agrees, identifiers included (the generational suffix: a junior and a
      senior of one name and address; a form of the son carrying the father's
      national id is no reason to join them).
    """

    names: tuple[str, ...] = ()
    distinguishing: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    corroborating: tuple[str, ...] = ()
    decisive: tuple[str, ...] = ()
    # One per holder, so an outright disagreement is another entity (a national id
    # more than a typo or a transposition apart), unless a `confirming` field agrees
    # outright in the same record (one person with an old and a new number, at one
    # home address).
    exclusive: tuple[str, ...] = ()
    confirming: tuple[str, ...] = ()


IDENTITY_PARTS = (
    "names",
    "distinguishing",
    "identifiers",
    "corroborating",
    "decisive",
    "exclusive",
    "confirming",
)


class Thresholds(_Base, frozen=True):
    """Match probabilities: at or above `auto_link` link; at or above `review` ask a steward."""

    auto_link: float
    review: float


class MatchModel(_Base, frozen=True, weakref=True):
    """A versioned match model for one entity type; build with `MatchModel.validated`."""

    entity: str
    version: int
    prior: float
    thresholds: Thresholds
    fields: tuple[FieldComparison, ...]
    blocking: tuple[BlockingRule, ...]
    description: str = ""
    # None: a model stored before the section existed; it takes the packaged default's.
    identity: Identity | None = None
    # None: the prior is fixed (a model stored before the prior followed the store, and
    # projects, which link on their code).
    matches_per_record: float | None = None

    # --- construction and validation ---

    @classmethod
    def validated(cls, data: Mapping[str, Any]) -> MatchModel:
        """A model from JSON builtins, checked; raises ModelError with the offending part."""
        try:
            model = msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise ModelError(f"match model: {exc}") from None
        model.validate()
        return model

    def validate(self) -> None:
        """Raise ModelError unless the model is usable (see the module docs for the rules)."""
        if self.entity not in ENTITIES:
            raise ModelError(f"entity {self.entity!r}: expected one of {', '.join(ENTITIES)}")
        if self.version < 1:
            raise ModelError(f"version {self.version}: must be at least 1")
        _check_probability("prior", self.prior)
        r = self.matches_per_record
        if r is not None and (math.isnan(r) or not 0.0 < r < 1e6):
            raise ModelError(f"matches_per_record = {r}: must be positive (and below 1e6)")
        t = self.thresholds
        _check_probability("thresholds.auto_link", t.auto_link)
        _check_probability("thresholds.review", t.review)
        if t.review > t.auto_link:
            raise ModelError(
                f"thresholds: review ({t.review}) must not be above auto_link ({t.auto_link})"
            )
        if not self.fields:
            raise ModelError("a model needs at least one field")
        names = [f.name for f in self.fields]
        for f in self.fields:
            if names.count(f.name) > 1:
                raise ModelError(f"field {f.name!r} appears twice")
            _check_field(f)
        if self.identity is not None:
            for part in IDENTITY_PARTS:
                for name in getattr(self.identity, part):
                    if name not in names:
                        raise ModelError(f"identity.{part}: {name!r} names no field of the model")
        rule_names = [r.name for r in self.blocking]
        for rule in self.blocking:
            if rule_names.count(rule.name) > 1:
                raise ModelError(f"blocking rule {rule.name!r} appears twice")
            _check_rule(rule, set(names))

    # --- serialisation ---

    def to_dict(self) -> dict[str, Any]:
        """JSON builtins (dicts, lists, str, int, float, bool)."""
        return msgspec.json.decode(msgspec.json.encode(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> MatchModel:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"match model: not JSON: {exc}") from None
        return cls.validated(data)

    def to_toml(self) -> str:
        return _toml_document(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> MatchModel:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ModelError(f"match model: not TOML: {exc}") from None
        return cls.validated(data)

    # --- helpers ---

    def identity_rules(self) -> Identity:
        """`identity`, or the packaged default model's when this one has none."""
        if self.identity is not None:
            return self.identity
        found = default_model(self.entity).identity
        names = {f.name for f in self.fields}
        return (
            Identity(
                **{
                    part: tuple(n for n in getattr(found, part) if n in names)
                    for part in IDENTITY_PARTS
                }
            )
            if found is not None
            else Identity()
        )

    def field(self, name: str) -> FieldComparison:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def with_parameters(
        self,
        *,
        version: int,
        prior: float,
        fields: tuple[FieldComparison, ...],
        matches_per_record: float | None = None,
    ) -> MatchModel:
        """A copy with new version, prior and fields (same shape), validated; a model that
        follows the store takes `matches_per_record` too (else it keeps its own)."""
        r = self.matches_per_record
        if r is not None and matches_per_record is not None:
            r = matches_per_record
        model = msgspec.structs.replace(
            self, version=version, prior=prior, fields=fields, matches_per_record=r
        )
        model.validate()
        return model

    # --- the prior at a store's size ---

    def prior_at(self, records: int) -> float:
        """Lambda for a store holding `records` records of the entity: r / (N - 1), with N
        rounded (`SIZE_STEPS_PER_DOUBLING`) and the result bounded (`PRIOR_CAP`,
        `PRIOR_MIN`); the fixed `prior` when the model does not follow the store."""
        r = self.matches_per_record
        if r is None:
            return self.prior
        n = max(rounded_size(records), 2)
        return min(PRIOR_CAP, max(PRIOR_MIN, r / (n - 1)))

    def at_size(self, records: int) -> MatchModel:
        """This model (same version) with the prior for a store of `records` records."""
        prior = self.prior_at(records)
        if prior == self.prior:
            return self
        return msgspec.structs.replace(self, prior=prior)


def rounded_size(records: int) -> int:
    """`records` rounded to the nearest step of 2^(1/SIZE_STEPS_PER_DOUBLING)."""
    if records <= 2:
        return max(records, 0)
    step = round(math.log2(records) * SIZE_STEPS_PER_DOUBLING)
    return round(2 ** (step / SIZE_STEPS_PER_DOUBLING))


def _check_probability(where: str, value: float) -> None:
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ModelError(f"{where} = {value}: must lie strictly between 0 and 1")


def _check_field(f: FieldComparison) -> None:
    where = f"field {f.name!r}"
    if not _NAME.match(f.name):
        raise ModelError(f"{where}: a field name is lower case letters, digits and '_'")
    if f.comparator not in COMPARATORS:
        known = ", ".join(sorted(COMPARATORS))
        raise ModelError(f"{where}: unknown comparator {f.comparator!r}; expected one of {known}")
    if not f.source:
        raise ModelError(f"{where}: source names no attribute")
    if len(f.levels) < 2:
        raise ModelError(f"{where}: needs at least two levels (one of them {ELSE!r})")
    labels = [level.label for level in f.levels]
    if labels[-1] != ELSE:
        raise ModelError(f"{where}: the last level must be {ELSE!r}, not {labels[-1]!r}")
    for label in labels:
        if labels.count(label) > 1:
            raise ModelError(f"{where}: level {label!r} appears twice")
    try:
        compile_levels(f.comparator, labels)
    except LevelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    for level in f.levels:
        _check_probability(f"{where} level {level.label!r} m", level.m)
        _check_probability(f"{where} level {level.label!r} u", level.u)
    if f.levels[-1].tf_adjust:
        raise ModelError(f"{where}: the {ELSE!r} level cannot be term-frequency adjusted")
    for kind in ("m", "u"):
        total = sum(getattr(level, kind) for level in f.levels)
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ModelError(f"{where}: the levels' {kind} add up to {total:.4f}, not 1")


def _check_rule(rule: BlockingRule, fields: set[str]) -> None:
    where = f"blocking rule {rule.name!r}"
    if not _NAME.match(rule.name):
        raise ModelError(f"{where}: a rule name is lower case letters, digits and '_'")
    if not rule.parts:
        raise ModelError(f"{where}: names no part")
    for part in rule.parts:
        if not _FEATURE.match(part):
            raise ModelError(
                f"{where}: part {part!r} is not 'field.feature' or 'field.feature[:n]'"
            )
        field_name = part.split(".", 1)[0]
        if field_name not in fields:
            raise ModelError(f"{where}: part {part!r} names no field of the model")


# --- default models ------------------------------------------------------------------


@functools.lru_cache(maxsize=len(ENTITIES))
def default_model(entity: str) -> MatchModel:
    """The shipped untrained model for `entity` (matching/defaults/{entity}.toml)."""
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    text = resources.files("matching").joinpath("defaults", f"{entity}.toml").read_text("utf-8")
    model = MatchModel.from_toml(text)
    if model.entity != entity:
        raise ModelError(f"defaults/{entity}.toml holds a model for {model.entity!r}")
    return model


def upgraded(model: MatchModel, packaged: MatchModel) -> MatchModel:
    """`model` (a stored version, fitted or not) in the shape of `packaged` (this release's
    default for the entity) wherever that needs no feature or key it does not have.

    A field that `packaged` compares alike (same name, comparator and attributes) takes
    `packaged`'s levels, in its order: a level both have keeps `model`'s m and u, a new
    one starts from `packaged`'s, and m and u are scaled to add up to one again, for EM
    to fit them. The identity rules are `packaged`'s, for the fields `model` has. Fields
    `packaged` compares otherwise or not at all, the blocking rules (whose keys the match
    index holds), the thresholds and the prior stay as they are. Training starts from
    this (mdm.services.matcher.fit_model), so a hub that stored an older release's model
    takes the new levels and rules at its next fit, through the adoption check.
    """
    if packaged.entity != model.entity:
        raise ModelError(f"cannot upgrade a {model.entity} model to a {packaged.entity} one")
    alike = {(f.name, f.comparator, f.source): f for f in packaged.fields}
    fields = []
    for f in model.fields:
        target = alike.get((f.name, f.comparator, f.source))
        if target is None or [lv.label for lv in target.levels] == [lv.label for lv in f.levels]:
            fields.append(f)
            continue
        fitted = {level.label: level for level in f.levels}
        levels = [fitted.get(level.label, level) for level in target.levels]
        m_total = sum(level.m for level in levels)
        u_total = sum(level.u for level in levels)
        scaled = tuple(
            msgspec.structs.replace(level, m=level.m / m_total, u=level.u / u_total)
            for level in levels
        )
        fields.append(msgspec.structs.replace(f, levels=scaled))
    identity = model.identity
    if packaged.identity is not None:
        names = {f.name for f in model.fields}
        identity = Identity(
            **{
                part: tuple(n for n in getattr(packaged.identity, part) if n in names)
                for part in IDENTITY_PARTS
            }
        )
    return MatchModel.validated(
        msgspec.structs.replace(model, fields=tuple(fields), identity=identity).to_dict()
    )


# --- a TOML writer for the model's shape (tomllib only reads) --------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    # JSON escapes are TOML basic-string escapes, except that TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"cannot write {value} to TOML")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _toml_table(data: Mapping[str, Any], path: str, out: list[str]) -> None:
    """Write `data`'s plain keys, then its sub-tables, then its arrays of tables."""
    for key, value in data.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            sub = f"{path}.{_toml_key(key)}" if path else _toml_key(key)
            out.extend(["", f"[{sub}]"])
            _toml_table(value, sub, out)
    for key, value in data.items():
        if _is_table_array(value):
            sub = f"{path}.{_toml_key(key)}" if path else _toml_key(key)
            for item in value:
                out.extend(["", f"[[{sub}]]"])
                _toml_table(item, sub, out)


def _toml_document(data: Mapping[str, Any]) -> str:
    out: list[str] = []
    _toml_table(data, "", out)
    return "\n".join(out).lstrip("\n") + "\n"
