"""Path parameters several routes share, held to the schemas' string rules (schemas/text.py)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter

from schemas.text import IDENTIFIER_PATTERN

#: A source system's id of a record; one holding `/` is sent as `%2F` (mdm/api/edge.py).
SourceIdPath = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=200,
        pattern=IDENTIFIER_PATTERN,
        description="The record's id in that source (a `/` in it sent as `%2F`)",
    ),
]
