"""What the strings a client sends may hold: identifiers, names and free text.

Each rule is a `Meta(pattern=...)` on the schema's string types, so msgspec
refuses a bad value with its field path (a batch item alone, not its batch)
and the JSON Schema and OpenAPI documents state the rule.

- IDENTIFIER: source ids, references, system names, golden ids.
- NAME: names and the codes a record is recognised by (tax id, e-mail ...).
- TEXT: free text (address lines, job titles, a steward's reason or comment).

None of them takes NUL (PostgreSQL's text and jsonb cannot hold it) or any
other control character (C0, DEL, C1), except that free text keeps tab, line
feed and carriage return: a comment or an address has lines. Names and
identifiers take no control character at all, nor a bidirectional formatting
character (U+061C, U+200E/U+200F, U+202A-U+202E, U+2066-U+2069): they are
shown, compared and matched as they are, and an override makes a name read
differently from what it is ("Trojan Source" spoofing). Free text keeps
those: right-to-left text mixing directions (a Hebrew street name with a house
number, an Arabic comment quoting an id) legitimately needs them. An
identifier is also never blank (empty, or only whitespace).
"""

from __future__ import annotations

import re

from msgspec import Meta

# Character classes as regex escapes, so that the OpenAPI document shows them.
_CONTROLS_BUT_LINES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
_BIDI_FORMATTING = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"


def _pattern(forbidden: str, not_blank: bool = False) -> str:
    # `(?![\s\S])` is the end of the string both in Python's re (which msgspec uses)
    # and in ECMAScript's (JSON Schema's); `$` also matches before a final line
    # break in Python.
    start = r"^(?=[\s\S]*\S)" if not_blank else "^"
    return f"{start}[^{forbidden}]*(?![\\s\\S])"


IDENTIFIER_PATTERN = _pattern(_CONTROLS + _BIDI_FORMATTING, not_blank=True)
NAME_PATTERN = _pattern(_CONTROLS + _BIDI_FORMATTING)
TEXT_PATTERN = _pattern(_CONTROLS_BUT_LINES)

IDENTIFIER = Meta(pattern=IDENTIFIER_PATTERN)
NAME = Meta(pattern=NAME_PATTERN)
TEXT = Meta(pattern=TEXT_PATTERN)

_RULES = {
    IDENTIFIER_PATTERN: "must not be blank, nor hold a control character (NUL, tab, "
    "line break ...) or a bidirectional formatting character (U+202E ...)",
    NAME_PATTERN: "must not hold a control character (NUL, tab, line break ...) or a "
    "bidirectional formatting character (U+202E ...)",
    TEXT_PATTERN: "must not hold a control character other than tab and line breaks",
}
_MISMATCH = re.compile(r"Expected `str` matching regex (?P<pattern>'(?:[^'\\]|\\.)*')")
_READABLE = {repr(pattern): rule for pattern, rule in _RULES.items()}


def explain(message: str) -> str:
    """msgspec's "Expected `str` matching regex '^[^\\x00...'" as the rule in words."""
    return _MISMATCH.sub(lambda m: _READABLE.get(m["pattern"], m[0]), message)
