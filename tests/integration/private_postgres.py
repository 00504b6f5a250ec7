"""A PostgreSQL server of the test's own (initdb + pg_ctl in a temporary folder, on a
free TCP port) that the test may stop and start: the machine's shared server must
never be restarted. Runs the server as the `postgres` system user when the tests run
as root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import free_port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1])


class PrivatePostgres:
    """`start()`, `stop()` (fast shutdown: open connections are cut), `start()` again:
    same port and data, so a client's URL stays valid across the restart."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        # Short path: the Unix socket lives here too (~107 bytes at most).
        self.dir = Path(tempfile.mkdtemp(prefix="mdmpg-", dir="/tmp"))
        self.data = self.dir / "data"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The maintenance database, as a SQLAlchemy asyncpg URL."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}\n{result.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: every session is terminated, open transactions roll back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
