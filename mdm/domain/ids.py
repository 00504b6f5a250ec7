"""Golden ids: stable, never reused, sortable by creation time."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
PREFIX = {"customer": "cus", "worker": "wrk", "project": "prj", "legal_entity": "len"}


def new_golden_id(entity: str) -> str:
    """`cus_` + 26 characters: 48 bits of milliseconds then 80 random bits (ULID layout).

    Time first keeps inserts local in the primary-key index and lets a reader
    see roughly when a golden record was born; 80 random bits make collisions
    across hub processes negligible without any coordination.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{PREFIX[entity]}_{''.join(reversed(chars))}"
