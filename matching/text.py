"""Text normalisation shared by every standardizer: display cleaning and comparison keys."""

from __future__ import annotations

import unicodedata

# Letters that NFKD leaves whole (they are letters of their own, not a base
# letter plus an accent), so dropping combining marks would not fold them.
# Keys are lower case because `fold` casefolds first.
_NON_DECOMPOSING = str.maketrans(
    {
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ħ": "h",
        "\u0131": "i",  # dotless i
        "ŧ": "t",
    }
)

# Apostrophes join a word ("Macy's", "O'Neil") rather than separate two, so
# they are deleted instead of becoming a space: "Macys" and "Macy's" agree.
# (ASCII, right and left single quotation marks, modifier letter apostrophe, grave)
_APOSTROPHES = str.maketrans(dict.fromkeys("'\u2019\u2018\u02bc`", None))

# Invisible characters that sources paste in and that `str.split` keeps.
_INVISIBLE = str.maketrans(dict.fromkeys("\u200b\ufeff\u00ad", None))


# ASCII text is most text, and the general paths below do per character in Python
# what these tables do in C. For ASCII the two give the same answer (NFC and NFKD
# change nothing, casefold() is lower(), no character is a combining mark or an
# invisible one): a property test holds them to it.
_ASCII_CONTROL = str.maketrans({c: " " for c in [*map(chr, range(32)), "\x7f"]})
_ASCII_FOLD = str.maketrans(
    {c: (None if c in "'`" else " ") for c in map(chr, range(128)) if not c.isalnum()}
)


def clean_text(text: str) -> str:
    """Clean text for display: NFC, no control characters, single spaces, stripped.

    Used for person and company names, titles and address lines; it keeps
    case and accents, unlike `fold`.
    """
    if text.isascii():
        return " ".join(text.translate(_ASCII_CONTROL).split())
    return _clean_unicode(text)


def _clean_unicode(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    # Control characters (tabs and newlines included) become spaces so that
    # "a\tb" does not turn into "ab".
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return " ".join(text.split())


def fold(text: str) -> str:
    """Comparison key: no accents, no case, no punctuation, single spaces.

    >>> fold("  Müller-Lüdenscheidt, S.A. ")
    'muller ludenscheidt s a'
    """
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_FOLD).split())
    return _fold_unicode(text)


def _fold_unicode(text: str) -> str:
    # NFKD before casefold too: compatibility forms such as the lunate sigma
    # only become a letter casefold knows after decomposition.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    text = "".join(c for c in text if not unicodedata.category(c).startswith("M"))
    text = text.translate(_NON_DECOMPOSING).translate(_APOSTROPHES).translate(_INVISIBLE)
    # casefold() maps a few scripts (Cherokee) to upper case and NFKD can
    # expose upper-case compatibility letters; lower() settles both.
    text = text.lower()
    text = "".join(c if c.isalnum() else " " for c in text)
    return " ".join(text.split())
