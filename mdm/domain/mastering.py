"""The configuration every mastering use case applies: source roles and survivorship.

Built once per process by the composition root (mdm/bootstrap.py) from the
sources file and the survivorship file, validated there, then read-only. The
use cases take it as one argument, so a hub started with an operator's own
survivorship file can never apply the packaged rules in some code path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from matching.model import MatchModel
from matching.scoring import TermFrequencies
from mdm.domain.sources import Role, SourceCatalog
from mdm.domain.survivorship import NO_OVERRIDES, Contribution, Overrides, Survived, survive
from mdm.domain.survivorship_config import SurvivorshipPolicy
from schemas.entities import SENSITIVE_ATTRIBUTES

if TYPE_CHECKING:
    from mdm.domain.ports import MatchIndex

#: Golden attributes from the live contributions and the steward's overrides.
Survivorship = Callable[[Sequence[Contribution], Overrides], Survived]


@dataclass(frozen=True, slots=True)
class ActiveModel:
    """The match model in force for an entity, with the value frequencies it was trained on."""

    model: MatchModel
    frequencies: TermFrequencies | None


class MatchModels(Protocol):
    """A port: the match model in force per entity (stored in the database, cached)."""

    async def current(
        self, index: MatchIndex, entity: str, records: int | None = None
    ) -> ActiveModel:
        """The model in force, read through `index` (a unit of work's match index);
        its prior for the live records held, or for `records`."""
        ...

    async def close(self) -> None:
        """Stop what the models run beside the writes (before the engine is disposed of)."""
        ...


class _NoModels:
    async def current(
        self, index: MatchIndex, entity: str, records: int | None = None
    ) -> ActiveModel:
        raise RuntimeError("no match models configured (the composition root sets them)")

    async def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class MasteringRules:
    sources: SourceCatalog
    survivorship: SurvivorshipPolicy
    models: MatchModels = field(default_factory=_NoModels)
    # Attribute names masked for callers without the grant and kept out of events.
    sensitive: frozenset[str] = SENSITIVE_ATTRIBUTES

    def authorize_write(self, source: str, entity: str) -> Role:
        return self.sources.authorize_write(source, entity)

    def survivorship_for(self, entity: str) -> Survivorship:
        policy = self.survivorship.for_entity(entity)

        def apply(
            contributions: Sequence[Contribution], overrides: Overrides = NO_OVERRIDES
        ) -> Survived:
            return survive(contributions, policy, overrides)

        return apply
