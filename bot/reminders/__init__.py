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
import contextvars
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection, Engine, String, Table, and_, any_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from bot.domain import policy
from bot.domain.durations import format_duration
from bot.domain.results import CardKind
from bot.infra.metrics import REMINDERS
from bot.operations.common import card_for, ledger_detail, when
from bot.operations.services import Services
from bot.providers.base import MessageState, ProviderError, ProviderName, SendState
from bot.providers.registry import display
from db.engine import reader
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, Outcome, ReminderClaim, TrackedSend
from db.store import UPCOMING_STATES

log = logging.getLogger(__name__)

JOB_PREFIX = "remind:"
JOBS_TABLE = "apscheduler_jobs"
SWEEP_PAGE = 1000  # batches per read of the start-up sweep
MAX_CHECKS = 25  # provider status calls before one reminder (a Telnyx batch may hold thousands)
CHECK_CONCURRENCY = 5
_TABLE_LOCK_KEY = 0x5E50_4E11  # pg_advisory_xact_lock key for "create the job table"

# Still waiting at the provider: a reminder makes sense. UNKNOWN: the provider could not say; remind.
_WAITING = {SendState.SCHEDULED, SendState.PENDING, SendState.UNKNOWN}
# What the provider's word means for the ledger when a send changed behind the bot's back.
_SEEN_AS: dict[SendState, tuple[Action, Outcome]] = {
    SendState.SENDING: (Action.SENT, Outcome.OK),
    SendState.SENT: (Action.SENT, Outcome.OK),
    SendState.CANCELLED: (Action.CANCELLED, Outcome.OK),
    SendState.DELETED: (Action.DELETED, Outcome.OK),
    SendState.FAILED: (Action.FAILED, Outcome.ERROR),
}

# The live Reminders, for job functions (they are stored by reference and get plain args only). The
# executor also sets `_current` around each job, so two bots in one process each run their own jobs.
_live: Reminders | None = None
_current: contextvars.ContextVar[Reminders | None] = contextvars.ContextVar("smsops_reminders", default=None)


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


class _JobStore(SQLAlchemyJobStore):
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


class _Executor(AsyncIOExecutor):
    """Runs reminder coroutines on the loop, with `_current` set to the Reminders that owns them."""

    def __init__(self, owner: Reminders) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        self._owner.running_jobs(add=job.id)  # until it has claimed: the sweep must not plan it again
        token = _current.set(self._owner)  # create_task copies the context: the job sees its owner
        try:
            super()._do_submit_job(job, run_times)
        finally:
            _current.reset(token)


@dataclass(frozen=True)
class _Seen:
    send: TrackedSend
    state: MessageState | None = None
    error: str | None = None


class Reminders:
    """Plans, drops and fires reminders; `services.reminders` is this once the runtime built it."""

    def __init__(self, services: Services, *, poll_seconds: float | None = None, sweep: bool = True) -> None:
        self.services = services
        self.engine: Engine = services.engine
        self.poll_seconds = max(0.2, poll_seconds if poll_seconds is not None
                                else services.settings.reminder_poll_seconds)
        self.sweep_on_start = sweep
        self.store = _JobStore(engine=self.engine, tablename=JOBS_TABLE)
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": self.store},
            executors={"default": _Executor(self)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running_lock = threading.Lock()
        self._running_jobs: set[str] = set()
        self._table_ready = False
        self.swept: asyncio.Future[int] | None = None  # the start-up sweep (tests and benchmarks await it)

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def leads(self) -> list[int]:
        seconds = {int(lead.total_seconds()) for lead in self.services.settings.reminder_leads}
        return sorted((s for s in seconds if s > 0), reverse=True)  # a 0s "reminder" would come too late

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def start(self) -> None:
        """Start inside the running event loop (after migrations)."""
        global _live
        _live = self
        self.ensure_table()
        self.scheduler.start()
        loop = asyncio.get_running_loop()
        self._spawn(self._poll())
        if self.sweep_on_start:
            self.swept = loop.run_in_executor(None, self._sweep_quietly)
        log.info("reminders started", extra={"leads": self.leads, "poll_seconds": self.poll_seconds})

    def shutdown(self) -> None:
        global _live
        for task in list(self._tasks):
            task.cancel()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if _live is self:
            _live = None

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

    def running_jobs(self, add: str | None = None, discard: str | None = None) -> set[str]:
        """Jobs submitted and not finished (the executor adds, `fire` discards; the sweep reads)."""
        with self._running_lock:
            if add is not None:
                self._running_jobs.add(add)
            if discard is not None:
                self._running_jobs.discard(discard)
            return set(self._running_jobs)

    # --- planning (called by operations, on the event loop) -------------------------------------
    def plan(self, send: TrackedSend) -> None:
        """Jobs for the batch of `send` at each lead; replaces existing ones (idempotent). Never raises:
        the send is already made; a reminder that could not be planned now is planned at the next start."""
        if send.send_at is None or send.state not in UPCOMING_STATES:
            return
        try:
            for lead, at in runs(send.send_at, self.leads, self.services.now()):
                self._add(send.batch_id, lead, at, replace=True)
        except Exception:
            log.exception("could not plan reminders", extra={"batch": send.batch_id})

    def _add(self, batch_id: str, lead: int, at: datetime, replace: bool) -> None:
        try:
            self.scheduler.add_job(
                fire_reminder, DateTrigger(run_date=at, timezone=UTC), args=[batch_id, lead],
                id=job_id(batch_id, lead), name=f"reminder {format_duration(timedelta(seconds=lead))} "
                f"before batch {batch_id}", replace_existing=replace,
            )
        except ConflictingIdError:
            pass

    def drop(self, send_id: str) -> None:
        """Remove the reminders of `send_id`'s batch once nothing in it is waiting any more. Blocking (one
        short transaction: callers on the event loop run it in a thread). Never raises (a reminder left
        behind finds nothing waiting when it fires, and says nothing)."""
        sends = TrackedSend.__table__  # type: ignore[attr-defined]
        try:
            with self.services.store.writing() as conn:
                batch_id = conn.execute(select(sends.c.batch_id).where(sends.c.id == send_id)).scalar()
                if batch_id is None or self._waiting(conn, batch_id):
                    return  # the others in the batch still go out: keep reminding about them
                if self._in_store():
                    # the check and the delete in one transaction: a send added to the batch in between
                    # cannot lose its reminders
                    conn.execute(self._batch_jobs(batch_id))
                    return
            self.remove_batch(batch_id)
        except Exception:
            log.exception("could not drop reminders", extra={"send": send_id})

    def _in_store(self) -> bool:
        """Whether planned jobs are in the database (else they wait in the scheduler's memory)."""
        return bool(self.scheduler.running and self._table_ready)

    @staticmethod
    def _waiting(conn: Connection, batch_id: str) -> bool:
        """Whether a send of the batch still goes out."""
        sends = TrackedSend.__table__  # type: ignore[attr-defined]
        return conn.execute(select(sends.c.id).where(
            sends.c.batch_id == batch_id, sends.c.state.in_(UPCOMING_STATES)).limit(1)).first() is not None

    def _batch_jobs(self, batch_id: str) -> Any:
        """Delete every job of a batch, whatever its lead."""
        return self.store.jobs_t.delete().where(self._of_batch(batch_id))

    def _of_batch(self, batch_id: str) -> Any:
        """The job ids of a batch: those starting `remind:<batch>:`. On SQLite a range of the primary
        key (`remind:<batch>:` up to `remind:<batch>;`, ';' following ':'): its BINARY collation compares
        bytes, while its LIKE ignores case and reads the whole table. Elsewhere a LIKE: PostgreSQL
        compares text in the database's collation, and under a language one (en_US, ICU) punctuation is
        ignored at first, so `remind:<batch>:3600` does not sort before `remind:<batch>;` and a range
        would miss it."""
        column = self.store.jobs_t.c.id
        prefix = f"{JOB_PREFIX}{batch_id}:"
        if self.engine.dialect.name == "sqlite":
            return and_(column >= prefix, column < prefix[:-1] + ";")
        return column.startswith(prefix, autoescape=True)

    def remove_batch(self, batch_id: str) -> None:
        """Delete every lead's job of a batch, now (also leads no longer configured)."""
        if not self.scheduler.running:  # jobs planned before start wait in memory
            for lead in self.leads:
                try:
                    self.scheduler.remove_job(job_id(batch_id, lead))
                except JobLookupError:
                    pass
        try:
            with self.engine.begin() as conn:
                conn.execute(self._batch_jobs(batch_id))
        except SQLAlchemyError:
            if self._table_ready:
                raise
            # before the first start on a new database there is no job table, and so no jobs

    def job_ids(self, batch_id: str) -> list[str]:
        """The reminder jobs stored for a batch (for tests and operators)."""
        with self.store.reader.connect() as conn:
            rows = conn.execute(select(self.store.jobs_t.c.id).where(self._of_batch(batch_id)))
            return sorted(r[0] for r in rows)

    def _one_of(self, column: Any, values: list[str]) -> Any:
        """`column IN values` for a page of the sweep (thousands of values). On PostgreSQL one array
        parameter (`= ANY(%s)`): an expanded IN list is rendered and parsed value by value, which was
        most of the sweep's time there."""
        if self.engine.dialect.name == "postgresql":
            return column == any_(bindparam("values", values, type_=postgresql.ARRAY(String)))
        return column.in_(values)

    def _sweep_quietly(self) -> int:
        try:
            return self.sweep()
        except Exception:  # a missed catch-up must not take the bot down; jobs already stored still fire
            log.exception("could not plan missing reminders")
            return -1

    def sweep(self, page: int = SWEEP_PAGE) -> int:
        """Plan what is missing: upcoming sends with neither a job nor a claim for a lead. Blocking.
        Reads in pages of batches, each in its own short transaction: on SQLite every transaction holds
        the database's write lock, and the scheduler and the bot must not wait for a whole sweep."""
        now = self.services.now()
        table = self.store.jobs_t
        leads = self.leads
        upcoming = (
            select(col(TrackedSend.batch_id), func.min(col(TrackedSend.send_at)).label("send_at"))
            .where(col(TrackedSend.state).in_(UPCOMING_STATES), col(TrackedSend.send_at) > now)
            .group_by(col(TrackedSend.batch_id))
            .order_by(col(TrackedSend.batch_id))
            .limit(page)
        )
        added = 0
        after = ""
        while True:
            with self.engine.connect() as conn:
                batches = conn.execute(upcoming.where(col(TrackedSend.batch_id) > after)).all()
            if not batches:
                break
            after = batches[-1][0]
            wanted: dict[tuple[str, int], datetime] = {}
            for batch_id, send_at in batches:
                if send_at is not None:
                    at_utc = send_at if send_at.tzinfo else send_at.replace(tzinfo=UTC)
                    wanted.update({(batch_id, lead): at for lead, at in runs(at_utc, leads, now)})
            if not wanted:
                continue
            with self.engine.connect() as conn:
                have = {r[0] for r in conn.execute(
                    select(table.c.id).where(self._one_of(table.c.id, [job_id(b, lead) for b, lead in wanted])))}
            # In this order: a job that ran before `have` was read is still running now, or has claimed.
            running = self.running_jobs()
            with self.engine.connect() as conn:
                claimed = {(r[0], r[1]) for r in conn.execute(
                    select(col(ReminderClaim.send_id), col(ReminderClaim.lead_seconds)).where(
                        self._one_of(col(ReminderClaim.send_id), sorted({b for b, _ in wanted}))))}
            for (batch_id, lead), at in wanted.items():
                jid = job_id(batch_id, lead)
                if jid not in have and (batch_id, lead) not in claimed and jid not in running:
                    self._add(batch_id, lead, at, replace=False)
                    added += 1
        if added:
            log.info("planned missing reminders", extra={"count": added})
        return added

    # --- firing --------------------------------------------------------------------------------
    async def fire(self, batch_id: str, lead_seconds: int) -> str:
        """Decide and do: returns posted, missed, skipped, superseded, gone or claimed-elsewhere."""
        try:
            outcome = await self._fire(batch_id, lead_seconds)
        finally:
            self.running_jobs(discard=job_id(batch_id, lead_seconds))
        log.info("reminder fired", extra={"batch": batch_id, "lead": lead_seconds, "outcome": outcome})
        return outcome

    async def _fire(self, batch_id: str, lead_seconds: int) -> str:
        services = self.services
        lead_text = format_duration(timedelta(seconds=lead_seconds))
        sends = await services.db(services.store.batch, batch_id)
        waiting = [s for s in sends if s.state in UPCOMING_STATES and s.send_at is not None]
        if not waiting:  # cancelled, sent, deleted: the ledger says so already
            await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", None)
            return "gone"
        first = waiting[0]
        send_at = min(s.send_at for s in waiting if s.send_at is not None)
        channel = first.channel or services.settings.sms_channel
        now = services.now()

        def note(action: Action, outcome: Outcome, detail: str, target: str = first.target) -> EntryDraft:
            return EntryDraft(actor=SYSTEM_ACTOR, action=action, outcome=outcome, channel=channel,
                              team=first.team, provider=first.provider, target=target, detail=detail)

        if send_at <= now:
            due = send_at - timedelta(seconds=lead_seconds)
            draft = note(Action.REMINDED, Outcome.ERROR, f"{lead_text} reminder missed: it was due at "
                         f"{when(due)} while the bot was not running; the send time {when(send_at)} passed")
            if await services.db(services.store.claim_reminder, batch_id, lead_seconds, "missed", draft):
                REMINDERS.labels(outcome="missed").inc()
                return "missed"
            return "claimed-elsewhere"

        if any(lead < lead_seconds and send_at - timedelta(seconds=lead) <= now for lead in self.leads):
            # A shorter lead is due too (the bot was down over both): that one speaks for both.
            await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", None)
            return "superseded"

        seen = await self._check(waiting)
        gone = [s for s in seen if s.state is not None and s.state.state not in _WAITING]
        still = [s for s in seen if s.state is None or s.state.state in _WAITING]
        still += [_Seen(s) for s in waiting[len(seen):]]  # beyond MAX_CHECKS: not asked
        for s in gone:
            await self._note_change(s, lead_text)
        if gone:
            await self._refresh_notice([s.send for s in gone])

        if not still:
            said = ", ".join(f"`{s.state.status}`" for s in gone if s.state is not None)
            log.info("no reminder: the provider says the send is no longer scheduled",
                     extra={"batch": batch_id, "status": said})
            if await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", None):
                REMINDERS.labels(outcome="skipped").inc()
                self.remove_batch(batch_id)
                return "skipped"
            return "claimed-elsewhere"

        if not channel:
            draft = note(Action.REMINDED, Outcome.ERROR, f"{lead_text} reminder not posted: the send was "
                         "made outside a channel and SMS_CHANNEL is not set")
            await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", draft)
            REMINDERS.labels(outcome="skipped").inc()
            return "skipped"

        sends_left = [s.send for s in still]
        send_at = min((s.send_at for s in sends_left if s.send_at is not None), default=send_at)
        card = card_for(sends_left, CardKind.REMINDER,
                        f"your SMS goes out in {format_duration(send_at - now)}", batch_id)
        card.mention_owner = True
        if first.provider == ProviderName.TELNYX:
            guard = policy.telnyx_cancel(send_at, now, services.settings.telnyx_cancel_guard)
            if not guard.allowed:
                card.cancel_blocked = f"Cancel is not offered: {guard.reason}."
        problems = [f"{display(s.send.provider)} `{s.send.target}`: {s.error}" for s in still if s.error]
        if problems:
            card.outcome = "⚠️ Could not check with the provider just now — " + "; ".join(problems[:3])
        detail = (f"{lead_text} reminder in {channel} for <@{first.created_by}>'s send: "
                  f"{card.recipient_count} recipient(s) at {when(send_at)}")
        if len(sends_left) > 1:
            detail += f", {len(sends_left)} messages ({', '.join(s.target for s in sends_left[:10])}" + (
                " …)" if len(sends_left) > 10 else ")")
        if problems:
            detail += "; provider not checked: " + "; ".join(problems[:3])
        draft = note(Action.REMINDED, Outcome.OK, detail, sends_left[0].target)
        if not await services.db(services.store.claim_reminder, batch_id, lead_seconds, "posted", draft):
            return "claimed-elsewhere"
        REMINDERS.labels(outcome="posted").inc()
        ts = await services.notifier.post_card(channel, card)
        if ts is None:
            await services.db(services.store.record, note(
                Action.FAILED, Outcome.ERROR, f"{lead_text} reminder could not be posted to {channel}",
                sends_left[0].target))
        return "posted"

    async def _check(self, sends: list[TrackedSend]) -> list[_Seen]:
        """Ask the provider about (up to MAX_CHECKS of) the sends: a reminder must not announce a send
        that was cancelled or sent elsewhere."""
        limit = asyncio.Semaphore(CHECK_CONCURRENCY)

        async def one(send: TrackedSend) -> _Seen:
            provider = self.services.providers.get(ProviderName(send.provider))
            if provider is None:
                return _Seen(send, error=f"{display(send.provider)} is not configured here")
            async with limit:
                try:
                    return _Seen(send, await provider.status(send.target))
                except ProviderError as error:
                    return _Seen(send, error=ledger_detail(error))

        return list(await asyncio.gather(*(one(s) for s in sends[:MAX_CHECKS])))

    async def _note_change(self, seen: _Seen, lead_text: str) -> None:
        """The provider says a send is no longer waiting: record it (once: the conditional state change
        decides between replicas) and move the tracked send on."""
        assert seen.state is not None
        services, send, state = self.services, seen.send, seen.state
        new_state = state.state.value
        if not await services.db(services.store.claim_send, send.id, UPCOMING_STATES, new_state):
            return
        action, outcome = _SEEN_AS.get(state.state, (Action.FAILED, Outcome.ERROR))
        hint = " (Solapi marks a cancelled group FAILED)" if (
            send.provider == ProviderName.SOLAPI and state.status == "FAILED") else ""
        detail = (f"before the {lead_text} reminder, {display(send.provider)} says `{state.status}`{hint}: "
                  "the send changed outside the bot; no reminder for it")
        draft = EntryDraft(actor=SYSTEM_ACTOR, action=action, outcome=outcome, channel=send.channel,
                           team=send.team, provider=send.provider, target=send.target, detail=detail)
        await services.db(services.store.set_state, send.id, new_state, state.status, None, [draft])

    async def _refresh_notice(self, changed: list[TrackedSend]) -> None:
        from bot.operations.cancel import refresh_card

        send = changed[0]
        words = ", ".join(sorted({f"`{s.provider_status or s.state}`" for s in changed}))
        try:
            fresh = await self.services.db(self.services.store.get_send, send.id)
            if fresh is not None:
                said = (f"{display(send.provider)} says `{fresh.provider_status}`" if len(changed) == 1
                        else f"Changed at the provider: {words}")
                await refresh_card(self.services, fresh, said + " (seen before a reminder)")
        except Exception:  # the notice is a courtesy; the ledger already has the change
            log.exception("could not update the notice", extra={"batch": send.batch_id})
