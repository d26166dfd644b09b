"""The jobs behind reminders: their ids and run times, the job function, and APScheduler 3's SQLAlchemy job
store and asyncio executor, adapted to share the bot's engine and event loop (see the package's docstring)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, select

from bot.operations.services import Services
from db.engine import reader

log = logging.getLogger(__name__)

JOB_PREFIX = "remind:"
JOBS_TABLE = "apscheduler_jobs"
# The job function as the job store keeps it. Given as text so stored jobs keep naming the package (as
# they did before it was split): jobs planned by a replica of either version run on the other.
FIRE_REMINDER = "bot.reminders:fire_reminder"


class JobOwner(Protocol):
    """What a job needs of the Reminders that runs it."""

    def running_jobs(self, add: str | None = None, discard: str | None = None) -> set[str]: ...

    async def fire(self, batch_id: str, lead_seconds: int) -> str: ...


# The live Reminders, for job functions (they are stored by reference and get plain args only). The
# executor also sets `_current` around each job, so two bots in one process each run their own jobs.
_live: JobOwner | None = None
_current: contextvars.ContextVar[JobOwner | None] = contextvars.ContextVar("smsops_reminders", default=None)


def attach(owner: JobOwner) -> None:
    """`owner` runs the jobs that fire outside any executor's context (set on start)."""
    global _live
    _live = owner


def detach(owner: JobOwner) -> None:
    global _live
    if _live is owner:
        _live = None


def job_id(batch_id: str, lead_seconds: int) -> str:
    return f"{JOB_PREFIX}{batch_id}:{lead_seconds}"


def parse_job_id(value: str) -> tuple[str, int] | None:
    if not value.startswith(JOB_PREFIX):
        return None
    batch_id, _, lead = value[len(JOB_PREFIX):].rpartition(":")
    return (batch_id, int(lead)) if batch_id and lead.isdigit() else None


async def fire_reminder(batch_id: str, lead_seconds: int) -> str:
    """The job function (module level: the job store keeps `bot.reminders:fire_reminder`)."""
    reminders = _current.get() or _live
    if reminders is None:
        log.warning("reminder fired with no bot running", extra={"batch": batch_id, "lead": lead_seconds})
        return "no-bot"
    return await reminders.fire(batch_id, lead_seconds)


def runs(send_at: datetime, leads: Iterable[int], now: datetime) -> list[tuple[int, datetime]]:
    """(lead_seconds, run time) to plan for a send: every lead still ahead, and of those already past only
    the shortest (it fires at once; a longer one at the same moment would say the same thing twice)."""
    if send_at <= now:
        return []
    ahead: list[tuple[int, datetime]] = []
    passed: list[tuple[int, datetime]] = []
    for lead in sorted(set(leads), reverse=True):
        at = send_at - timedelta(seconds=lead)
        (ahead if at > now else passed).append((lead, at))
    return ahead + passed[-1:]


class JobStore(SQLAlchemyJobStore):
    """The SQLAlchemy job store, made to share the bot's engine and event loop:
    - the engine belongs to the bot: not disposed here;
    - a job that ran is deleted off the event loop, in batches: APScheduler 3 deletes each job right after
      submitting it, inside its processing pass on the loop, and a commit per reminder there holds up
      everything else the bot does (on PostgreSQL, a burst of reminders spent most of its time there).
      Until its row is gone the job is hidden from this scheduler; other replicas may still run it, and
      a restart may too: the claim makes every such run after the first a no-op;
    - removing a job another replica already removed is not an error (APScheduler 3 would raise out of
      its processing pass and stop waking up)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The scheduler's periodic look at the store (get_due_jobs, get_next_run_time) runs on the event
        # loop: read in DEFERRED transactions, so on SQLite it never waits behind the bot's writers.
        self.reader = reader(self.engine)
        self._lock = threading.Lock()
        self._hidden: set[str] = set()  # ran; row not deleted yet
        self._queued: list[str] = []
        self._flushing = False

    def remove_job(self, job_id: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.delete_now([job_id])
            return
        with self._lock:
            self._hidden.add(job_id)
            self._queued.append(job_id)
            if self._flushing:
                return
            self._flushing = True
        try:
            loop.run_in_executor(None, self._flush)
        except RuntimeError:  # the loop is shutting down: delete here
            self._flush()

    def _flush(self) -> None:
        while True:
            with self._lock:
                ids, self._queued = self._queued, []
                if not ids:
                    self._flushing = False
                    return
            try:
                self.delete_now(ids)
            except Exception:  # shown again, they run again, find their claims and are removed again
                log.exception("could not delete finished reminder jobs", extra={"count": len(ids)})
            finally:
                with self._lock:
                    self._hidden.difference_update(ids)

    def delete_now(self, ids: list[str]) -> None:
        for start in range(0, len(ids), 500):
            with self.engine.begin() as conn:
                conn.execute(self.jobs_t.delete().where(self.jobs_t.c.id.in_(ids[start:start + 500])))

    def _hidden_now(self) -> set[str]:
        with self._lock:
            return set(self._hidden)

    def get_due_jobs(self, now: datetime) -> list[Any]:
        hidden = self._hidden_now()  # before reading: a row deleted after this read is still hidden
        jobs: list[Any] = super().get_due_jobs(now)
        return [job for job in jobs if job.id not in hidden] if hidden else jobs

    def _get_jobs(self, *conditions: Any) -> list[Any]:
        """APScheduler's own, reading through the DEFERRED reader; a job that cannot be restored is
        removed in a writing transaction of its own (as APScheduler does, in its read transaction)."""
        t = self.jobs_t
        stmt = select(t.c.id, t.c.job_state).order_by(t.c.next_run_time)
        if conditions:
            stmt = stmt.where(*conditions)
        jobs: list[Any] = []
        failed: set[str] = set()
        with self.reader.connect() as conn:
            rows = conn.execute(stmt).all()
        for row in rows:
            try:
                jobs.append(self._reconstitute_job(row.job_state))
            except BaseException:
                self._logger.exception('Unable to restore job "%s" -- removing it', row.id)
                failed.add(row.id)
        if failed:
            self.delete_now(sorted(failed))
        return jobs

    def get_next_run_time(self) -> datetime | None:
        hidden = self._hidden_now()
        t = self.jobs_t
        stmt = select(t.c.next_run_time).where(t.c.next_run_time.is_not(None))
        if hidden:
            stmt = stmt.where(t.c.id.not_in(hidden))
        with self.reader.connect() as conn:
            value = conn.execute(stmt.order_by(t.c.next_run_time).limit(1)).scalar()
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    def lookup_job(self, job_id: str) -> Any:
        with self.reader.connect() as conn:
            state = conn.execute(select(self.jobs_t.c.job_state).where(self.jobs_t.c.id == job_id)).scalar()
        return self._reconstitute_job(state) if state else None

    def shutdown(self) -> None:
        return None


class Executor(AsyncIOExecutor):
    """Runs reminder coroutines on the loop, with `_current` set to the Reminders that owns them."""

    def __init__(self, owner: JobOwner) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        self._owner.running_jobs(add=job.id)  # until it has claimed: the sweep must not plan it again
        token = _current.set(self._owner)  # create_task copies the context: the job sees its owner
        try:
            super()._do_submit_job(job, run_times)
        finally:
            _current.reset(token)



class ReminderJobs:
    """What the planner and the firing share: the scheduler, its store, the leads and the jobs in flight
    (set up by `Reminders.__init__`)."""

    services: Services
    engine: Engine
    store: JobStore
    scheduler: AsyncIOScheduler
    _running_lock: threading.Lock
    _running_jobs: set[str]
    _table_ready: bool

    @property
    def leads(self) -> list[int]:
        seconds = {int(lead.total_seconds()) for lead in self.services.settings.reminder_leads}
        return sorted((s for s in seconds if s > 0), reverse=True)  # a 0s "reminder" would come too late

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def running_jobs(self, add: str | None = None, discard: str | None = None) -> set[str]:
        """Jobs submitted and not finished (the executor adds, `fire` discards; the sweep reads)."""
        with self._running_lock:
            if add is not None:
                self._running_jobs.add(add)
            if discard is not None:
                self._running_jobs.discard(discard)
            return set(self._running_jobs)

    def _in_store(self) -> bool:
        """Whether planned jobs are in the database (else they wait in the scheduler's memory)."""
        return bool(self.scheduler.running and self._table_ready)
