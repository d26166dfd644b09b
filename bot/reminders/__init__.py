"""Reminders before scheduled sends: one per batch and lead time, posted once however many replicas run.

How it holds together:
- Jobs live in APScheduler 3's SQLAlchemy job store, on the ledger's database, under deterministic ids
  (`remind:<batch_id>:<lead_seconds>`), so planning twice replaces and a restart loses nothing.
- A job only carries (batch_id, lead_seconds). When it fires, `Reminders.fire` decides from the ledger
  and the provider what to do: post, note a miss (the send time passed while the bot was down), or skip
  (the send is gone, or a shorter lead is due as well).
- APScheduler 3 does not coordinate schedulers that share a job store, so every replica may run the same
  job. Whoever inserts the `reminder_claims` row first posts; the others stop. The `reminded` ledger
  entry is written in the claim's transaction.
- Each scheduler learns of jobs other replicas add only when it looks at the store, so it is woken every
  few seconds (REMINDER_POLL_SECONDS, default 5); a replica that dies is covered by the others.
- On start, sends that should have a reminder but have neither a job nor a claim (a crash between
  scheduling and planning, or REMINDER_LEADS changed) are planned again, in the background.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, Table, text

from bot.operations.services import Services
from bot.reminders import jobs
from bot.reminders.firing import CHECK_CONCURRENCY, MAX_CHECKS, Firing
from bot.reminders.jobs import JOB_PREFIX, JOBS_TABLE, Executor, JobStore, fire_reminder, job_id, parse_job_id, runs
from bot.reminders.planner import SWEEP_PAGE

__all__ = [
    "CHECK_CONCURRENCY", "JOBS_TABLE", "JOB_PREFIX", "MAX_CHECKS", "SWEEP_PAGE", "JobStore", "Reminders",
    "fire_reminder", "job_id", "parse_job_id", "runs",
]

log = logging.getLogger(__name__)

_TABLE_LOCK_KEY = 0x5E50_4E11  # pg_advisory_xact_lock key for "create the job table"


class Reminders(Firing):
    """Plans, drops and fires reminders; `services.reminders` is this once the runtime built it."""

    def __init__(self, services: Services, *, poll_seconds: float | None = None, sweep: bool = True) -> None:
        self.services = services
        self.engine: Engine = services.engine
        self.poll_seconds = max(0.2, poll_seconds if poll_seconds is not None
                                else services.settings.reminder_poll_seconds)
        self.sweep_on_start = sweep
        self.store = JobStore(engine=self.engine, tablename=JOBS_TABLE)
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": self.store},
            executors={"default": Executor(self)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running_lock = threading.Lock()
        self._running_jobs: set[str] = set()
        self._table_ready = False
        self.swept: asyncio.Future[int] | None = None  # the start-up sweep (tests and benchmarks await it)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start inside the running event loop (after migrations)."""
        jobs.attach(self)
        self.ensure_table()
        self.scheduler.start()
        loop = asyncio.get_running_loop()
        self._spawn(self._poll())
        if self.sweep_on_start:
            self.swept = loop.run_in_executor(None, self._sweep_quietly)
        log.info("reminders started", extra={"leads": self.leads, "poll_seconds": self.poll_seconds})

    def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        jobs.detach(self)

    def ensure_table(self) -> None:
        """Create APScheduler's table once, serialised across replicas (two `CREATE TABLE`s racing on
        PostgreSQL would fail one bot's start)."""
        table: Table = self.store.jobs_t
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _TABLE_LOCK_KEY})
            table.create(conn, checkfirst=True)
            if conn.dialect.name == "postgresql":
                # A batch's jobs are found by id prefix (`_of_batch`); the primary key's index serves a
                # LIKE prefix only under the C collation, this one under any.
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS {JOBS_TABLE}_id_prefix "
                                  f"ON {JOBS_TABLE} (id varchar_pattern_ops)"))
        self._table_ready = True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self) -> None:
        """Look at the shared store now and then: jobs other replicas added are not announced."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            if self.scheduler.running:
                self.scheduler.wakeup()
