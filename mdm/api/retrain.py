"""Retraining as the held records grow: the hub's background check (settings.retrain).

Every `interval` seconds, for each entity whose live records grew by `growth`
since its newest fitted model (or reached `minimum` under the packaged one:
mdm/services/adoption.py `retrain_due`), the hub runs `mdm train ENTITY` as a
child process: fitting and scoring are CPU work that must not hold the API's
event loop. The child fits, checks and adopts or refuses, and re-matches when it
adopts. A session-level advisory lock per entity, held while the child runs,
keeps several hub processes from training one entity at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mdm.adapters.unit_of_work import SqlUnitOfWork
from mdm.api.periodic import Periodic
from mdm.domain.sources import ENTITIES
from mdm.domain.stored import TRAINING_LOCK_CLASS
from mdm.services.adoption import retrain_due
from mdm.settings import Settings

log = logging.getLogger("mdm.retrain")


class Retrainer(Periodic):
    what = "the retraining check"

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        super().__init__(log)
        self.engine = engine
        self.settings = settings

    @property
    def interval(self) -> float:
        return self.settings.retrain.interval

    async def run_once(self) -> list[str]:
        return await self.check()

    async def check(self) -> list[str]:
        """Retrain each entity that is due and not being retrained elsewhere; the entities
        retrained."""
        done = []
        for entity in ENTITIES:
            if await self._check(entity):
                done.append(entity)
        return done

    async def _check(self, entity: str) -> bool:
        # The second key: the entity's position in ENTITIES (RematchStore.locked reads it).
        keys = {"k1": TRAINING_LOCK_CLASS, "k2": ENTITIES.index(entity)}
        policy = self.settings.retrain
        async with self.engine.connect() as conn:
            locked = await conn.execute(text("SELECT pg_try_advisory_lock(:k1, :k2)"), keys)
            if not locked.scalar_one():
                return False
            try:
                await conn.commit()
                due = await retrain_due(SqlUnitOfWork(conn), entity, policy.growth, policy.minimum)
                await conn.commit()
                if due:
                    await self._train(entity)
                return due
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k1, :k2)"), keys)
                await conn.commit()

    async def _train(self, entity: str) -> None:
        s = self.settings
        env = {**os.environ, "MDM_DATABASE_URL": s.database.url or ""}
        for name, path in (
            ("SOURCES_FILE", s.sources_file),
            ("SURVIVORSHIP_FILE", s.survivorship_file),
        ):
            if path is not None:
                env[f"MDM_{name}"] = str(path)
        if s.auth.sensitive_attributes:
            env["MDM_SENSITIVE_ATTRIBUTES"] = ",".join(s.auth.sensitive_attributes)
        log.info("%s records grew since the model was fitted: training", entity)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mdm.cli",
            "train",
            entity,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await child.communicate()
        log.info("mdm train %s (exit %s): %s", entity, child.returncode, out.decode().strip())
