"""The `mdm` command: serve, migrate, load, train, rematch, relay, events replay, demo,
schemas."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mdm.domain.sources import ENTITIES
from mdm.settings import Settings

if TYPE_CHECKING:
    from mdm.services.adoption import Adoption
    from publishers.replay import ReplayResult

log = logging.getLogger("mdm")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    api = settings.api
    if getattr(args, "host", None):
        api = dataclasses.replace(api, host=args.host)
    if getattr(args, "port", None):
        api = dataclasses.replace(api, port=args.port)
    data_dir = Path(args.data_dir) if getattr(args, "data_dir", None) else settings.data_dir
    return dataclasses.replace(settings, api=api, data_dir=data_dir)


async def _migrate(database_url: str) -> None:
    from mdm.adapters.migrate import upgrade
    from mdm.bootstrap import make_engine

    engine = make_engine(database_url, pool_size=1)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mdm.api.app import create_app
    from mdm.bootstrap import resolve_services

    configured = _settings(args)
    if configured.database.url is None:
        configured = _development_admin_key(configured)
    elif problem := asyncio.run(_missing_credentials(configured)):
        print(f"mdm serve: {problem}", file=sys.stderr)
        return 2
    settings, embedded = resolve_services(configured)
    relay: subprocess.Popen[bytes] | None = None
    settings, run_dir = _with_relay_metrics_socket(settings)
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again with
    # the handler it found: with the default one the process dies on the spot and
    # the embedded servers below are never stopped. Exit through `finally` instead.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if embedded is not None and embedded.postgres is not None:
            asyncio.run(_migrate(settings.database.url or ""))
        log.info(
            "serving the hub on http://%s:%s with %d worker(s) (OpenAPI at /schema)",
            settings.api.host,
            settings.api.port,
            args.workers,
        )
        relay = _start_relay(settings) if settings.relay.enabled else None
        common: dict[str, Any] = {
            "host": settings.api.host,
            "port": settings.api.port,
            "log_level": settings.log_level.lower(),
            "access_log": False,
        }
        if args.workers > 1:
            # Worker processes build their own app from the environment, so hand
            # them the resolved (possibly embedded) service addresses.
            os.environ["MDM_DATABASE_URL"] = settings.database.url or ""
            os.environ["MDM_NATS_URL"] = settings.nats.url or ""
            os.environ["MDM_ADMIN_KEY"] = settings.auth.admin_key or ""
            if settings.relay.mode == "process":  # one relay for all the workers
                os.environ["MDM_RELAY"] = "0"
            if settings.relay.metrics_socket:  # where each worker's /metrics reads it
                os.environ["MDM_RELAY_METRICS_SOCKET"] = settings.relay.metrics_socket
            uvicorn.run("mdm.api.app:app_from_env", factory=True, workers=args.workers, **common)
        else:
            uvicorn.run(create_app(settings, own_process=True), **common)
    finally:
        if relay is not None:
            _stop_relay(relay)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()
    return 0


def _with_relay_metrics_socket(settings: Settings) -> tuple[Settings, Path | None]:
    """Where the relay child answers the hub's /metrics with its own metrics
    (publishers/metrics.py): MDM_RELAY_METRICS_SOCKET, or a socket in a new private
    directory, answered with that directory for removal at exit."""
    relay = settings.relay
    if not relay.enabled or relay.mode != "process" or relay.metrics_socket:
        return settings, None
    run_dir = Path(tempfile.mkdtemp(prefix="mdm-relay-"))
    relay = dataclasses.replace(relay, metrics_socket=str(run_dir / "metrics.sock"))
    return dataclasses.replace(settings, relay=relay), run_dir


def _start_relay(settings: Settings) -> subprocess.Popen[bytes] | None:
    """`mdm relay` beside the API (relay mode "process"): publishing then never competes
    with requests for the API's event loop. Inline mode runs it inside the app."""
    if settings.relay.mode != "process":
        return None
    env = {
        **os.environ,
        "MDM_DATABASE_URL": settings.database.url or "",
        "MDM_NATS_URL": settings.nats.url or "",
        "MDM_RELAY_METRICS_SOCKET": settings.relay.metrics_socket or "",
    }
    log.info("starting the outbox relay as a child process")
    return subprocess.Popen([sys.executable, "-m", "mdm.cli", "relay"], env=env)


def _stop_relay(relay: subprocess.Popen[bytes]) -> None:
    if relay.poll() is None:
        relay.terminate()  # it drains: the round in hand is published and marked
        try:
            relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()


def _development_admin_key(settings: Settings) -> Settings:
    """Embedded mode: MDM_ADMIN_KEY, or a new development admin key printed once here."""
    if settings.auth.admin_key:
        log.info("embedded mode: the admin key is the one in MDM_ADMIN_KEY")
        return settings
    import secrets

    key = "mdm_dev_" + secrets.token_urlsafe(24)
    print(
        "\nDevelopment admin key (valid while this process runs; set MDM_ADMIN_KEY to choose one):"
        f"\n\n    X-API-Key: {key}\n",
        flush=True,
    )
    return dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, admin_key=key))


async def _missing_credentials(settings: Settings) -> str | None:
    from mdm.api.auth import missing_credentials
    from mdm.bootstrap import make_engine

    engine = make_engine(settings.database.url or "", pool_size=1)
    try:
        return await missing_credentials(engine, settings.auth)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _database_only(args: argparse.Namespace) -> Iterator[Settings]:
    """The settings of a command that needs PostgreSQL and no NATS (migrate, train,
    rematch, load): the database resolved (embedded when none is configured) and
    migrated; an embedded server stopped on the way out."""
    from mdm.bootstrap import resolve_services

    settings = _settings(args)
    settings, embedded = resolve_services(
        dataclasses.replace(settings, nats=dataclasses.replace(settings.nats, url="unused"))
    )
    try:
        asyncio.run(_migrate(settings.database.url or ""))
        yield settings
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    with _database_only(args):
        return 0


async def _train(settings: Settings, entity: str, sample: int, seed: int, force: bool) -> Adoption:
    """Fit, check and store the entity's model (mdm/services/adoption.py); say what happened."""
    from mdm.bootstrap import wired
    from mdm.services.adoption import train_and_adopt

    async with wired(settings) as wiring, wiring.units.transaction() as uow:
        done = await train_and_adopt(
            uow, wiring.rules, entity, sample=sample, seed=seed, force=force
        )
    print(_adoption_text(done), flush=True)
    return done


def _adoption_text(done: Adoption) -> str:
    b, a = done.current, done.fitted
    compared = (
        f"against version {done.current_version} on {b.link + b.review + b.apart:,} candidate "
        f"pairs: links {b.link:,} -> {a.link:,}, review {b.review:,} -> {a.review:,}, "
        f"apart {b.apart:,} -> {a.apart:,}"
    )
    head = (
        f"{done.entity} model version {done.version}: trained on {done.records:,} records, "
        f"prior {done.prior:.3g}; {compared}"
    )
    if not done.adopted:
        return (
            f"{head}\nrefused, version {done.current_version} stays in force: "
            f"{'; '.join(done.reasons)} (--force adopts it anyway)"
        )
    if done.forced:
        return f"{head}\nadopted though the check refused it (--force): {'; '.join(done.reasons)}"
    return f"{head}\nadopted; hubs use it within seconds"


async def _train_and_rematch(
    settings: Settings, entity: str, sample: int, seed: int, force: bool, rematch: bool
) -> None:
    done = await _train(settings, entity, sample, seed, force)
    if done.adopted and rematch:
        await _rematch(settings, entity, chunk=500, quiet=True)


def cmd_train(args: argparse.Namespace) -> int:
    from mdm.domain.errors import Conflict

    try:
        with _database_only(args) as settings:
            asyncio.run(
                _train_and_rematch(
                    settings, args.entity, args.sample, args.seed, args.force, not args.no_rematch
                )
            )
    except ValueError as exc:
        print(f"mdm train: {exc}", file=sys.stderr)
        return 2
    except Conflict as exc:  # a re-matching run of the entity is at work already
        print(f"mdm train: not re-matched: {exc}", file=sys.stderr)
    return 0


def _progress_bar(label: str, *fields: str, quiet: bool) -> Any:
    """A long command's progress bar (rich): the label, the bar, done of total, `fields`
    (rich format strings of the task's fields), time spent and time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f) for f in fields),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
    )


async def _rematch(settings: Settings, entity: str, chunk: int, quiet: bool) -> None:
    from mdm.bootstrap import wired
    from mdm.services.rematch import Rematch

    async with wired(settings, pool_size=2) as wiring:
        run = await Rematch.claim(wiring.units, wiring.rules, entity)
        state = run.state
        print(
            f"{'continuing' if run.resumed else 'starting'} re-matching run {state.id} of "
            f"{state.total:,} {entity} golden records under model version "
            f"{state.model_version}",
            flush=True,
        )
        with _progress_bar(f"rematch {entity}", quiet=quiet) as bar:
            task = bar.add_task("rematch", total=state.total)
            final = await run.run(
                chunk, lambda done, total: bar.update(task, completed=done, total=total)
            )
    print(
        f"run {final.id}: merged {final.merged:,}, review tasks opened {final.reviews:,}, "
        f"withdrawn {final.withdrawn:,}"
    )


def cmd_rematch(args: argparse.Namespace) -> int:
    from mdm.domain.errors import Conflict

    try:
        with _database_only(args) as settings:
            asyncio.run(_rematch(settings, args.entity, args.chunk, args.quiet))
    except Conflict as exc:
        print(f"mdm rematch: {exc}", file=sys.stderr)
        return 1
    return 0


async def _load(
    settings: Settings, args: argparse.Namespace, total: int | None, out: TextIO
) -> tuple[int, int]:
    """Load `args.file` into the database of the (resolved) `settings`; the exit code and
    the records written."""
    from mdm.adapters.bulk import bulk_load
    from mdm.adapters.bulk_files import detect_format, incoming_ids, read_rows
    from mdm.bootstrap import wired

    path = Path(args.file)
    fmt = args.format or detect_format(path)
    began = time.perf_counter()
    async with wired(settings) as wiring:
        with _progress_bar(
            f"{args.source} {args.entity}", "{task.fields[rate]}", quiet=args.quiet
        ) as bar:
            task = bar.add_task("load", total=total, rate="")

            def advance(n: int) -> None:
                done = bar.tasks[0].completed + n
                rate = done / max(time.perf_counter() - began, 1e-9)
                bar.update(task, advance=n, rate=f"{rate:,.0f} records/s")

            report = await bulk_load(
                wiring.engine,
                wiring.rules,
                args.entity,
                args.source,
                read_rows(path, fmt, args.id_column),
                chunk_size=args.chunk,
                rejects=out,
                progress=advance,
                processes=args.processes,
                incoming=incoming_ids(path, fmt, args.id_column),
            )
    seconds = time.perf_counter() - began
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(report.outcomes.items())) or "none"
    if report.primed:
        print(
            f"read the {report.primed:,} {args.entity} records already stored into memory "
            f"in {report.primed_seconds:,.1f} s"
        )
    print(
        f"read {report.read:,} in {seconds:,.1f} s ({report.read / max(seconds, 1e-9):,.0f}/s): "
        f"{outcomes}; already stored {report.skipped:,}; rejected {report.rejected:,}"
        + (f" (see {out.name})" if report.rejected else "")
    )
    return (1 if report.rejected and not report.written and not report.skipped else 0), (
        report.written
    )


def cmd_load(args: argparse.Namespace) -> int:
    from mdm.adapters.bulk_files import count_rows, detect_format
    from mdm.bootstrap import resolve_services
    from mdm.domain.errors import MdmError

    settings = _settings(args)
    settings, embedded = resolve_services(
        dataclasses.replace(settings, nats=dataclasses.replace(settings.nats, url="unused"))
    )
    path = Path(args.file)
    rejects = Path(args.rejects) if args.rejects else path.with_name(path.name + ".rejects.ndjson")
    try:
        try:
            total = count_rows(path, args.format or detect_format(path))
            asyncio.run(_migrate(settings.database.url or ""))
            with rejects.open("w") as out:
                code, written = asyncio.run(_load(settings, args, total, out))
                empty = out.tell() == 0
            if empty:
                rejects.unlink()
        except (ValueError, OSError, MdmError) as exc:
            print(f"mdm load: {exc}", file=sys.stderr)
            return 2
        if written and not args.no_train:
            try:
                asyncio.run(_train_and_rematch(settings, args.entity, 200_000, 0, False, True))
            except (ValueError, MdmError) as exc:  # too few records, a run at work already
                print(f"mdm load: loaded; not trained and re-matched: {exc}", file=sys.stderr)
        return code
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    from mdm.bootstrap import resolve_services
    from mdm.demo import run_demo

    settings, embedded = resolve_services(_settings(args))
    try:
        asyncio.run(_migrate(settings.database.url or ""))
        asyncio.run(run_demo(settings, sys.stdout))
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


async def _relay(settings: Settings) -> None:
    from mdm.bootstrap import wired
    from publishers.commands import run_relay

    assert settings.nats.url is not None
    async with wired(settings, pool_size=2) as wiring:
        await run_relay(wiring.engine, settings.nats.url, settings.relay)


def cmd_relay(args: argparse.Namespace) -> int:
    from mdm.bootstrap import resolve_services

    settings, embedded = resolve_services(_settings(args))
    try:
        if embedded is not None and embedded.postgres is not None:
            asyncio.run(_migrate(settings.database.url or ""))
        asyncio.run(_relay(settings))
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _timestamp(value: str) -> dt.datetime:
    """RFC 3339 / ISO 8601; a time without an offset is taken as UTC."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def _replay(settings: Settings, args: argparse.Namespace) -> ReplayResult:
    from mdm.bootstrap import wired
    from publishers.commands import run_replay

    assert settings.nats.url is not None
    async with wired(settings) as wiring:
        return await run_replay(
            wiring.engine,
            settings.nats.url,
            settings.relay,
            args.entity,
            args.since,
            args.until,
            args.golden_id,
        )


def cmd_events_replay(args: argparse.Namespace) -> int:
    from mdm.bootstrap import resolve_services

    settings, embedded = resolve_services(_settings(args))
    try:
        result = asyncio.run(_replay(settings, args))
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"replay {result.replay_id}: re-published {result.published} event(s)")
    return 0


async def _keys(url: str, args: argparse.Namespace) -> int:
    from mdm.adapters.keys import KeyStore
    from mdm.bootstrap import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            store = KeyStore(conn)
            if args.keys_command == "create":
                name = args.name or (f"{args.source} {args.role}" if args.source else args.role)
                read_rate = args.read_rate if args.read_rate is not None else args.rate
                write_rate = args.write_rate if args.write_rate is not None else args.rate
                stored, key = await store.create(
                    args.role, name, args.source, args.sensitive, read_rate, write_rate
                )
                print(
                    f"created {stored.key_id} ({stored.role}"
                    + (f", source {stored.source}" if stored.source else "")
                    + (", sensitive" if stored.sensitive else "")
                    + f", {_rates(stored.read_rate, stored.write_rate)}"
                    + f"): {stored.name}"
                )
                print("the key is shown once; send it as the X-API-Key header:")
                print(key)
            elif args.keys_command == "list":
                for k in await store.list(include_revoked=args.all):
                    state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "live"
                    print(
                        f"{k.key_id}\t{k.role}\t{k.source or '-'}\t"
                        f"{'sensitive' if k.sensitive else '-'}\t"
                        f"{_rates(k.read_rate, k.write_rate)}\t{state}\t"
                        f"{k.created_at:%Y-%m-%d %H:%M}\t{k.name}"
                    )
            elif not await store.revoke(args.key_id):
                print(f"mdm keys revoke: no live key {args.key_id!r}", file=sys.stderr)
                return 1
            else:
                print(f"revoked {args.key_id}")
    finally:
        await engine.dispose()
    return 0


def _rates(read: float | None, write: float | None) -> str:
    """A key's own rates as `mdm keys` shows them: `read 20/s write default`."""

    def shown(rate: float | None) -> str:
        if rate is None:
            return "default"
        return "unlimited" if rate == 0 else f"{rate:g}/s"

    return f"read {shown(read)} write {shown(write)}"


def _rate(text: str) -> float:
    """An argparse type: requests per second, a number >= 0 (0: unlimited)."""
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate >= 0):
        raise argparse.ArgumentTypeError(f"not a rate (requests per second >= 0): {text!r}")
    return rate


def cmd_keys(args: argparse.Namespace) -> int:
    from mdm.bootstrap import resolve_services

    if args.keys_command == "create" and (args.role == "source") != (args.source is not None):
        print(
            "mdm keys create: --source is needed for, and only for, --role source", file=sys.stderr
        )
        return 2
    settings = _settings(args)
    if args.keys_command == "create" and args.source is not None:
        from mdm.settings import load_sources

        known = load_sources(settings.sources_file).systems
        if args.source not in known:
            print(
                f"mdm keys create: unknown source {args.source!r}; one of {', '.join(known)}",
                file=sys.stderr,
            )
            return 2
    settings, embedded = resolve_services(
        dataclasses.replace(settings, nats=dataclasses.replace(settings.nats, url="unused"))
    )
    try:
        if embedded is not None and embedded.postgres is not None:
            asyncio.run(_migrate(settings.database.url or ""))
        return asyncio.run(_keys(settings.database.url or "", args))
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import write_json_schemas

    for path in write_json_schemas(Path(args.out) if args.out else None):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdm", description="The master-data hub.")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            help="where embedded PostgreSQL and NATS keep their data "
            "(default: ./mdm-data, or MDM_DATA_DIR)",
        )

    serve = sub.add_parser("serve", help="run the HTTP API (embedded services if none configured)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, or MDM_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, or MDM_PORT)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (the hub is stateless; default 1)"
    )
    data_dir_option(serve)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    data_dir_option(migrate)
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="load a small sample from four sources and show the result")
    data_dir_option(demo)
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser(
        "train",
        help="fit the entity's match model (m, u, prior) by EM on the records held, compare "
        "it with the model in force and adopt it if plausible; then re-match what is held",
    )
    train.add_argument("entity", choices=ENTITIES)
    train.add_argument(
        "--sample", type=int, default=200_000, help="records to train on (default 200000)"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--force", action="store_true", help="adopt the fitted model even if the check refuses it"
    )
    train.add_argument(
        "--no-rematch",
        action="store_true",
        help="do not re-match the records held when the model is adopted",
    )
    data_dir_option(train)
    train.set_defaults(func=cmd_train)

    rematch = sub.add_parser(
        "rematch",
        help="re-match the golden records held under the entity's current model: merge what "
        "now matches, ask stewards about the review band; resumable",
    )
    rematch.add_argument("entity", choices=ENTITIES)
    rematch.add_argument(
        "--chunk", type=int, default=500, help="golden records per transaction (default 500)"
    )
    rematch.add_argument("--quiet", action="store_true", help="no progress bar")
    data_dir_option(rematch)
    rematch.set_defaults(func=cmd_rematch)

    load = sub.add_parser(
        "load",
        help="bulk-load a source's file of one entity (NDJSON, CSV, Parquet); resumable",
    )
    load.add_argument("file", help="NDJSON batch items, or CSV/Parquet rows (dotted columns)")
    load.add_argument("--source", required=True, help="the source system that sent the file")
    load.add_argument("--entity", required=True, choices=ENTITIES)
    load.add_argument("--format", choices=["ndjson", "csv", "parquet"], help="default: by suffix")
    load.add_argument(
        "--id-column", default="source_id", help="CSV/Parquet column of the source's id"
    )
    load.add_argument("--chunk", type=int, default=1000, help="records per transaction")
    load.add_argument(
        "--processes",
        type=int,
        default=1,
        help="processes preparing the next chunks (standardization, features) while one "
        "matches and writes; 0: all in one process",
    )
    load.add_argument("--rejects", help="where refused records go (default: FILE.rejects.ndjson)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.add_argument(
        "--no-train",
        action="store_true",
        help="do not train, check and adopt the model and re-match after the load",
    )
    data_dir_option(load)
    load.set_defaults(func=cmd_load)

    relay = sub.add_parser(
        "relay", help="publish the outbox to NATS JetStream until SIGTERM (mdm serve runs one too)"
    )
    data_dir_option(relay)
    relay.set_defaults(func=cmd_relay)

    events = sub.add_parser("events", help="work with published events")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    replay = events_sub.add_parser(
        "replay",
        help="re-publish kept outbox events (same event ids, a new delivery; docs/events.md)",
    )
    replay.add_argument("--entity", required=True, choices=ENTITIES)
    replay.add_argument(
        "--since", required=True, type=_timestamp, help="events that occurred at or after this"
    )
    replay.add_argument("--until", type=_timestamp, help="... and before this (default: now)")
    replay.add_argument("--golden-id", help="only this golden record's events")
    data_dir_option(replay)
    replay.set_defaults(func=cmd_events_replay)

    keys = sub.add_parser("keys", help="API keys: create, list, revoke (docs/security.md)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--role", required=True, choices=["admin", "steward", "reader", "source"])
    create.add_argument("--source", help="the source system a `source` key writes for")
    create.add_argument("--name", help="who or what holds it (recorded as the actor)")
    create.add_argument(
        "--sensitive",
        action="store_true",
        help="may read sensitive attributes unmasked (admin keys always may)",
    )
    create.add_argument(
        "--read-rate",
        type=_rate,
        metavar="N",
        help="this key's reads per second, in place of MDM_RATE_LIMIT_READ (0: unlimited)",
    )
    create.add_argument(
        "--write-rate",
        type=_rate,
        metavar="N",
        help="this key's writes per second, in place of MDM_RATE_LIMIT_WRITE (0: unlimited)",
    )
    create.add_argument(
        "--rate",
        type=_rate,
        metavar="N",
        help="both at once (--read-rate and --write-rate win over it)",
    )
    data_dir_option(create)
    listing = keys_sub.add_parser("list", help="the live keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="revoked ones too")
    data_dir_option(listing)
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    data_dir_option(revoke)
    keys.set_defaults(func=cmd_keys)

    schemas = sub.add_parser(
        "schemas", help="export the entities' JSON Schema for connector authors"
    )
    schemas.add_argument("--out", help="folder (default: the packaged schemas/json)")
    schemas.set_defaults(func=cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    # pgserver asks platformdirs for a runtime dir it then does not need.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a malformed MDM_* setting: say which, no traceback
        print(f"mdm: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries that narrate every command or request at INFO.
    for noisy in ("pgserver", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
