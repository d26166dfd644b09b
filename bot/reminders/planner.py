"""Planning reminders: a batch's jobs at each lead, dropping them when nothing in the batch waits, and the
start-up sweep that plans what is missing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection, String, and_, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from bot.domain.durations import format_duration
from bot.reminders.jobs import FIRE_REMINDER, JOB_PREFIX, ReminderJobs, job_id, runs
from db.models import ReminderClaim, TrackedSend
from db.store import UPCOMING_STATES

log = logging.getLogger(__name__)

SWEEP_PAGE = 1000  # batches per read of the start-up sweep


class Planner(ReminderJobs):
    """Plans and drops reminder jobs (called by operations, on the event loop) and sweeps on start."""

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
                FIRE_REMINDER, DateTrigger(run_date=at, timezone=UTC), args=[batch_id, lead],
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
