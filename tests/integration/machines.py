"""Running a Hypothesis state machine whose rules talk to PostgreSQL: one event loop
(asyncio.Runner) and one engine for the whole run, handed to the machine class."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings

from mdm.bootstrap import make_engine


async def _engine(url: str) -> Any:
    return make_engine(url, pool_size=2)


def run_machine(machine: Any, database_url: str, max_examples: int, steps: int) -> None:
    """Run `machine` (a RuleBasedStateMachine with `runner` and `engine` class slots)."""
    runner = asyncio.Runner()
    try:
        machine.runner = runner
        machine.engine = runner.run(_engine(database_url))
        case = machine.TestCase
        case.settings = settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        case().runTest()
    finally:
        runner.run(machine.engine.dispose())
        runner.close()
