"""Which database errors are an outage (503, retry) and which a bug (500)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from mdm.api.problems import database_unavailable


class _DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: the driver's error with its SQLSTATE."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [
        ("57P03", True),  # the database system is shutting down / starting up
        ("57P01", True),  # terminating connection due to administrator command
        ("57P02", True),  # crash shutdown
        ("53300", True),  # too many connections
        ("08006", True),  # connection failure
        ("08001", True),  # unable to connect
        ("23505", False),  # a unique violation is the hub's bug, not an outage
        ("42P01", False),  # undefined table
        (None, False),
    ],
)
def test_sqlstate_decides_between_503_and_500(sqlstate: str | None, outage: bool) -> None:
    error = DBAPIError("SELECT 1", None, _DriverError(sqlstate))
    assert database_unavailable(error) is outage


def test_an_invalidated_connection_is_an_outage_whatever_the_state() -> None:
    error = DBAPIError("SELECT 1", None, _DriverError(None), connection_invalidated=True)
    assert database_unavailable(error)
    assert not database_unavailable(IntegrityError("INSERT", None, _DriverError("23505")))
    assert database_unavailable(ConnectionRefusedError())
    assert not database_unavailable(ValueError())


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (asyncpg.CannotConnectNowError("the database system is shutting down"), True),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.DataError("invalid input"), False),
    ],
)
def test_asyncpg_errors_unwrapped_are_told_apart_too(exc: Exception, outage: bool) -> None:
    """The lookup path talks to asyncpg without SQLAlchemy: a server starting up or
    shutting down answers 503 there too (a restart under load found a 500)."""
    assert database_unavailable(exc) is outage
