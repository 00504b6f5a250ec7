"""The relay's and the subscriber helper's decisions, without servers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from mdm.settings import RelaySettings, Settings, parse_duration
from publishers.outbox import OutboxRow, _contiguous
from publishers.relay import Relay
from publishers.state import MemoryStateStore, Verdict
from publishers.subscriber import Outcome, Subscriber, SubscriberConfig
from schemas.events import Causation, Event, GoldenPayload

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def event(golden_id: str = "cus_1", version: int = 1, event_id: str | None = None) -> Event:
    return Event(
        event_id=event_id or f"{golden_id}-v{version}",
        type="golden.created" if version == 1 else "golden.updated",
        entity="customer",
        golden_id=golden_id,
        version=version,
        occurred_at=NOW,
        correlation_id="c",
        causation=Causation(kind="system"),
        payload=GoldenPayload(status="active", attributes={"name": "Acme"}, changed=[], xrefs=[]),
    )


def row(id: int, golden_id: str, version: int) -> OutboxRow:
    return OutboxRow(id, f"e{id}", "customer", "golden.updated", golden_id, version, NOW, "{}")


# -- claiming --------------------------------------------------------------------------


def test_tails_follow_their_head_only_without_a_gap() -> None:
    heads = [row(1, "a", 1), row(2, "b", 4)]
    tails = [row(5, "a", 2), row(6, "a", 3), row(7, "b", 6), row(8, "b", 7), row(9, "c", 2)]
    rows = _contiguous(heads, tails)
    # b's version 5 was not locked by this relay, so 6 and 7 wait; c has no head here.
    assert [(r.golden_id, r.version) for r in rows] == [("a", 1), ("b", 4), ("a", 2), ("a", 3)]


# -- settings ---------------------------------------------------------------------------


def test_durations_read_with_units() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("15m") == 900
    assert parse_duration("2h") == 7200
    assert parse_duration("7d") == 7 * 86400


def test_relay_settings_from_env() -> None:
    relay = Settings.from_env(
        {
            "MDM_RELAY": "0",
            "MDM_STREAM": "HUB",
            "MDM_SUBJECT_PREFIX": "hub",
            "MDM_STREAM_DUPLICATE_WINDOW": "30m",
            "MDM_OUTBOX_RETENTION": "2d",
            "MDM_RELAY_METRICS_SOCKET": "/run/mdm/relay.sock",
        }
    ).relay
    assert (relay.enabled, relay.stream, relay.subject_prefix) == (False, "HUB", "hub")
    assert relay.duplicate_window == 1800 and relay.outbox_retention == 2 * 86400
    assert relay.metrics_socket == "/run/mdm/relay.sock"
    assert Settings.from_env({}).relay.enabled is True


def test_the_duplicate_window_must_outlast_the_retry_horizon() -> None:
    with pytest.raises(ValueError, match="duplicate window"):
        RelaySettings(duplicate_window=30, max_backoff=15, publish_timeout=5)
    with pytest.raises(ValueError, match="max age"):
        RelaySettings(duplicate_window=3600, stream_max_age=600)


def test_relay_backoff_grows_and_is_capped() -> None:
    relay = Relay(None, None, RelaySettings(max_backoff=2.0))  # type: ignore[arg-type]
    assert 0.05 <= relay._backoff(0) <= 0.1
    assert all(relay._backoff(n) <= 2.0 for n in range(1, 40))
    assert relay._backoff(30) >= 1.0


# -- subscriber state -----------------------------------------------------------------------


async def test_memory_store_sees_duplicates_and_stale_versions() -> None:
    store = MemoryStateStore()
    async with store.unit() as unit:
        assert await unit.verdict(event(version=2)) is Verdict.NEW
        await unit.remember(event(version=2))
    async with store.unit() as unit:
        assert await unit.verdict(event(version=2)) is Verdict.DUPLICATE
        assert await unit.verdict(event(version=1)) is Verdict.STALE
        assert await unit.verdict(event(version=3)) is Verdict.NEW
        assert await unit.verdict(event("cus_2", 1)) is Verdict.NEW


async def test_memory_store_forgets_what_a_failed_unit_remembered() -> None:
    store = MemoryStateStore()
    with pytest.raises(RuntimeError):
        async with store.unit() as unit:
            await unit.remember(event())
            raise RuntimeError
    async with store.unit() as unit:
        assert await unit.verdict(event()) is Verdict.NEW


# -- subscriber decisions, on fake messages ----------------------------------------------------


@dataclass
class FakeMsg:
    data: bytes
    num_delivered: int = 1
    subject: str = "mdm.customer.golden.created"
    calls: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(num_delivered=self.num_delivered, sequence=SimpleNamespace(stream=7))

    async def ack(self) -> None:
        self.calls.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.calls.append(("nak", delay))

    async def term(self) -> None:
        self.calls.append(("term", None))


class FakeJetStream:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail = fail

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        if self.fail:
            raise ConnectionError("NATS down")
        self.published.append((subject, payload, headers))


def subscriber(handler: Any, js: FakeJetStream | None = None, **config: Any) -> Subscriber:
    options: dict[str, Any] = {"durable": "erp", "max_attempts": 3, "backoff": (1.0, 4.0)}
    options.update(config)
    return Subscriber(
        js or FakeJetStream(), MemoryStateStore(), handler, SubscriberConfig(**options)
    )  # type: ignore[arg-type]


def msg(e: Event, attempt: int = 1) -> FakeMsg:
    return FakeMsg(msgspec.json.encode(e), attempt)


async def test_an_event_is_applied_once_then_acked_as_duplicate_or_stale() -> None:
    applied: list[str] = []

    async def handler(e: Event, _unit: object) -> None:
        applied.append(e.event_id)

    sub = subscriber(handler)
    first, again, older = msg(event(version=2)), msg(event(version=2)), msg(event(version=1))
    assert await sub.handle(first) is Outcome.APPLIED  # type: ignore[arg-type]
    assert await sub.handle(again) is Outcome.DUPLICATE  # type: ignore[arg-type]
    assert await sub.handle(older) is Outcome.STALE  # type: ignore[arg-type]
    assert applied == ["cus_1-v2"]
    assert [m.calls for m in (first, again, older)] == [[("ack", None)]] * 3


async def test_unhandled_types_are_acked_without_the_handler() -> None:
    async def handler(_e: Event, _unit: object) -> None:
        raise AssertionError("not for me")

    sub = subscriber(handler, types={"golden.updated"})
    m = msg(event(version=1))
    assert await sub.handle(m) is Outcome.IGNORED  # type: ignore[arg-type]
    assert m.calls == [("ack", None)]


async def test_an_event_type_newer_than_the_code_is_ignored_when_types_are_chosen() -> None:
    async def handler(_e: Event, _unit: object) -> None:
        raise AssertionError("not for me")

    future = msgspec.json.encode({**msgspec.to_builtins(event()), "type": "golden.split3"})
    sub = subscriber(handler, types={"golden.created"})
    m = FakeMsg(future)
    assert await sub.handle(m) is Outcome.IGNORED  # type: ignore[arg-type]
    assert m.calls == [("ack", None)]


async def test_failures_nak_with_growing_delay_then_dead_letter() -> None:
    async def handler(_e: Event, _unit: object) -> None:
        raise ValueError("ERP says no")

    js = FakeJetStream()
    sub = subscriber(handler, js)
    attempts = [msg(event(), attempt=n) for n in (1, 2, 3)]
    outcomes = [await sub.handle(m) for m in attempts]  # type: ignore[arg-type]
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD_LETTERED]
    assert attempts[0].calls == [("nak", 1.0)]
    assert attempts[1].calls == [("nak", 4.0)]
    assert attempts[2].calls == [("term", None)]
    ((subject, payload, headers),) = js.published
    assert subject == "dlq.MDM.erp"
    assert payload == attempts[2].data
    assert headers["Nats-Msg-Id"] == "cus_1-v1:dlq:erp"
    assert headers["Mdm-Attempts"] == "3" and "ERP says no" in headers["Mdm-Error"]
    # Nothing was remembered: a fixed handler could still apply it from a replay.
    async with sub.store.unit() as unit:
        assert await unit.verdict(event()) is Verdict.NEW


async def test_undecodable_messages_go_straight_to_the_dead_letter_subject() -> None:
    async def handler(_e: Event, _unit: object) -> None:
        raise AssertionError("never called")

    js = FakeJetStream()
    sub = subscriber(handler, js)
    m = FakeMsg(b'{"event_id": 1}')
    assert await sub.handle(m) is Outcome.DEAD_LETTERED  # type: ignore[arg-type]
    assert m.calls == [("term", None)]
    assert js.published[0][2]["Nats-Msg-Id"] == "seq-7:dlq:erp"


async def test_when_the_dead_letter_publish_fails_the_message_comes_back_later() -> None:
    async def handler(_e: Event, _unit: object) -> None:
        raise ValueError

    sub = subscriber(handler, FakeJetStream(fail=True))
    m = msg(event(), attempt=3)
    assert await sub.handle(m) is Outcome.RETRY  # type: ignore[arg-type]
    assert m.calls == [("nak", 4.0)]


async def test_the_run_loop_survives_fetch_timeouts_of_either_kind() -> None:
    import nats.errors

    applied: list[str] = []

    async def handler(e: Event, _unit: object) -> None:
        applied.append(e.event_id)

    sub = subscriber(handler)
    replies: list[Any] = [TimeoutError(), nats.errors.TimeoutError(), [msg(event())]]

    class FakeSubscription:
        async def fetch(self, batch: int, timeout: float) -> list[Any]:
            reply = replies.pop(0) if replies else None
            if reply is None:
                sub.request_stop()
                return []
            if isinstance(reply, BaseException):
                raise reply
            return reply

    sub._sub = FakeSubscription()  # type: ignore[assignment]
    await sub.run()
    assert applied == ["cus_1-v1"]
