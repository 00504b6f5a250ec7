"""Request rates per client: a read bucket and a write bucket each, and the RateLimit-* headers.

Which bucket a request draws on is decided by its route, not by who calls:

- a **write** is a request with an unsafe method (anything but GET, HEAD and
  OPTIONS) to a route whose declared permission lets it change state
  (SOURCE_WRITE, STEWARD, ADMIN): source records, cross-reference
  registration, merges, review decisions, pins, re-matching;
- everything else is a **read**: every GET and HEAD, and the POST routes that
  only search or resolve, which is what their permission says. READ, XREF_READ,
  OPS and AUTHENTICATED are all a `reader` key holds, and a reader changes
  nothing, so a route granted to readers changes nothing either
  (`POST /v1/match/{entity}`, `POST /v1/xref/lookup`, `POST /v1/xref/translate`).

Each client (an API key, a token's subject, or an address when no credential
was sent) has one bucket of each kind. A bucket holds `burst_seconds` worth of
its rate and refills at the rate; a request takes one token or gets a 429.
The rates are the hub's (MDM_RATE_LIMIT_READ, MDM_RATE_LIMIT_WRITE) unless the
API key carries its own (`mdm keys create --read-rate/--write-rate`); a rate
of 0 means no limit.

Answers carry the IETF draft's fields (draft-ietf-httpapi-ratelimit-headers)
in their widely implemented form, with integer values: RateLimit-Limit (the
bucket's size), RateLimit-Remaining (whole tokens left) and RateLimit-Reset
(seconds until the bucket is full again, rounded up); a 429 adds Retry-After
(seconds until one token is back, rounded up).

Buckets live in the process: with N hub processes behind a balancer a client
gets up to N times its rate (docs/security.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mdm.api.auth import Identity, Permission

#: Routes with these permissions are granted to readers, so they change nothing.
_READING = frozenset(
    {Permission.OPS, Permission.READ, Permission.XREF_READ, Permission.AUTHENTICATED}
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_BUCKETS = 100_000  # per kind; past it, full buckets are dropped (they hold no state)

_LIMIT = b"ratelimit-limit"
_REMAINING = b"ratelimit-remaining"
_RESET = b"ratelimit-reset"
_RETRY_AFTER = b"retry-after"


def is_write(permission: object, method: str) -> bool:
    """Whether a request draws on the write bucket (the rule in this module's docstring)."""
    return method not in _SAFE_METHODS and permission not in _READING


@dataclass(frozen=True, slots=True)
class Limit:
    """A bucket's shape: `rate` tokens per second, holding at most `burst`."""

    rate: float
    burst: int
    # RateLimit-Limit, encoded once: it is the same on every answer under this limit.
    limit_header: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a limit needs a positive rate and burst, not {self}")
        object.__setattr__(self, "limit_header", (_LIMIT, str(self.burst).encode()))

    @classmethod
    def of(cls, rate: float, burst_seconds: float) -> Limit | None:
        """The limit of `rate` per second with `burst_seconds` worth of burst; None for 0."""
        if rate <= 0:
            return None
        # rounded first, so that 0.01/s over 300 s holds 3 tokens, not 4
        burst = max(1, math.ceil(round(rate * burst_seconds, 6)))
        return cls(rate=rate, burst=burst)


class Taken:
    """What one request's take left: whether it may go, and the headers that say so."""

    __slots__ = ("allowed", "headers", "retry_after")

    def __init__(self, limit: Limit, allowed: bool, tokens: float) -> None:
        self.allowed = allowed
        reset = math.ceil((limit.burst - tokens) / limit.rate)
        self.headers = [
            limit.limit_header,
            (_REMAINING, str(int(tokens) if allowed else 0).encode()),
            (_RESET, str(reset).encode()),
        ]
        self.retry_after = 0
        if not allowed:
            self.retry_after = max(1, math.ceil((1.0 - tokens) / limit.rate))
            self.headers.append((_RETRY_AFTER, str(self.retry_after).encode()))

    def header_dict(self) -> dict[str, str]:
        """The headers as litestar's exceptions and responses take them."""
        return {name.decode(): value.decode() for name, value in self.headers}


class TokenBuckets:
    """One token bucket per client, each under its own Limit."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float, Limit]] = {}

    def take(self, client: str, limit: Limit, now: float) -> tuple[bool, float]:
        """Take a token at time `now`: (whether one was there, the tokens left after)."""
        found = self._buckets.get(client)
        if found is None:
            tokens = float(limit.burst)
        else:
            tokens, last, _ = found
            tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now, limit)
            return False, tokens
        if found is None and len(self._buckets) >= _MAX_BUCKETS:
            self._evict(now)
        tokens -= 1.0
        self._buckets[client] = (tokens, now, limit)
        return True, tokens

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        # Buckets that have refilled carry no state worth keeping.
        full = [
            client
            for client, (tokens, last, limit) in self._buckets.items()
            if tokens + (now - last) * limit.rate >= limit.burst
        ]
        for client in full:
            del self._buckets[client]
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()


class RateLimiter:
    """The hub's read and write limits, a key's own ones, and every client's buckets."""

    def __init__(
        self,
        read_rate: float,
        write_rate: float,
        burst_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst_seconds = burst_seconds
        self.clock = clock
        self.read = Limit.of(read_rate, burst_seconds)
        self.write = Limit.of(write_rate, burst_seconds)
        self._reads = TokenBuckets()
        self._writes = TokenBuckets()
        self._own: dict[float, Limit | None] = {}  # a key's own rate -> its limit

    def limit(self, identity: object, write: bool) -> Limit | None:
        """The limit this caller is under for a read or a write; None when unlimited."""
        own = None
        if isinstance(identity, Identity):
            own = identity.write_rate if write else identity.read_rate
        if own is None:
            return self.write if write else self.read
        if own not in self._own:
            self._own[own] = Limit.of(own, self.burst_seconds)
        return self._own[own]

    def take(self, client: str, limit: Limit, write: bool) -> Taken:
        """Take one token from `client`'s read or write bucket."""
        buckets = self._writes if write else self._reads
        allowed, tokens = buckets.take(client, limit, self.clock())
        return Taken(limit, allowed, tokens)
