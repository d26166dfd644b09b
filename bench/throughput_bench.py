"""End-to-end throughput: signed `/sms cancel <id>` requests completed per second, SQLite and PostgreSQL.

    .venv/bin/python bench/throughput_bench.py                       # 2,000 cancels on each database
    .venv/bin/python bench/throughput_bench.py --cancels 10000 --clients 50 --db sqlite
    .venv/bin/python bench/throughput_bench.py --profile none        # without py-spy
    .venv/bin/python bench/throughput_bench.py --db postgresql --workers 1 2   # 1, then 2 `smsops worker`s
    .venv/bin/python bench/throughput_bench.py --rate 40             # paced: 40 requests/s offered in all
    .venv/bin/python bench/throughput_bench.py --db postgresql --workers 1 2 --worker-cores 0.4   # capped

`--workers N …`: one run per N, the bot as its HTTP process (acks only: INBOX_WORKERS=0) beside N
`python -m bot worker` processes on the same database (0, the default: the HTTP process's own workers).
The bot's CPU (cores busy, CPU ms per cancel) is that of all its processes together. `--rate R`: the
clients share R requests/s (each keeps its own schedule) instead of sending back to back, for the done
latency below saturation.

A completed cancel is the whole path: the signed request acked over HTTP, the replay check, the
request record, the tracked send claimed, the intent opened, DELETE at the local fake Telnyx, the
outcome in the ledger (hash-chained) and on the send, its reminders dropped, and the answer posted to
response_url (timed where the fake Slack receives it). `--clients` closed-loop clients send one
cancel after another (no pause); throughput = cancels / (last answer − first request). Every id is a
real scheduled Telnyx message the bot tracks, cancelled once each (checked at the fake and in the
ledger). The bot is `python -m bot` in its own process, the fakes in another, the load here.

Profile: with py-spy installed (`.venv/bin/pip install py-spy`), the SQLite run is sampled (all
threads of the bot) and summarised: where the samples fall, by the bot's own function that led there
(its deepest frame in bot/ or db/), and by library.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    ROOT,
    Bot,
    Connection,
    Fakes,
    cpu_seconds,
    load_sends,
    machine,
    machine_cpu_seconds,
    migrate,
    percentile,
    pg_database,
    pg_version,
    signed_command,
    table,
    workdir,
)


async def drive(port: int, slack_url: str, ids: list[str], clients: int, rate: float | None = None) -> dict[str, Any]:
    """Send a cancel for every id; returns send times by response_url token, and ack latencies. `rate`:
    requests/s shared by the clients (each on its own fixed schedule), else back to back."""
    queue: Iterator[str] = iter(ids)
    sent: dict[str, float] = {}
    acks: list[float] = []
    errors = 0

    async def client(n: int) -> None:
        nonlocal errors
        conn = Connection("127.0.0.1", port)
        every = clients / rate if rate else 0.0
        due = time.monotonic() + every * n / clients  # the clients' schedules interleave
        try:
            for target in queue:
                if every:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    due += every
                token = uuid.uuid4().hex
                body, headers = signed_command(f"cancel {target}", f"{slack_url}/response/{token}")
                sent[token] = time.time()
                try:
                    status, data, took = await conn.post("/slack/events", body, headers)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    await conn.close()
                    continue
                acks.append(took)
                if status != 200 or b"Cancelling" not in data:
                    errors += 1
        finally:
            await conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return {"sent": sent, "acks": acks, "errors": errors}


def ledger_counts(database_url: str) -> collections.Counter[str]:
    from sqlalchemy import text

    from db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT action, COUNT(*) FROM ledger_entries GROUP BY action")).all()
    finally:
        engine.dispose()
    return collections.Counter({str(a): int(n) for a, n in rows})


def one_run(name: str, database_url: str, cancels: int, clients: int, warmup: int, tmp: Path,
            profile: str, workers: int = 0, rate: float | None = None,
            worker_cores: float | None = None) -> tuple[list[Any], str | None]:
    migrate(database_url)
    fakes = Fakes("--telnyx-messages", str(cancels + warmup), "--highlevel-limit", "none")
    bot: Bot | None = None
    spy: subprocess.Popen[bytes] | None = None
    profile_file = tmp / f"profile-{name}-{workers}.txt"
    try:
        ids = fakes.info["telnyx_ids"]
        load_sends(database_url, "telnyx", ids)
        bot = Bot(tmp, database_url, fakes.info, workers=workers, worker_cores=worker_cores).start()
        slack_url = fakes.info["slack_url"]
        asyncio.run(drive(bot.port, slack_url, ids[:warmup], 4))
        _wait_answers(fakes, warmup, 60)
        bot.wait_idle()  # start-up work (reminder plans for the loaded sends) is not the cancels' CPU
        fakes.ask("clear")
        if profile == "py-spy":
            spy = subprocess.Popen([_py_spy(), "record", "--pid", str(bot.pid), "--rate", "200", "--format", "raw",
                                    "--output", str(profile_file), "--nonblocking", "--gil", "--duration", "600"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        print(f"  {name}: {cancels:,} cancels from {clients} clients"
              f"{f' at {rate:g}/s' if rate else ''}, {workers} worker process(es)…", flush=True)
        pids = {"bot": bot.pids, "http": bot.pids[:1], "workers": bot.pids[1:], "fakes": [fakes.proc.pid],
                "load": [os.getpid()]}
        cpu_before = {k: sum(cpu_seconds(p) for p in ps) for k, ps in pids.items()}
        cpu_before["machine"] = machine_cpu_seconds()
        wall = time.monotonic()
        result = asyncio.run(drive(bot.port, slack_url, ids[warmup:], clients, rate))
        answers = _wait_answers(fakes, cancels, 300)
        wall = time.monotonic() - wall
        cpu_used = {k: sum(cpu_seconds(p) for p in ps) - cpu_before[k] for k, ps in pids.items()}
        cpu_used["machine"] = machine_cpu_seconds() - cpu_before["machine"]
        cpu = {k: used / wall for k, used in cpu_used.items()}
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        stats = fakes.stats()
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        if bot is not None:
            bot.stop()
        fakes.stop()

    answered = {token: (at, text) for token, at, text in answers}
    sent = result["sent"]
    first = min(sent.values())
    last = max(at for at, _ in answered.values()) if answered else float("nan")
    done = [answered[t][0] - sent[t] for t in sent if t in answered]
    ok = sum(1 for _, text in answered.values() if "Cancelled" in text)
    ledger = ledger_counts(database_url)
    procs = f"{workers} × {worker_cores:g} core" if worker_cores and workers else workers
    row = [name, procs, f"{cancels:,}", clients, f"{rate:g}" if rate else "-", f"{ok / (last - first):,.0f}",
           f"{percentile(result['acks'], 50) * 1000:.0f}", f"{percentile(result['acks'], 99) * 1000:.0f}",
           f"{percentile(done, 50) * 1000:.0f}", f"{percentile(done, 99) * 1000:.0f}",
           f"{ok:,}", f"{stats['telnyx_deletes']:,}", f"{ledger.get('cancelled', 0):,}",
           result["errors"] + (cancels - ok),
           f"{cpu['http']:.2f} / {cpu['workers']:.2f} / {cpu['fakes']:.2f} / {cpu['load']:.2f}"
           f" / {cpu['machine'] - cpu['bot'] - cpu['fakes'] - cpu['load']:.2f} / {cpu['machine']:.2f}",
           f"{cpu_used['bot'] * 1000 / max(ok, 1):.1f}"]
    return row, str(profile_file) if profile_file.exists() else None


def _wait_answers(fakes: Fakes, count: int, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while fakes.ask("count")["answers"] < count and time.monotonic() < deadline:
        time.sleep(0.2)
    answers: list[Any] = fakes.stats()["answers"]
    return answers


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found


# --- the profile summary ----------------------------------------------------------------------------
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")
LIBRARIES = ("sqlalchemy", "sqlmodel", "psycopg", "slack_bolt", "slack_sdk", "httpx", "httpcore", "aiohttp",
             "uvicorn", "h11", "starlette", "pydantic", "structlog", "apscheduler", "anyio", "prometheus_client",
             "alembic", "yarl", "multidict", "json", "logging", "asyncio", "concurrent", "threading", "sqlite3",
             "ssl", "hmac", "selectors", "socket", "uuid", "email", "urllib", "http")


def _library(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for lib in LIBRARIES:
        if f"/{lib}/" in path or path.endswith(f"/{lib}.py") or path.startswith(f"{lib}/"):
            return lib
    if str(ROOT) in path or path.startswith(("bot/", "db/")):
        return "smsops"
    return Path(path).stem or "?"


def summarise_profile(path: str, top: int = 14) -> str:
    by_bot: collections.Counter[str] = collections.Counter()
    by_lib: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for raw in stack.split(";"):
            match = _FRAME.match(raw.strip())
            if match:
                frames.append((match.group("func"), match.group("file")))
        if not frames:
            continue
        total += count
        leaf_file = frames[-1][1]
        by_lib[_library(leaf_file)] += count
        owner = None
        for func, file in reversed(frames):
            rel = file.split(str(ROOT) + "/", 1)[-1]
            if rel.startswith(("bot/", "db/")) and not rel.startswith("bot/__main__"):  # not the loop itself
                owner = f"{rel.removesuffix('.py').replace('/', '.')}.{func}"
                break
        if owner is None:
            owner = f"(no smsops frame) {_library(leaf_file)}"
        by_bot[owner] += count
    if not total:
        return "(no samples)"
    left = table(["deepest smsops frame (inclusive)", "share"],
                 [[k, f"{100 * v / total:.1f} %"] for k, v in by_bot.most_common(top)])
    right = table(["library of the sampled frame (self)", "share"],
                  [[k, f"{100 * v / total:.1f} %"] for k, v in by_lib.most_common(top)])
    return f"{total:,} samples over all threads of the bot\n\n{left}\n\n{right}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cancels", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", choices=["py-spy", "none"], default="py-spy")
    parser.add_argument("--keep-profile", metavar="DIR", help="copy py-spy's raw (collapsed) stacks there")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="`smsops worker` processes beside the HTTP process, one run per value (default 0)")
    parser.add_argument("--rate", type=float, default=None,
                        help="requests/s the clients share (default: back to back, the saturation rate)")
    parser.add_argument("--worker-cores", type=float, default=None, metavar="C",
                        help="cap each worker process at C cores (a cgroup CFS quota; root): stands in for a core "
                             "per worker, which a 2-core machine also running PostgreSQL and the fakes has not")
    options = parser.parse_args()
    profile = options.profile
    if profile == "py-spy" and not Path(_py_spy()).exists():
        print("py-spy is not installed (`.venv/bin/pip install py-spy`): no profile.")
        profile = "none"

    print(f"machine: {machine()}; {pg_version()}", flush=True)
    rows = []
    profiles: list[tuple[str, str]] = []
    with workdir() as tmp:
        for n, workers in enumerate(options.workers):
            if options.db in ("sqlite", "both"):
                row, prof = one_run("SQLite", f"sqlite:///{tmp / f'tp-{n}.db'}", options.cancels, options.clients,
                                    options.warmup, tmp, profile if n == 0 else "none", workers, options.rate,
                                    options.worker_cores)
                rows.append(row)
                if prof:
                    profiles.append(("SQLite", summarise_profile(prof)))
                    if options.keep_profile:
                        shutil.copy(prof, Path(options.keep_profile) / "profile-sqlite.txt")
            if options.db in ("postgresql", "both"):
                with pg_database() as url:
                    row, prof = one_run("PostgreSQL", url, options.cancels, options.clients, options.warmup, tmp,
                                        profile if options.db == "postgresql" and n == 0 else "none", workers,
                                        options.rate, options.worker_cores)
                    rows.append(row)
                    if prof:
                        profiles.append(("PostgreSQL", summarise_profile(prof)))
                        if options.keep_profile:
                            shutil.copy(prof, Path(options.keep_profile) / "profile-postgresql.txt")
    print()
    print(table(["database", "worker procs", "cancels", "clients", "offered/s", "cancels/s", "ack p50 ms",
                 "ack p99 ms", "done p50 ms", "done p99 ms", "answered ok", "DELETEs", "ledger cancelled", "errors",
                 "cores busy: HTTP / workers / fakes / load / rest (PostgreSQL…) / machine",
                 "bot CPU ms/cancel"], rows))
    for name, text in profiles:
        print(f"\nprofile, {name} run (py-spy, 200 Hz):\n{text}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
