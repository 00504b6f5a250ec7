"""Which survivorship the use cases apply to an entity's golden records."""

from __future__ import annotations

from collections.abc import Sequence

from mdm.domain.sources import SourceCatalog
from mdm.domain.survivorship import Contribution, Survived, survive
from mdm.services.events import Survivorship


def survivorship_for(catalog: SourceCatalog, entity: str) -> Survivorship:
    system_of_record = catalog.system_of_record(entity)

    def apply(contributions: Sequence[Contribution]) -> Survived:
        return survive(list(contributions), system_of_record)

    return apply
