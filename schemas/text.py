"""What the strings a client sends may hold: identifiers, names and free text.

Each rule is a `Meta(pattern=...)` on the schema's string types, so msgspec
refuses a bad value with its field path (a batch item alone, not its batch)
and the JSON Schema and OpenAPI documents state the rule.

- IDENTIFIER: source ids, references, system names, golden ids.
- NAME: names and the codes a record is recognised by (tax id, e-mail ...).
- TEXT: free text (address lines, job titles, a steward's reason or comment).

NUL is never taken: PostgreSQL's text and jsonb cannot hold it.
"""

from __future__ import annotations

import re

from msgspec import Meta

_FORBIDDEN_IN_TEXT = r"\x00"
_FORBIDDEN_IN_NAMES = _FORBIDDEN_IN_TEXT


def _pattern(forbidden: str) -> str:
    # `(?![\s\S])` is the end of the string both in Python's re (which msgspec uses)
    # and in ECMAScript's (JSON Schema's); `$` also matches before a final line
    # break in Python.
    return f"^[^{forbidden}]*(?![\\s\\S])"


IDENTIFIER_PATTERN = _pattern(_FORBIDDEN_IN_NAMES)
NAME_PATTERN = _pattern(_FORBIDDEN_IN_NAMES)
TEXT_PATTERN = _pattern(_FORBIDDEN_IN_TEXT)

IDENTIFIER = Meta(pattern=IDENTIFIER_PATTERN)
NAME = Meta(pattern=NAME_PATTERN)
TEXT = Meta(pattern=TEXT_PATTERN)

_RULES = {
    IDENTIFIER_PATTERN: "must not hold a NUL character",
    NAME_PATTERN: "must not hold a NUL character",
    TEXT_PATTERN: "must not hold a NUL character",
}
_MISMATCH = re.compile(r"Expected `str` matching regex (?P<pattern>'(?:[^'\\]|\\.)*')")
_READABLE = {repr(pattern): rule for pattern, rule in _RULES.items()}


def explain(message: str) -> str:
    """msgspec's "Expected `str` matching regex '^[^\\x00...'" as the rule in words."""
    return _MISMATCH.sub(lambda m: _READABLE.get(m["pattern"], m[0]), message)
