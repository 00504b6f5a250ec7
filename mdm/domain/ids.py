"""Golden ids: stable, never reused, sortable by creation time."""

from __future__ import annotations

import base64
import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# RFC 4648's base32 digits, mapped onto Crockford's (same values, other letters)
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
PREFIX = {"customer": "cus", "worker": "wrk", "project": "prj", "legal_entity": "len"}


def new_golden_id(entity: str) -> str:
    """`cus_` + 26 characters: 48 bits of milliseconds then 80 random bits (ULID layout).

    Time first keeps inserts local in the primary-key index and lets a reader
    see roughly when a golden record was born; 80 random bits make collisions
    across hub processes negligible without any coordination.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return f"{PREFIX[entity]}_{_encode(value)}"


def _encode(value: int) -> str:
    """The 26 base32 digits of a 128-bit value, most significant first.

    In 20 bytes (32 digits of 5 bits) the value's 130 bits (two leading zeros) are
    the last 26 digits; base64's encoder does in C what a loop of 26 divisions did.
    """
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_CROCKFORD).decode()
