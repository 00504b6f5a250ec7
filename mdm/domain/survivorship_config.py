"""Survivorship rules read from TOML: the packaged default, or an operator's own file.

The file holds one table per entity type; docs/survivorship.md and the packaged
`mdm/defaults/survivorship.toml` describe it. The system of record of each
entity comes from the source catalog, never from this file, so the two cannot
disagree. Every mistake (an unknown entity, rule or key, overlapping groups, a
trust outside [0, 1]) is a `PolicyError` naming where it is.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from mdm.domain.sources import ENTITIES, SourceCatalog, check_entity
from mdm.domain.survivorship import (
    DEFAULT_RULES,
    RULES,
    AttributeGroup,
    EntityPolicy,
    SourceTrust,
)

SorLookup = SourceCatalog | Mapping[str, str | None] | Callable[[str], str | None]

_ENTITY_KEYS = ("default", "sources", "attributes", "groups", "trust")
_GROUP_KEYS = ("attributes", "rules")
_TRUST_KEYS = ("trust", "half_life_days")


class PolicyError(ValueError):
    """The survivorship configuration is wrong; the message says where and how."""


@dataclass(frozen=True, slots=True)
class SurvivorshipPolicy:
    """The survivorship rules of every entity type."""

    entities: Mapping[str, EntityPolicy]

    def for_entity(self, entity: str) -> EntityPolicy:
        """The rules of `entity`; raises UnknownEntity for a type the hub does not know."""
        check_entity(entity)
        return self.entities[entity]


def parse_policy(
    toml_text: str,
    catalog_or_sor_lookup: SorLookup,
    *,
    attributes: Mapping[str, Collection[str]] | None = None,
) -> SurvivorshipPolicy:
    """Read and validate a survivorship configuration.

    `catalog_or_sor_lookup` gives each entity's system of record: a SourceCatalog,
    a mapping or a function of the entity name. `attributes`, when given, lists
    each entity's attribute names so that a misspelt one is an error too. An
    entity the file leaves out gets: system of record first, then most recent.
    """
    try:
        raw = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"survivorship config is not valid TOML: {e}") from None
    unknown = sorted(set(raw) - set(ENTITIES))
    if unknown:
        raise PolicyError(
            f"survivorship config: unknown entity {unknown[0]!r}; known: {', '.join(ENTITIES)}"
        )
    sor_of = _sor_lookup(catalog_or_sor_lookup)
    known = attributes or {}
    entities = {
        entity: _entity_policy(
            entity,
            raw.get(entity, {}),
            sor_of(entity),
            None if attributes is None else known.get(entity, ()),
        )
        for entity in ENTITIES
    }
    return SurvivorshipPolicy(MappingProxyType(entities))


def default_policy(
    catalog: SorLookup, *, attributes: Mapping[str, Collection[str]] | None = None
) -> SurvivorshipPolicy:
    """The packaged rules (mdm/defaults/survivorship.toml) for `catalog`'s systems of record."""
    text = resources.files("mdm.defaults").joinpath("survivorship.toml").read_text("utf-8")
    return parse_policy(text, catalog, attributes=attributes)


def _sor_lookup(lookup: SorLookup) -> Callable[[str], str | None]:
    if isinstance(lookup, SourceCatalog):
        return lookup.system_of_record
    if isinstance(lookup, Mapping):
        return lookup.get
    return lookup


def _entity_policy(
    entity: str, spec: Any, sor: str | None, known: Collection[str] | None
) -> EntityPolicy:
    _check_table(spec, entity, _ENTITY_KEYS)
    rules = {
        name: _chain(chain, f"{entity}.attributes.{name}")
        for name, chain in _table(spec.get("attributes", {}), f"{entity}.attributes").items()
    }
    groups = tuple(
        _group(name, group, f"{entity}.groups.{name}")
        for name, group in _table(spec.get("groups", {}), f"{entity}.groups").items()
    )
    trust = {
        source: _trust(value, f"{entity}.trust.{source}")
        for source, value in _table(spec.get("trust", {}), f"{entity}.trust").items()
    }
    if known is not None:
        named = [*rules, *(a for g in groups for a in g.attributes)]
        if strange := [a for a in named if a not in known]:
            raise PolicyError(
                f"survivorship config, {entity}: unknown attribute {strange[0]!r}; "
                f"known: {', '.join(sorted(known))}"
            )
    try:
        return EntityPolicy(
            entity=entity,
            system_of_record=sor,
            default_rules=(
                _chain(spec["default"], f"{entity}.default") if "default" in spec else DEFAULT_RULES
            ),
            attribute_rules=MappingProxyType(rules),
            groups=groups,
            source_order=_strings(spec.get("sources", []), f"{entity}.sources"),
            trust=MappingProxyType(trust),
        )
    except ValueError as e:
        raise PolicyError(f"survivorship config: {e}") from None


def _chain(value: Any, where: str) -> tuple[str, ...]:
    """A rule chain: a list of rule names, or one name alone."""
    chain = (value,) if isinstance(value, str) else _strings(value, where)
    if not chain:
        raise PolicyError(f"survivorship config, {where}: the rule chain is empty")
    if unknown := [r for r in chain if r not in RULES]:
        raise PolicyError(
            f"survivorship config, {where}: unknown rule {unknown[0]!r}; "
            f"known rules: {', '.join(sorted(RULES))}"
        )
    return chain


def _group(name: str, value: Any, where: str) -> AttributeGroup:
    """A group: a list of attributes (decided by the default rules), or a table."""
    if isinstance(value, list):
        return AttributeGroup(name, _strings(value, where))
    _check_table(value, where, _GROUP_KEYS)
    if "attributes" not in value:
        raise PolicyError(f"survivorship config, {where}: a group needs `attributes`")
    rules = _chain(value["rules"], f"{where}.rules") if "rules" in value else None
    return AttributeGroup(name, _strings(value["attributes"], f"{where}.attributes"), rules)


def _trust(value: Any, where: str) -> SourceTrust:
    """A source's trust: a number (no decay), or {trust, half_life_days}."""
    if not isinstance(value, dict):
        value = {"trust": value}
    _check_table(value, where, _TRUST_KEYS)
    trust, half_life = value.get("trust"), value.get("half_life_days")
    if not _is_number(trust) or (half_life is not None and not _is_number(half_life)):
        raise PolicyError(f"survivorship config, {where}: trust and half_life_days are numbers")
    try:
        return SourceTrust(float(trust), None if half_life is None else float(half_life))
    except ValueError as e:
        raise PolicyError(f"survivorship config, {where}: {e}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"survivorship config, {where}: expected a list of names")
    return tuple(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"survivorship config, {where}: expected a table")
    return value


def _check_table(value: Any, where: str, keys: tuple[str, ...]) -> None:
    unknown = sorted(set(_table(value, where)) - set(keys))
    if unknown:
        raise PolicyError(
            f"survivorship config, {where}: unknown key {unknown[0]!r}; expected {', '.join(keys)}"
        )
