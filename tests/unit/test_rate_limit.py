"""Rate limits without a server: bucket arithmetic, the read/write rule, headers, settings."""

from __future__ import annotations

import pytest

from mdm.api import rate_limit
from mdm.api.auth import Identity, Permission, Refusal
from mdm.api.rate_limit import Limit, RateLimiter, Taken, TokenBuckets, is_write
from mdm.settings import AuthSettings, Settings


def test_a_limit_holds_its_burst_seconds_worth_of_tokens() -> None:
    assert Limit.of(5_000, 2.0) == Limit(rate=5_000, burst=10_000)
    assert Limit.of(0.01, 300) == Limit(rate=0.01, burst=3)  # not 4 from float error
    assert Limit.of(0.7, 2.0) == Limit(rate=0.7, burst=2)  # 1.4 tokens round up
    assert Limit.of(0.1, 2.0) == Limit(rate=0.1, burst=1)  # never below one
    assert Limit.of(0, 2.0) is None  # 0: no limit
    assert Limit(rate=2, burst=3).limit_header == (b"ratelimit-limit", b"3")
    with pytest.raises(ValueError):
        Limit(rate=0, burst=3)


def test_buckets_take_one_token_a_request_and_refill_at_the_rate() -> None:
    limit = Limit(rate=2.0, burst=3)
    buckets = TokenBuckets()
    assert [buckets.take("a", limit, 0.0) for _ in range(3)] == [
        (True, 2.0),
        (True, 1.0),
        (True, 0.0),
    ]
    assert buckets.take("a", limit, 0.0) == (False, 0.0)  # a refusal takes nothing
    assert buckets.take("b", limit, 0.0) == (True, 2.0)  # every client has its own
    assert buckets.take("a", limit, 0.25) == (False, 0.5)
    assert buckets.take("a", limit, 0.5) == (True, 0.0)  # half a second: one token back
    assert buckets.take("a", limit, 100.0) == (True, 2.0)  # refilled, never above the burst


def test_a_steady_rate_under_the_limit_is_never_refused() -> None:
    # 1,000 requests a second for 5 s against the default read limit, one by one.
    limit = Limit.of(AuthSettings().read_rate, AuthSettings().burst_seconds)
    assert limit is not None
    buckets = TokenBuckets()
    results = [buckets.take("sync", limit, i / 1_000) for i in range(5_000)]
    assert all(allowed for allowed, _ in results)
    # ... while one past the burst at once is refused.
    burst = TokenBuckets()
    taken = [burst.take("flood", limit, 0.0)[0] for _ in range(limit.burst + 1)]
    assert taken.count(False) == 1 and taken[-1] is False


def test_full_buckets_are_dropped_when_there_are_too_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limit, "_MAX_BUCKETS", 3)
    limit = Limit(rate=1.0, burst=2)
    buckets = TokenBuckets()
    for client in "abc":
        buckets.take(client, limit, 0.0)
    buckets.take("a", limit, 0.0)  # a holds no tokens; b and c refill by t=1
    buckets.take("d", limit, 1.0)
    assert len(buckets) == 2  # a (still short of full) and d
    assert buckets.take("a", limit, 1.0) == (True, 0.0)  # a kept its state


def test_the_headers_say_limit_remaining_reset_and_retry_after() -> None:
    limit = Limit(rate=2.0, burst=3)
    first = Taken(limit, True, 2.0)
    assert first.allowed
    assert first.header_dict() == {
        "ratelimit-limit": "3",
        "ratelimit-remaining": "2",
        "ratelimit-reset": "1",  # one token short of full: half a second, rounded up
    }
    empty = Taken(limit, True, 0.4)
    assert empty.header_dict()["ratelimit-remaining"] == "0"  # whole tokens only
    assert empty.header_dict()["ratelimit-reset"] == "2"  # 2.6 tokens at 2/s: 1.3 s
    refused = Taken(Limit(rate=0.25, burst=3), False, 0.5)
    assert not refused.allowed
    assert refused.header_dict() == {
        "ratelimit-limit": "3",
        "ratelimit-remaining": "0",
        "ratelimit-reset": "10",  # 2.5 tokens at 0.25/s
        "retry-after": "2",  # half a token at 0.25/s
    }
    assert refused.retry_after == 2


@pytest.mark.parametrize(
    ("permission", "method", "write"),
    [
        (Permission.XREF_READ, "GET", False),  # the ID lookup
        (Permission.XREF_READ, "POST", False),  # batch lookup, translate
        (Permission.READ, "POST", False),  # match search
        (Permission.READ, "GET", False),
        (Permission.OPS, "GET", False),
        (Permission.AUTHENTICATED, "GET", False),
        (Permission.STEWARD, "GET", False),  # the review queue
        (Permission.STEWARD, "POST", True),  # a decision, a merge
        (Permission.STEWARD, "DELETE", True),
        (Permission.SOURCE_WRITE, "PUT", True),
        (Permission.SOURCE_WRITE, "POST", True),  # a batch
        (Permission.SOURCE_WRITE, "DELETE", True),
        (Permission.ADMIN, "POST", True),  # re-matching
        (Permission.ADMIN, "HEAD", False),
        (None, "POST", True),  # undeclared: refused anyway, counted as a write
    ],
)
def test_reads_and_writes_are_told_apart_by_permission_and_method(
    permission: Permission | None, method: str, write: bool
) -> None:
    assert is_write(permission, method) is write


def _key(read: float | None = None, write: float | None = None) -> Identity:
    return Identity(role="reader", name="sync", key_id="key_1", read_rate=read, write_rate=write)


def test_a_keys_own_rates_replace_the_hubs() -> None:
    limiter = RateLimiter(read_rate=5_000, write_rate=200, burst_seconds=2.0)
    assert limiter.limit(_key(), write=False) == Limit(rate=5_000, burst=10_000)
    assert limiter.limit(_key(), write=True) == Limit(rate=200, burst=400)
    assert limiter.limit(_key(read=5), write=False) == Limit(rate=5, burst=10)
    assert limiter.limit(_key(read=5), write=True) == Limit(rate=200, burst=400)
    assert limiter.limit(_key(write=1_000), write=True) == Limit(rate=1_000, burst=2_000)
    assert limiter.limit(_key(read=0), write=False) is None  # 0: this key is unlimited
    # Without a key (a token, bad credentials, none): the hub's.
    token = Identity(role="reader", name="bi", subject="bi")
    for caller in (token, Refusal("bad"), None):
        assert limiter.limit(caller, write=False) == Limit(rate=5_000, burst=10_000)
    # A hub without limits still holds a key to its own.
    off = RateLimiter(read_rate=0, write_rate=0, burst_seconds=2.0)
    assert off.limit(_key(), write=False) is None and off.limit(_key(), write=True) is None
    assert off.limit(_key(read=3), write=False) == Limit(rate=3, burst=6)


def test_reads_and_writes_draw_on_buckets_of_their_own() -> None:
    now = [0.0]
    limiter = RateLimiter(read_rate=1, write_rate=1, burst_seconds=2.0, clock=lambda: now[0])
    key = _key()
    write = limiter.limit(key, write=True)
    read = limiter.limit(key, write=False)
    assert write is not None and read is not None
    assert [limiter.take(key.client, write, True).allowed for _ in range(3)] == [True, True, False]
    assert limiter.take(key.client, read, False).allowed  # the writes took none of these
    now[0] = 1.0
    assert limiter.take(key.client, write, True).allowed  # the clock refills


def test_rate_settings_from_the_environment() -> None:
    defaults = Settings.from_env({}).auth
    assert (defaults.read_rate, defaults.write_rate, defaults.burst_seconds) == (5_000, 200, 2)
    split = Settings.from_env(
        {
            "MDM_RATE_LIMIT_READ": "800",
            "MDM_RATE_LIMIT_WRITE": "20",
            "MDM_RATE_BURST_SECONDS": "5",
        }
    ).auth
    assert (split.read_rate, split.write_rate, split.burst_seconds) == (800, 20, 5)
    # MDM_RATE_LIMIT sets both where the specific one is unset; with MDM_RATE_BURST
    # it keeps its meaning from before the split: 50/s, bursts of 200 requests.
    legacy = Settings.from_env({"MDM_RATE_LIMIT": "50", "MDM_RATE_BURST": "200"}).auth
    assert (legacy.read_rate, legacy.write_rate) == (50, 50)
    assert Limit.of(legacy.read_rate, legacy.burst_seconds) == Limit(rate=50, burst=200)
    mixed = Settings.from_env({"MDM_RATE_LIMIT": "0", "MDM_RATE_LIMIT_WRITE": "10"}).auth
    assert (mixed.read_rate, mixed.write_rate) == (0, 10)
    for wrong in (
        {"MDM_RATE_BURST": "200"},  # a burst in requests of which rate?
        {"MDM_RATE_LIMIT_READ": "-1"},
        {"MDM_RATE_LIMIT_WRITE": "inf"},
        {"MDM_RATE_BURST_SECONDS": "0"},
    ):
        with pytest.raises(ValueError):
            Settings.from_env(wrong)
