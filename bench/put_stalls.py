"""What each slow paced PUT waited for: the requests of `load_test.py --put-trace`
laid beside PostgreSQL's log of slow statements.

Slow requests (over `--over` ms) that overlap or follow one another within 200 ms
are one episode. For each episode the script lists the statements PostgreSQL logged
as slow (`log_min_duration_statement`) that ran during it, and names the episode by
the longest of them: a count of the live records, a COMMIT (the WAL's fsync), a
candidate read, another statement, or none (the wait was not in one statement
PostgreSQL logged). A summary counts the episodes and their requests by that name.

PostgreSQL must log with a time stamp first (`log_line_prefix` starting `%m`, the
Debian default) and slow statements at least:

    ALTER SYSTEM SET log_min_duration_statement = 100;  -- then SELECT pg_reload_conf()

    python bench/load_test.py --database NAME --writes-only --put-rates 40 \\
        --put-step-seconds 600 --put-trace puts.csv
    python bench/put_stalls.py puts.csv /var/log/postgresql/postgresql-15-main.log
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field

#: a log line's time stamp (%m: milliseconds, the zone's name) and the rest
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\S+) (.*)$")
DURATION = re.compile(
    r"duration: ([0-9.]+) ms\s+(?:execute [^:]*|statement|parse [^:]*|bind [^:]*): (.*)"
)
#: an episode's name by its longest statement's text
KINDS = (
    ("count of live records", re.compile(r"SELECT count\(\*\)", re.I)),
    ("COMMIT", re.compile(r"^\s*COMMIT", re.I)),
    ("candidate read", re.compile(r"FROM unnest\(\$1::text\[\]\) AS k\(key\)", re.I)),
)


@dataclass
class Statement:
    ended: dt.datetime
    ms: float
    text: str

    @property
    def began(self) -> dt.datetime:
        return self.ended - dt.timedelta(milliseconds=self.ms)

    @property
    def kind(self) -> str:
        for name, pattern in KINDS:
            if pattern.search(self.text):
                return name
        return "other statement"


@dataclass
class Episode:
    began: dt.datetime
    ended: dt.datetime
    latencies: list[float] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if not self.statements:
            return "no slow statement"
        return max(self.statements, key=lambda s: s.ms).kind


def read_trace(path: str) -> list[tuple[dt.datetime, float, str]]:
    with open(path, newline="") as f:
        return [
            (dt.datetime.fromisoformat(row["due_utc"]), float(row["latency_ms"]), row["outcome"])
            for row in csv.DictReader(f)
        ]


def read_log(path: str, since: dt.datetime, until: dt.datetime) -> list[Statement]:
    """The slow statements PostgreSQL logged between `since` and `until` (its lines
    are read in the time zone of the trace, UTC; a statement's text may run on over
    the lines that follow)."""
    found: list[Statement] = []
    current: Statement | None = None
    with open(path, errors="replace") as f:
        for line in f:
            head = LINE.match(line)
            if head is None:
                if current is not None and line.startswith("\t"):
                    current.text += " " + line.strip()
                continue
            current = None
            stamp = dt.datetime.fromisoformat(head.group(1)).replace(tzinfo=dt.UTC)
            if not since <= stamp <= until:
                continue
            duration = DURATION.search(head.group(3))
            if duration is not None:
                current = Statement(stamp, float(duration.group(1)), duration.group(2))
                found.append(current)
    return found


def episodes(
    trace: list[tuple[dt.datetime, float, str]], over: float, log: list[Statement]
) -> list[Episode]:
    out: list[Episode] = []
    for due, ms, _ in sorted(trace):
        if ms <= over:
            continue
        answered = due + dt.timedelta(milliseconds=ms)
        if out and due <= out[-1].ended + dt.timedelta(milliseconds=200):
            out[-1].ended = max(out[-1].ended, answered)
        else:
            out.append(Episode(due, answered))
        out[-1].latencies.append(ms)
    for episode in out:
        episode.statements = [
            s for s in log if s.began <= episode.ended and s.ended >= episode.began
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", help="the CSV of load_test.py --put-trace")
    parser.add_argument("log", help="PostgreSQL's log")
    parser.add_argument("--over", type=float, default=250.0, help="a slow request, ms")
    parser.add_argument("--quiet", action="store_true", help="the summary only")
    args = parser.parse_args()
    trace = read_trace(args.trace)
    if not trace:
        raise SystemExit("the trace is empty")
    since, until = trace[0][0], max(d + dt.timedelta(milliseconds=ms) for d, ms, _ in trace)
    found = episodes(trace, args.over, read_log(args.log, since, until))
    slow = sum(len(e.latencies) for e in found)
    print(f"{len(trace):,} requests, {slow:,} over {args.over:g} ms in {len(found)} episodes")
    if not args.quiet:
        for e in found:
            print(
                f"\n{e.began:%H:%M:%S.%f}"[:-3]
                + f" to {e.ended:%H:%M:%S.%f}"[:-3]
                + f": {len(e.latencies)} requests, max {max(e.latencies):.0f} ms; {e.kind}"
            )
            for s in sorted(e.statements, key=lambda s: -s.ms)[:5]:
                print(f"    {s.ms:7.1f} ms ended {s.ended:%H:%M:%S.%f}"[:-3] + f"  {s.text[:90]}")
    kinds: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for e in found:
        kinds[e.kind] += 1
        requests[e.kind] += len(e.latencies)
    print("\nepisodes by their longest slow statement:")
    for kind, n in kinds.most_common():
        print(f"  {kind}: {n} episodes, {requests[kind]:,} requests")


if __name__ == "__main__":
    main()
