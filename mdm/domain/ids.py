"""Golden ids: stable, never reused, sortable by creation time."""

from __future__ import annotations

import os
import threading
import time
import uuid

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# every pair of digits: a 10-bit group of the value in one look-up
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(120, -1, -10)  # the 13 groups of 10 bits of 130, most significant first
PREFIX = {"customer": "cus", "worker": "wrk", "project": "prj", "legal_entity": "len"}

# Random bytes are read from the operating system 10 KiB at a time (one system
# call for a thousand ids; a call per id was half of minting one). A forked
# child starts without the parent's bytes, so the two never mint the same id.
_RANDOM_READ = 10 * 1024
_random = bytearray()
_random_lock = threading.Lock()  # two threads must not take the same bytes


def _forget_random() -> None:
    _random.clear()


os.register_at_fork(after_in_child=_forget_random)


def new_golden_id(entity: str) -> str:
    """`cus_` + 26 characters: 48 bits of milliseconds then 80 random bits (ULID layout).

    Time first keeps inserts local in the primary-key index and lets a reader
    see roughly when a golden record was born; 80 random bits make collisions
    across hub processes negligible without any coordination.
    """
    bits = int.from_bytes(random_bytes(10), "big")
    return f"{PREFIX[entity]}_{_encode((int(time.time() * 1000) << 80) | bits)}"


def random_bytes(n: int) -> bytes:
    """`n` (at most 10 KiB) bytes from the operating system's random source."""
    with _random_lock:
        if len(_random) < n:
            _random.extend(os.urandom(_RANDOM_READ))
        taken = bytes(_random[-n:])
        del _random[-n:]
    return taken


def new_event_id() -> str:
    """A random (version 4) UUID, as `str(uuid.uuid4())` gives."""
    return str(uuid.UUID(bytes=random_bytes(16), version=4))


def _encode(value: int) -> str:
    """The 26 base32 digits of a 128-bit value (130 bits: two leading zeros)."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
