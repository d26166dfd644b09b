"""Reminders benchmark: start the scheduler over 10,000 and 100,000 pending reminders, and time them firing.

    .venv/bin/python bench/reminders_bench.py                      # 10,000 and 100,000, SQLite only
    .venv/bin/python bench/reminders_bench.py --sizes 10000 --pg postgresql+psycopg://postgres@127.0.0.1/test

For each size, a fresh database (a temporary SQLite file; with `--pg URL`, also a fresh
`smsops_bench_<hex>` database on that server) is migrated and bulk-loaded with N pending reminders:
N tracked sends (one batch each) and N jobs in APScheduler's job store, exactly as `Reminders.plan`
stores them (same job function, trigger, ids, options). All but `--sample` of them are days ahead; the
sample is due within `--spread` seconds of start-up.

Then a separate process (so its memory is its own) builds the bot's services with a fast in-process
provider (status() answers "scheduled" at once) and a notifier that only notes the time, starts
`bot.reminders.Reminders` and reports:
- start-up: `Reminders.start()` (job table check, scheduler start) and the scheduler's first pass over
  the store; the catch-up sweep (the start-up check that every upcoming send has its jobs; it runs in
  a thread and does not hold up the start) is reported on its own;
- resident memory (VmRSS) before start, after start (and sweep), and after the sample fired;
- lateness of the sample: post time minus due time (median, p99, max), each reminder doing the full
  work: re-read the batch, check the provider, claim + `reminded` ledger entry, post.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pickle  # noqa: E402

from apscheduler.job import Job  # noqa: E402
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # noqa: E402
from apscheduler.triggers.date import DateTrigger  # noqa: E402
from sqlalchemy import Engine, create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.domain.results import Card  # noqa: E402
from bot.infra.settings import Settings  # noqa: E402
from bot.operations.services import Services  # noqa: E402
from bot.providers.base import MessageState, ProviderName, SendState  # noqa: E402
from bot.reminders import JOBS_TABLE, JobStore, Reminders, job_id  # noqa: E402
from bot.reminders.jobs import FIRE_REMINDER  # noqa: E402
from db.engine import make_engine, normalise_url  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import TrackedSend  # noqa: E402

LEAD = 900  # 15 minutes, the default lead
CHANNEL = "C0BENCH01"
_TEMPLATE_SCHEDULER = AsyncIOScheduler(timezone=UTC)  # never started: Job() reads its timezone


def _rows(count: int, first_due: float, spread: float) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(tracked send, job row) pairs; reminder i is due at first_due + spread * i / count."""
    now = datetime.now(UTC)
    for i in range(count):
        due = datetime.fromtimestamp(first_due + spread * i / max(1, count), UTC)
        send_at = due + timedelta(seconds=LEAD)
        batch = uuid.uuid4().hex
        send = {
            "id": uuid.uuid4().hex, "provider": "telnyx", "target": str(uuid.uuid4()), "batch_id": batch,
            "state": "scheduled", "provider_status": "scheduled", "send_at": send_at, "recipient_count": 1,
            "recipients_preview": "+18665550100", "text_preview": "Doors open at 10", "created_by": "U0BENCH01",
            "team": "T0BENCH01", "channel": CHANNEL, "created_at": now, "updated_at": now,
        }
        job = Job(_TEMPLATE_SCHEDULER, id=job_id(batch, LEAD), func=FIRE_REMINDER,
                  trigger=DateTrigger(run_date=due, timezone=UTC), executor="default", args=(batch, LEAD),
                  kwargs={}, name=f"reminder 15m before batch {batch}", misfire_grace_time=None, coalesce=True,
                  max_instances=1, next_run_time=due)
        yield send, {"id": job.id, "next_run_time": due.timestamp(),
                     "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)}


def load(engine: Engine, count: int, first_due: float, spread: float, chunk: int = 5000) -> None:
    sends_t = TrackedSend.__table__  # type: ignore[attr-defined]
    jobs_t = JobStore(engine=engine, tablename=JOBS_TABLE).jobs_t
    batch_sends: list[dict[str, Any]] = []
    batch_jobs: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            if batch_sends:
                conn.execute(insert(sends_t), batch_sends)
                conn.execute(insert(jobs_t), batch_jobs)
        batch_sends.clear()
        batch_jobs.clear()

    for send, job in _rows(count, first_due, spread):
        batch_sends.append(send)
        batch_jobs.append(job)
        if len(batch_sends) >= chunk:
            flush()
    flush()


def prepare(url: str, far: int) -> float:
    """Migrate, create the job table and load the reminders that are days away; returns seconds."""
    t = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    JobStore(engine=engine, tablename=JOBS_TABLE).jobs_t.create(engine, checkfirst=True)
    load(engine, far, time.time() + 2 * 86400, 3 * 86400)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - t


# --- the measured process -----------------------------------------------------------------------
class FastProvider:
    name = ProviderName.TELNYX

    async def status(self, target: str) -> MessageState:
        return MessageState(provider="telnyx", id=target, state=SendState.SCHEDULED, status="scheduled")

    async def aclose(self) -> None:
        return None


class TimingNotifier:
    def __init__(self) -> None:
        self.posted: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0

    async def post_card(self, channel: str, card: Card) -> str | None:
        self.posted[card.record_id] = time.time()
        if len(self.posted) >= self.expected:
            self.done.set()
        return f"{len(self.posted)}.000001"

    async def update_card(self, channel: str, ts: str, card: Card) -> bool:
        return True

    async def post_text(self, channel: str, text: str) -> str | None:
        return None


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def measure(url: str, sample: int, spread: float, delay: float) -> dict[str, Any]:
    settings = Settings(_env_file=None, database_url=url, reminder_leads=f"{LEAD}s",
                        sms_channel=CHANNEL)
    engine = make_engine(url)
    notifier = TimingNotifier()
    notifier.expected = sample
    services = Services(settings=settings, engine=engine, providers={ProviderName.TELNYX: FastProvider()},  # type: ignore[dict-item]  # status only
                        notifier=notifier)
    first_due = time.time() + delay
    load(engine, sample, first_due, spread)
    due = _sample_due(engine)
    gc.collect()
    rss_before = rss_kb()

    reminders = Reminders(services, poll_seconds=5)
    first_pass = asyncio.get_running_loop().create_future()
    process = reminders.scheduler._process_jobs

    def timed_process() -> Any:
        result = process()
        if not first_pass.done():
            first_pass.set_result(time.perf_counter())
        return result

    reminders.scheduler._process_jobs = timed_process
    t0 = time.perf_counter()
    reminders.start()
    start_s = time.perf_counter() - t0
    first_pass_s = await first_pass - t0
    assert reminders.swept is not None
    added = await reminders.swept
    sweep_s = time.perf_counter() - t0
    rss_started = rss_kb()

    try:
        await asyncio.wait_for(notifier.done.wait(), timeout=delay + spread + 120)
    except TimeoutError:
        pass
    await asyncio.sleep(0.5)
    rss_fired = rss_kb()
    late = sorted(notifier.posted[b] - d for b, d in due.items() if b in notifier.posted)
    reminders.shutdown()
    await asyncio.sleep(0.1)
    engine.dispose()
    return {
        "start_s": start_s, "first_pass_s": first_pass_s, "sweep_s": sweep_s, "sweep_added": added,
        "rss_before_kb": rss_before, "rss_started_kb": rss_started, "rss_fired_kb": rss_fired,
        "posted": len(late), "sample": sample,
        "late_median_s": statistics.median(late) if late else None,
        "late_p99_s": late[min(len(late) - 1, round(0.99 * (len(late) - 1)))] if late else None,
        "late_max_s": late[-1] if late else None,
    }


def _sample_due(engine: Engine) -> dict[str, float]:
    """The sample's due times by batch id (the reminders due within the hour)."""
    horizon = time.time() + 3600
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, next_run_time FROM {JOBS_TABLE} WHERE next_run_time < :h"),
                            {"h": horizon}).all()
    return {r[0].split(":")[1]: float(r[1]) for r in rows}


def child(args: argparse.Namespace) -> None:
    result = asyncio.run(measure(args.child, args.sample, args.spread, args.delay))
    print(json.dumps(result))


# --- the driver ---------------------------------------------------------------------------------
def run_one(label: str, url: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    prepared = prepare(url, size - args.sample)
    print(f"[{label}] loaded {size:,} pending reminders in {prepared:.1f}s", file=sys.stderr, flush=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, "--sample", str(args.sample), "--spread", str(args.spread),
         "--delay", str(args.delay)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"[{label}] measuring process failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="pending reminders, comma-separated")
    parser.add_argument("--sample", type=int, default=1000, help="reminders due right after start-up")
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which the sample falls due")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds from start-up to the first due")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server to benchmark too")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for size in sizes:
        if not args.no_sqlite:
            with tempfile.TemporaryDirectory(prefix="smsops-bench-") as tmp:
                results[("sqlite", size)] = run_one("sqlite", f"sqlite:///{tmp}/reminders.db", size, args)
        if args.pg:
            admin = create_engine(normalise_url(args.pg), isolation_level="AUTOCOMMIT")
            name = f"smsops_bench_{secrets.token_hex(4)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(normalise_url(args.pg)).set(database=name).render_as_string(hide_password=False)
                results[("postgresql", size)] = run_one("postgresql", url, size, args)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()

    print(f"\nreminders benchmark: {args.sample:,} of the pending reminders due over {args.spread:g}s, "
          f"{args.delay:g}s after start-up")
    head = (f"{'database':>10} {'pending':>8} | {'start s':>7} {'1st pass s':>10} {'sweep s':>7} | "
            f"{'RSS MB before/started/fired':>27} | {'posted':>11} {'late median s':>13} {'p99 s':>6} "
            f"{'max s':>6}")
    print(head)
    print("-" * len(head))
    for (label, size), r in results.items():
        rss = (f"{r['rss_before_kb'] / 1024:.0f} / {r['rss_started_kb'] / 1024:.0f} / "
               f"{r['rss_fired_kb'] / 1024:.0f}")
        late = (f"{r['late_median_s']:>13.3f} {r['late_p99_s']:>6.3f} {r['late_max_s']:>6.3f}"
                if r["posted"] else f"{'-':>13} {'-':>6} {'-':>6}")
        print(f"{label:>10} {size:>8,} | {r['start_s']:>7.3f} {r['first_pass_s']:>10.3f} {r['sweep_s']:>7.2f} | "
              f"{rss:>27} | {r['posted']:>5}/{r['sample']:<5} {late}")


if __name__ == "__main__":
    main()
