"""Group commit: concurrent single-record writes gathered into one unit of work.

A PUT or DELETE of one source record costs a transaction of its own: a dozen round
trips (locks, the stored record, key owners, candidates, the golden record, its
history, the outbox) and a commit, for one record. The batch path does the same
round trips for a thousand. `GroupCommit` gives single writes the batch path's
cost: the writes of one entity and source that arrive while the previous group is
running wait, and go together as the next group, up to `max_group` of them.

What each request keeps:

- **its own answer**, its own problem if its record is bad (a record the batch
  path rejects is that request's 422, the others go on), and its own
  Idempotency-Key (claimed in the group's transaction, its response stored there);
- **durability**: a request is answered only after its group has committed;
- **order**: writes are applied in the order they arrived, so two writes to one
  source record in one group end as the later one;
- **isolation from a poison record**: a group whose unit of work fails is split in
  halves, each run again on its own, down to the one write that fails, which gets
  the error; its neighbours commit;
- **its correlation id** in the events its record causes (RequestContext.by_record).

No write waits for a timer: a write that finds no group running starts one at
once, so a lone client sees no added latency; under load, groups grow by
themselves to what arrived during one group's transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from mdm.domain.errors import IdempotencyConflict, ValidationFailed
from mdm.domain.mastering import MasteringRules
from mdm.domain.ports import UnitOfWork
from mdm.services.context import RequestContext
from mdm.services.ingest import delete_record, ingest_records
from mdm.services.ingest.plan import Accepted
from mdm.services.ingest.prepare import IncomingRecord, Rejected

T = TypeVar("T")
log = logging.getLogger("mdm.group_commit")

#: The unit-of-work runner (mdm.domain.ports.Units.run): a transaction, run again
#: from its start when the store aborted it to break a deadlock.
RunUnit = Callable[[Callable[[UnitOfWork], Awaitable[T]]], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A request's Idempotency-Key: its scope (method and path), the key, the body's hash."""

    scope: str
    key: str
    request_hash: bytes


@dataclass(frozen=True, slots=True)
class Answered:
    """What a single write is answered: the status and encoded body, `replayed` when
    they are a stored answer to an earlier request with the same Idempotency-Key,
    and the ingestion outcome to count (None for a replay)."""

    status: int
    body: bytes
    replayed: bool = False
    outcome: str | None = None


@dataclass(slots=True, eq=False)
class SingleWrite:
    """One PUT (`record` set) or DELETE (`record` None) of one source record."""

    source: str
    source_id: str
    record: IncomingRecord | None
    ctx: RequestContext
    #: the response to send for an accepted write: (status, encoded body)
    respond: Callable[[Accepted], tuple[int, bytes]]
    idempotency: IdempotencyClaim | None = None
    future: asyncio.Future[Answered] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Runs the single writes of each (entity, source) in groups, one group at a time
    per (entity, source) in this process; see the module's docstring."""

    def __init__(self, run_unit: RunUnit[object], rules: MasteringRules, max_group: int = 64):
        if max_group < 1:
            raise ValueError("a group holds at least one write")
        self._run_unit = run_unit
        self._rules = rules
        self.max_group = max_group
        self._queues: dict[tuple[str, str], deque[SingleWrite]] = {}
        self._draining: dict[tuple[str, str], asyncio.Task[None]] = {}
        #: sizes of the groups run, for the metrics and the tests
        self.observers: list[Callable[[str, int], None]] = []

    async def submit(self, entity: str, write: SingleWrite) -> Answered:
        """Queue `write`, and wait until its group has committed (or it failed)."""
        key = (entity, write.source)
        self._queues.setdefault(key, deque()).append(write)
        if key not in self._draining:
            self._draining[key] = asyncio.create_task(self._drain(key))
        # A caller that goes away (a client disconnecting) does not stop its group:
        # the write commits with its neighbours, or is skipped if its group has not
        # started yet (the future is then cancelled).
        return await write.future

    async def stop(self) -> None:
        """Wait for the groups queued or running (at shutdown, before the engine goes)."""
        while self._draining:
            await asyncio.gather(*self._draining.values(), return_exceptions=True)

    async def _drain(self, key: tuple[str, str]) -> None:
        queue = self._queues[key]
        try:
            while queue:
                group = self._next_group(queue)
                if group:
                    await self._run(key[0], group)
        except asyncio.CancelledError:
            while queue:  # their callers are answered as cancelled, not left waiting
                queue.popleft().future.cancel()
            raise
        finally:
            # No await between the loop's last check and here: a write queued after
            # it finds no drain running and starts one.
            del self._draining[key]

    def _next_group(self, queue: deque[SingleWrite]) -> list[SingleWrite]:
        """The writes waiting, in order, up to max_group. A write whose Idempotency-Key
        another write of the group holds waits for the next group, where it finds the
        first one's stored answer."""
        group: list[SingleWrite] = []
        keys: set[tuple[str, str]] = set()
        held: list[SingleWrite] = []
        while queue and len(group) < self.max_group:
            write = queue.popleft()
            if write.future.done():  # its caller is gone and its group had not started
                continue
            if write.idempotency is not None:
                claim = (write.idempotency.scope, write.idempotency.key)
                if claim in keys:
                    held.append(write)
                    continue
                keys.add(claim)
            group.append(write)
        queue.extendleft(reversed(held))
        return group

    async def _run(self, entity: str, group: Sequence[SingleWrite]) -> None:
        """One unit of work for `group`; if it fails, each half on its own."""
        for observe in self.observers:
            observe(entity, len(group))
        try:
            answers = await self._run_unit(lambda uow: self._work(uow, entity, group))
        except asyncio.CancelledError:  # the hub is stopping: nothing was committed
            for write in group:
                write.future.cancel()
            raise
        except Exception as exc:  # the group's transaction failed and was rolled back
            if len(group) == 1:
                _settle(group[0], exc)
                return
            log.info(
                "a group of %d %s writes failed (%s: %s); splitting it",
                len(group),
                entity,
                type(exc).__name__,
                exc,
            )
            half = len(group) // 2
            await self._run(entity, group[:half])
            await self._run(entity, group[half:])
            return
        assert isinstance(answers, list)
        for write, answer in zip(group, answers, strict=True):
            _settle(write, answer)

    async def _work(
        self, uow: UnitOfWork, entity: str, group: Sequence[SingleWrite]
    ) -> list[Answered | Exception]:
        """The group's writes in one unit of work; one answer per write, in order.

        Run again from its start when the store aborted the transaction, so it
        keeps nothing between runs."""
        answers: list[Answered | Exception | None] = [None] * len(group)
        todo: list[int] = []
        for i, write in enumerate(group):
            claim = write.idempotency
            if claim is not None:
                stored = await uow.records.claim_idempotency_key(
                    claim.scope, claim.key, claim.request_hash
                )
                if stored is not None:
                    answers[i] = replay(claim, stored)
                    continue
            todo.append(i)

        source = group[0].source
        ctx = _group_context(group)
        start = 0
        while start < len(todo):
            first = group[todo[start]]
            if first.record is None:  # a delete, alone
                deleted = await delete_record(
                    uow, self._rules, entity, source, first.source_id, ctx
                )
                answers[todo[start]] = await _accepted(uow, first, deleted)
                start += 1
                continue
            end = start
            while end < len(todo) and group[todo[end]].record is not None:
                end += 1
            run = todo[start:end]
            records = [r for i in run if (r := group[i].record) is not None]
            results = await ingest_records(uow, self._rules, entity, source, records, ctx)
            for i, result in zip(run, results, strict=True):
                if isinstance(result, Rejected):
                    # This request's 422; its key is released, as a rolled-back
                    # request's would be, so that a corrected retry may use it.
                    claim = group[i].idempotency
                    if claim is not None:
                        await uow.records.release_idempotency_key(claim.scope, claim.key)
                    answers[i] = ValidationFailed("the record is invalid", result.errors)
                else:
                    answers[i] = await _accepted(uow, group[i], result)
            start = end
        assert all(a is not None for a in answers)
        return [a for a in answers if a is not None]


def _group_context(group: Sequence[SingleWrite]) -> RequestContext:
    """One context for the group's unit of work: received when its first write was,
    with each write's own correlation id for the events its record causes."""
    first = group[0].ctx
    return RequestContext(
        correlation_id=first.correlation_id,
        received_at=first.received_at,
        by_record={(w.source, w.source_id): w.ctx.correlation_id for w in group},
    )


async def _accepted(uow: UnitOfWork, write: SingleWrite, result: Accepted) -> Answered:
    status, body = write.respond(result)
    claim = write.idempotency
    if claim is not None:
        await uow.records.store_idempotent_response(claim.scope, claim.key, status, body)
    return Answered(status, body, outcome=result.outcome)


def replay(
    claim: IdempotencyClaim, stored: tuple[bytes, int | None, bytes | None]
) -> Answered | Exception:
    """The stored answer to an earlier request with the same key, or the conflict when
    that request had another body (or has not finished)."""
    stored_hash, status, response = stored
    if stored_hash != claim.request_hash or status is None or response is None:
        return IdempotencyConflict(
            f"Idempotency-Key {claim.key!r} was first used with a different request body"
        )
    return Answered(status, response, replayed=True)


def _settle(write: SingleWrite, answer: Answered | BaseException) -> None:
    if write.future.done():  # its caller went away
        return
    if isinstance(answer, BaseException):
        write.future.set_exception(answer)
    else:
        write.future.set_result(answer)
