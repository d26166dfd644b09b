"""Ledger benchmark: fill a ledger with N realistic entries and time the audit queries on it.

    .venv/bin/python bench/ledger_bench.py                       # 1,000,000 entries, SQLite only
    .venv/bin/python bench/ledger_bench.py --entries 100000 --pg postgresql+psycopg://postgres@127.0.0.1/test

SQLite runs on a temporary file; PostgreSQL (`--pg URL`, any database on the server: it is only used
to create and drop a fresh `smsops_bench_<hex>` database) in its own database. Both are created with
db.migrate.upgrade, then bulk-loaded: the hash chain is computed in Python (db.ledger.chain_hash) and
rows go in with executemany (SQLite) or COPY (PostgreSQL), not one transaction per row.

Distributions: ≈2,000 targets (ids shaped like each provider's), 50 users with a skewed activity
plus `system` for reminders, 3 providers (telnyx 50%, solapi 35%, highlevel 15%), a year of
timestamps in chain order, a realistic mix of actions and outcomes. With the default --targets an
id has about entries/2,000 entries (≈500 at 1M, each on its own page of the table): far more than
one SMS's life (scheduled, a few reminders, sent, delivered: under 10), so the id rows are a worst
case; `--targets 125000` gives ≈8 an id. The run prints the mean and largest count.

Reported, over --runs runs each (median and p99, milliseconds), the queries a user's request runs:
an id's history as `/sms audit <id> limit 50` reads it (the first 50 oldest first, plus one row to
know whether to offer More) and its second page (More); the same for one user's last 50, one
provider since 7 days, the newest 50 (no filter), one user since 30 days; an id's *whole* history
as `python -m bot audit --target ID` streams it (an export, not a page); `verify` over everything
(one run); and the peak RSS of a separate process streaming the whole export (audit.stream, JSON
lines) to /dev/null, against its RSS before streaming.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from db import audit  # noqa: E402
from db.engine import make_engine, normalise_url  # noqa: E402
from db.ledger import GENESIS, chain_hash, verify  # noqa: E402
from db.migrate import upgrade  # noqa: E402

COLUMNS = ("seq", "at", "actor", "team", "channel", "action", "provider", "target", "outcome", "detail",
           "request_id", "prev_hash", "hash")
END = datetime(2026, 11, 1, tzinfo=UTC)
PROVIDERS = (("telnyx", 0.50), ("solapi", 0.35), ("highlevel", 0.15))
ACTIONS = (("scheduled", 22), ("reminded", 25), ("sent", 15), ("delivered", 12), ("cancelled", 8),
           ("approval_requested", 5), ("approved", 4), ("tracked", 3), ("refused", 3), ("failed", 2),
           ("deleted", 1))
ALPHANUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class World:
    """The population the entries are drawn from (fixed by the seed)."""

    def __init__(self, rng: random.Random, targets: int, users: int) -> None:
        self.rng = rng
        self.users = [f"U0{''.join(rng.choices(ALPHANUM[:26] + ALPHANUM[52:], k=9))}" for _ in range(users)]
        self.user_weights = [1 / (k + 1) ** 0.9 for k in range(users)]  # a few people do most of it
        self.channels = [f"C0{''.join(rng.choices(ALPHANUM[:26], k=9))}" for _ in range(10)]
        self.providers = [p for p, _ in PROVIDERS]
        self.provider_weights = [w for _, w in PROVIDERS]
        self.targets: dict[str, list[str]] = {p: [] for p in self.providers}
        for _ in range(targets):
            provider = rng.choices(self.providers, self.provider_weights)[0]
            self.targets[provider].append(self._target_id(provider))
        self.actions = [a for a, _ in ACTIONS]
        self.action_weights = [w for _, w in ACTIONS]

    def _target_id(self, provider: str) -> str:
        rng = self.rng
        if provider == "telnyx":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if provider == "solapi":
            return "G4V" + "".join(rng.choices(ALPHANUM[:26] + ALPHANUM[52:], k=28))
        return "".join(rng.choices(ALPHANUM, k=20))

    def rows(self, n: int) -> Iterator[tuple[Any, ...]]:
        """n entries in chain order, hashed."""
        rng = self.rng
        span = 365 * 86400 * 1_000_000
        start = END - timedelta(days=365)
        offsets = sorted(rng.randrange(span) for _ in range(n))
        prev = GENESIS
        for i, offset in enumerate(offsets, start=1):
            at = start + timedelta(microseconds=offset)
            action = rng.choices(self.actions, self.action_weights)[0]
            provider = rng.choices(self.providers, self.provider_weights)[0]
            target: str | None = rng.choice(self.targets[provider])
            actor = "system" if action in ("reminded", "delivered") else rng.choices(self.users, self.user_weights)[0]
            outcome = {"refused": "refused", "failed": "error"}.get(action, "ok")
            if action == "refused":
                detail = "telnyx send_at must be 5 minutes to 5 days ahead"
                target = None if rng.random() < 0.5 else target
            elif action == "failed":
                detail = f"provider error 40{rng.randrange(10)}: " + "".join(rng.choices(ALPHANUM, k=60))
            elif action == "reminded":
                detail = f"{rng.choice((15, 60, 5))}m before send_at"
            else:
                detail = ""
            row = (i, at, actor, "T01ABCDEF", rng.choice(self.channels), action, provider, target, outcome,
                   detail, secrets.token_hex(8) if actor != "system" else None, prev)
            digest = chain_hash(*row)
            yield (*row, digest)
            prev = digest


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_sqlite(path: Path, rows: Iterator[tuple[Any, ...]]) -> None:
    # The same text SQLAlchemy's SQLite DateTime writes (UTCDateTime stores naive UTC there);
    # `verify` reading it back through the models proves the format is right.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    sql = f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    for chunk in _chunks(rows, 20_000):
        conn.executemany(sql, [(r[0], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:]) for r in chunk])
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def load_pg(url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY ledger_entries ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE ledger_entries")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


PAGE = 50  # `/sms audit ... limit 50`; bot.operations.listing.audit asks for one row more


def read_query(engine: Engine, flt: audit.AuditFilter) -> int:
    return len(audit.query(engine, flt))


def read_stream(engine: Engine, flt: audit.AuditFilter) -> int:
    return sum(1 for _ in audit.stream(engine, flt))


Reader = Callable[[Engine, audit.AuditFilter], int]


def timed(runs: int, make: Callable[[], audit.AuditFilter], engine: Engine,
          read: Reader = read_query) -> tuple[float, float, float]:
    """`make` builds each run's filter, untimed (it may query, e.g. for a More cursor)."""
    samples = []
    sizes = 0
    for _ in range(runs):
        flt = make()
        t = time.perf_counter()
        got = read(engine, flt)
        samples.append((time.perf_counter() - t) * 1000)
        sizes += got
    return statistics.median(samples), pct(samples, 0.99), sizes / runs


def _peak_rss_kb() -> int:
    """This process's peak RSS. Not ru_maxrss: Linux carries that over from the parent across
    fork and exec, so a child spawned by a big parent would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def stream_child(url: str) -> None:
    """Run in a fresh process: stream the whole export to /dev/null and report memory."""
    engine = make_engine(url)
    next(iter(audit.stream(engine, audit.AuditFilter(limit=1))), None)  # warm up: imports, pool
    before = _peak_rss_kb()
    t = time.perf_counter()
    n = 0
    with open(os.devnull, "w") as out:
        for entry in audit.stream(engine, audit.AuditFilter()):
            out.write(json.dumps(entry.contract_dict(), ensure_ascii=False) + "\n")
            n += 1
    peak = _peak_rss_kb()
    print(json.dumps({"rows": n, "seconds": time.perf_counter() - t, "rss_before_kb": before, "rss_peak_kb": peak}))


def run(label: str, url: str, world: World, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    t = time.perf_counter()
    rows = world.rows(args.entries)
    if label == "sqlite":
        load_sqlite(Path(make_url(url).database or ""), rows)
    else:
        load_pg(url, rows)
    fill = time.perf_counter() - t
    print(f"[{label}] filled {args.entries:,} entries in {fill:.1f}s", file=sys.stderr)
    engine = make_engine(url)
    rng = random.Random(args.seed + 1)
    all_targets = [t for ts in world.targets.values() for t in ts]
    since = END - timedelta(days=7)
    with engine.connect() as conn:
        per_id = [n for (n,) in conn.execute(text(
            "SELECT count(*) FROM ledger_entries WHERE target IS NOT NULL GROUP BY target"))]
    result_shape = {"ids": len(per_id), "mean_per_id": statistics.fmean(per_id), "max_per_id": max(per_id)}
    print(f"[{label}] {result_shape['ids']:,} ids, {result_shape['mean_per_id']:.0f} entries an id on average,"
          f" {result_shape['max_per_id']} at most", file=sys.stderr)

    def id_next_page() -> audit.AuditFilter:
        # The More button's query: the page after the first one, from the first page's last seq.
        while True:
            target = rng.choice(all_targets)
            first = audit.query(engine, audit.AuditFilter(target=target, limit=PAGE + 1))
            if len(first) > PAGE:
                return audit.AuditFilter(target=target, limit=PAGE + 1, after_seq=first[PAGE - 1].seq)

    shapes: dict[str, tuple[Callable[[], audit.AuditFilter], Reader]] = {
        "id history, first 50": (lambda: audit.AuditFilter(target=rng.choice(all_targets), limit=PAGE + 1),
                                 read_query),
        "id history, More (2nd 50)": (id_next_page, read_query),
        "one user's last 50": (lambda: audit.AuditFilter(actor=rng.choice(world.users), limit=PAGE + 1),
                               read_query),
        "provider since 7d, 50": (lambda: audit.AuditFilter(
            provider=rng.choice(world.providers), since=since, limit=PAGE + 1), read_query),
        "newest 50": (lambda: audit.AuditFilter(limit=PAGE + 1), read_query),
        "user since 30d, 50": (lambda: audit.AuditFilter(
            actor=rng.choice(world.users), since=END - timedelta(days=30), limit=PAGE + 1), read_query),
        "id whole history (CLI)": (lambda: audit.AuditFilter(target=rng.choice(all_targets)), read_stream),
    }
    result: dict[str, Any] = {"fill_s": fill, "queries": {}, "shape": result_shape}
    for name, (make, read) in shapes.items():
        read(engine, make())  # warm the cache and the pool
        result["queries"][name] = timed(args.runs, make, engine, read)
        if args.explain:
            plan = audit.explain(engine, make()).replace("\n", " | ")
            print(f"[{label}] {name}: {plan}", file=sys.stderr)
    t = time.perf_counter()
    verdict = verify(engine)
    result["verify_s"] = time.perf_counter() - t
    assert verdict.ok and verdict.checked == args.entries, verdict.problem
    engine.dispose()
    child = subprocess.run([sys.executable, __file__, "--stream-child", url], capture_output=True, text=True,
                           check=True)
    result["stream"] = json.loads(child.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server to benchmark too")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument("--stream-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_child:
        stream_child(args.stream_child)
        return

    results: dict[str, dict[str, Any]] = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="smsops-bench-") as tmp:
            results["sqlite"] = run("sqlite", f"sqlite:///{tmp}/ledger.db",
                                    World(random.Random(args.seed), args.targets, args.users), args)
    if args.pg:
        admin = create_engine(normalise_url(args.pg), isolation_level="AUTOCOMMIT")
        name = f"smsops_bench_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(normalise_url(args.pg)).set(database=name).render_as_string(hide_password=False)
            results["postgresql"] = run("postgresql", url,
                                        World(random.Random(args.seed), args.targets, args.users), args)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    print(f"\nledger benchmark: {args.entries:,} entries, {args.runs} runs per query, times in ms (median / p99)")
    names = list(next(iter(results.values()))["queries"]) if results else []
    header = f"{'':28}" + "".join(f"{label:>26}" for label in results)
    print(header)
    print(f"{'fill (bulk load), s':28}" + "".join(f"{r['fill_s']:>26.1f}" for r in results.values()))
    print(f"{'entries an id, mean / max':28}" + "".join(
        f"{r['shape']['mean_per_id']:>17.0f} / {r['shape']['max_per_id']:>6}" for r in results.values()))
    for name in names:
        cells = []
        for r in results.values():
            med, p99, rows = r["queries"][name]
            cells.append(f"{med:8.2f} / {p99:7.2f} ({rows:5.0f} rows)")
        print(f"{name:28}" + "".join(f"{c:>26}" for c in cells))
    print(f"{'verify everything, s':28}" + "".join(f"{r['verify_s']:>26.1f}" for r in results.values()))
    print(f"{'export stream, s':28}" + "".join(f"{r['stream']['seconds']:>26.1f}" for r in results.values()))
    print(f"{'export RSS before/peak, MB':28}" + "".join(
        f"{r['stream']['rss_before_kb'] / 1024:>17.0f} / {r['stream']['rss_peak_kb'] / 1024:>6.0f}"
        for r in results.values()))


if __name__ == "__main__":
    main()
