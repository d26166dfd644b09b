"""The bot's state besides the ledger: tracked sends, approvals, intents, seen requests.

Every change that is also an action writes its ledger entry in the same transaction, so a state
change and its record land together or not at all. Every write is a Core statement in a `writing()`
transaction (the write gate's queue on SQLite); ORM sessions only read."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from bot.domain.clock import Clock
from db.engine import reader, write_gate
from db.ledger import EntryDraft, append_row
from db.models import (
    HELD,
    Approval,
    ApprovalState,
    HeldApproval,
    HeldSend,
    InboxItem,
    InboxState,
    Intent,
    LedgerEntry,
    OptOut,
    ReminderClaim,
    SeenRequest,
    SlackName,
    TrackedSend,
)

UPCOMING_STATES = ("scheduled", "pending", "held")  # held: kept by the bot (bot/operations/held.py)
CANCELLING = "cancelling"

# The tables, written with Core statements: an ORM session and unit of work per call cost two to three
# times as much CPU, and the bot process is CPU-bound under load (bench/README.md, section 2).
_SENDS = TrackedSend.__table__  # type: ignore[attr-defined]
_INTENTS = Intent.__table__  # type: ignore[attr-defined]
_SEEN = SeenRequest.__table__  # type: ignore[attr-defined]
_OPTOUTS = OptOut.__table__  # type: ignore[attr-defined]
_INBOX = InboxItem.__table__  # type: ignore[attr-defined]
_QUEUED_COUNT = sa_select(func.count()).select_from(_INBOX).where(_INBOX.c.state == "queued")
_APPROVALS = Approval.__table__  # type: ignore[attr-defined]
_CLAIMS = ReminderClaim.__table__  # type: ignore[attr-defined]
_NAMES = SlackName.__table__  # type: ignore[attr-defined]
_HELD = HeldSend.__table__  # type: ignore[attr-defined]
_HELD_APPROVALS = HeldApproval.__table__  # type: ignore[attr-defined]
_SEND_BY_TARGET = sa_select(_SENDS).where(_SENDS.c.target == bindparam("target")).limit(1)
_SEND_BY_TARGET_AT = (sa_select(_SENDS).where(_SENDS.c.target == bindparam("target"),
                                              _SENDS.c.provider == bindparam("provider")).limit(1))
_SEND_BY_ID = sa_select(_SENDS).where(_SENDS.c.id == bindparam("send_id"))
_BATCH = sa_select(_SENDS).where(_SENDS.c.batch_id == bindparam("batch_id")).order_by(_SENDS.c.target)


def _send(row: Any) -> TrackedSend:
    return TrackedSend(**row._mapping)


def _values(model: Any, table: Any) -> dict[str, Any]:
    """A model object's columns, for a Core insert into its table."""
    return {c.name: getattr(model, c.name) for c in table.columns}


def new_id() -> str:
    return uuid.uuid4().hex



_GONE_OUT = ("sending", "sent")  # SendState values of a send that has left


def _state_change(state: str, provider_status: str | None, now: datetime) -> dict[str, object]:
    """The columns a tracked send's new state writes. A send that leaves without a time of its own (a Solapi
    group sent by `/sms send`, or seen sent by `/sms status`) takes the time it left: the daily caps count
    sends by the day they go out."""
    values: dict[str, object] = {"state": state, "updated_at": now}
    if provider_status is not None:
        values["provider_status"] = provider_status
    if state in _GONE_OUT:
        values["send_at"] = func.coalesce(_SENDS.c.send_at, now)
    return values


class Store:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

        self.reader = reader(engine)  # read-only transactions: DEFERRED on SQLite, never wait for writers
        self.gate = write_gate(engine)

    def session(self) -> Session:
        """An ORM session for reads only, on the reader (DEFERRED on SQLite: it takes no write lock, so
        it never waits behind writers nor makes them wait). Every write goes through `writing()`."""
        return Session(self.reader, expire_on_commit=False)

    @contextmanager
    def writing(self, urgent: bool = False) -> Iterator[Connection]:
        """One writing transaction (IMMEDIATE on SQLite), queued in this process by the write gate;
        `urgent` for the records a Slack request needs before its ack (db/engine.py, WriteGate). The
        store's only way to write: a transaction that bypassed the gate would wait in SQLite's busy
        handler instead of the queue."""
        with self.gate.hold(urgent), self.engine.begin() as conn:
            yield conn

    # --- ledger ------------------------------------------------------------------------------
    def record(self, *drafts: EntryDraft) -> list[LedgerEntry]:
        with self.writing() as conn:
            return [LedgerEntry(**append_row(conn, d, self.clock.now())) for d in drafts]

    def entries_for_request(self, request_id: str, limit: int = 20) -> list[LedgerEntry]:
        """What the ledger recorded for one Slack request (by its request id), oldest first."""
        with self.session() as session:
            stmt = select(LedgerEntry).where(LedgerEntry.request_id == request_id)
            return list(session.exec(stmt.order_by(col(LedgerEntry.seq)).limit(limit)))

    def last_entry(self, target: str, actions: Sequence[str] | None = None) -> LedgerEntry | None:
        with self.session() as session:
            stmt = select(LedgerEntry).where(LedgerEntry.target == target)
            if actions:
                stmt = stmt.where(col(LedgerEntry.action).in_(actions))
            return session.exec(stmt.order_by(col(LedgerEntry.seq).desc()).limit(1)).first()

    # --- tracked sends -----------------------------------------------------------------------
    def find_send(self, target: str, provider: str | None = None) -> TrackedSend | None:
        with self.reader.connect() as conn:
            if provider:
                row = conn.execute(_SEND_BY_TARGET_AT, {"target": target, "provider": provider}).first()
            else:
                row = conn.execute(_SEND_BY_TARGET, {"target": target}).first()
            return _send(row) if row is not None else None

    def get_send(self, send_id: str) -> TrackedSend | None:
        with self.reader.connect() as conn:
            row = conn.execute(_SEND_BY_ID, {"send_id": send_id}).first()
            return _send(row) if row is not None else None

    def batch(self, batch_id: str) -> list[TrackedSend]:
        with self.reader.connect() as conn:
            return [_send(row) for row in conn.execute(_BATCH, {"batch_id": batch_id})]

    def add_sends(self, sends: Iterable[TrackedSend], drafts: Iterable[EntryDraft]) -> None:
        """New tracked sends and their ledger entries, together."""
        now = self.clock.now()
        with self.writing() as conn:
            for send in sends:
                # a provider id seen before (a re-sync) replaces the old row
                conn.execute(_SENDS.delete().where(_SENDS.c.provider == send.provider,
                                                   _SENDS.c.target == send.target))
                conn.execute(_SENDS.insert(), _values(send, _SENDS))
            for draft in drafts:
                append_row(conn, draft, now)

    def set_notice(self, batch_id: str, channel: str, ts: str) -> None:
        with self.writing() as conn:
            conn.execute(_SENDS.update().where(_SENDS.c.batch_id == batch_id)
                         .values(notice_channel=channel, notice_ts=ts))

    def claim_send(self, send_id: str, from_states: Sequence[str], to_state: str,
                   intent: Intent | None = None) -> bool:
        """Move a send from one of `from_states` to `to_state`; False if someone else moved it first.
        With `intent`, the intent is opened in the same transaction (only when the claim is won), so a
        crash can never leave a claimed send without the intent that reconciliation settles."""
        with self.writing() as conn:
            result = conn.execute(
                _SENDS.update()
                .where(_SENDS.c.id == send_id, _SENDS.c.state.in_(from_states))
                .values(state=to_state, updated_at=self.clock.now())
            )
            won = bool(result.rowcount)
            if won and intent is not None:
                conn.execute(_INTENTS.insert(), _values(intent, _INTENTS))
            return won

    def set_state(
        self,
        send_id: str,
        state: str,
        provider_status: str | None = None,
        send_at: datetime | None = None,
        drafts: Sequence[EntryDraft] = (),
    ) -> None:
        now = self.clock.now()
        values = _state_change(state, provider_status, now)
        if send_at is not None:
            values["send_at"] = send_at
        with self.writing() as conn:
            conn.execute(_SENDS.update().where(_SENDS.c.id == send_id).values(**values))
            for draft in drafts:
                append_row(conn, draft, now)

    def upcoming(self, now: datetime, owner: str | None = None, limit: int = 50,
                 provider: str | None = None) -> list[TrackedSend]:
        with self.session() as session:
            stmt = select(TrackedSend).where(
                col(TrackedSend.state).in_(UPCOMING_STATES),
                or_(col(TrackedSend.send_at).is_(None), col(TrackedSend.send_at) >= now),
            )
            if owner:
                stmt = stmt.where(TrackedSend.created_by == owner)
            if provider:
                stmt = stmt.where(TrackedSend.provider == provider)
            stmt = stmt.order_by(col(TrackedSend.send_at).asc().nulls_last(), col(TrackedSend.id)).limit(limit)
            return list(session.exec(stmt))

    def owned_upcoming(self, owner: str, now: datetime, since: datetime | None,
                       created_before: datetime | None = None) -> list[TrackedSend]:
        with self.session() as session:
            stmt = select(TrackedSend).where(
                TrackedSend.created_by == owner,
                TrackedSend.state == "scheduled",
                or_(col(TrackedSend.send_at).is_(None), col(TrackedSend.send_at) >= now),
            )
            if since is not None:
                stmt = stmt.where(col(TrackedSend.created_at) >= since)
            if created_before is not None:
                stmt = stmt.where(col(TrackedSend.created_at) <= created_before)
            return list(session.exec(stmt.order_by(col(TrackedSend.send_at))))

    # --- approvals ---------------------------------------------------------------------------
    def add_approval(self, approval: Approval, send: TrackedSend | None, draft: EntryDraft) -> None:
        with self.writing() as conn:
            if send is not None:
                existing = conn.execute(sa_select(_SENDS.c.id).where(
                    _SENDS.c.provider == send.provider, _SENDS.c.target == send.target).limit(1)).first()
                if existing is None:  # the approval's foreign key needs the send first
                    conn.execute(_SENDS.insert(), _values(send, _SENDS))
            conn.execute(_APPROVALS.insert(), _values(approval, _APPROVALS))
            append_row(conn, draft, self.clock.now())

    def get_approval(self, approval_id: str) -> Approval | None:
        with self.session() as session:
            return session.get(Approval, approval_id)

    def open_approval_for(self, send_id: str) -> Approval | None:
        with self.session() as session:
            stmt = select(Approval).where(Approval.send_id == send_id, Approval.state == ApprovalState.PENDING)
            return session.exec(stmt).first()

    def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None:
        with self.writing() as conn:
            conn.execute(_APPROVALS.update().where(_APPROVALS.c.id == approval_id)
                         .values(message_channel=channel, message_ts=ts))

    def claim_approval(self, approval_id: str, user: str, to_state: str, now: datetime,
                       draft: EntryDraft | None = None, intent: Intent | None = None) -> bool:
        """The one conditional update that makes a decision happen once, however many clicks arrive.
        `intent` (the send about to be made) is opened in the same transaction when the claim is won,
        so a crash cannot leave a claimed approval that reconciliation does not know of."""
        with self.writing() as conn:
            result = conn.execute(
                _APPROVALS.update()
                .where(_APPROVALS.c.id == approval_id, _APPROVALS.c.state == ApprovalState.PENDING,
                       _APPROVALS.c.expires_at > now)
                .values(state=to_state, decided_by=user, decided_at=now)
            )
            won = bool(result.rowcount)
            if won and draft is not None:
                append_row(conn, draft, now)
            if won and intent is not None:
                conn.execute(_INTENTS.insert(), _values(intent, _INTENTS))
            return won

    def expire_approval(self, approval_id: str, now: datetime) -> bool:
        with self.writing() as conn:
            result = conn.execute(
                _APPROVALS.update()
                .where(_APPROVALS.c.id == approval_id, _APPROVALS.c.state == ApprovalState.PENDING,
                       _APPROVALS.c.expires_at <= now)
                .values(state=ApprovalState.EXPIRED, decided_at=now)
            )
            return bool(result.rowcount)

    def close_approvals_for(self, send_id: str, now: datetime) -> list[Approval]:
        """Close every open request to send `send_id` (its group was deleted, cancelled or sent); returns
        the ones this call closed, whose cards are to be updated. The conditional update makes a click
        racing with it either win its claim first or find the request closed."""
        closed: list[Approval] = []
        with self.writing() as conn:
            pending = conn.execute(sa_select(_APPROVALS).where(
                _APPROVALS.c.send_id == send_id, _APPROVALS.c.state == ApprovalState.PENDING)).all()
            for row in pending:
                result = conn.execute(
                    _APPROVALS.update()
                    .where(_APPROVALS.c.id == row.id, _APPROVALS.c.state == ApprovalState.PENDING)
                    .values(state=ApprovalState.CLOSED, decided_at=now)
                )
                if result.rowcount:
                    closed.append(Approval(**{**row._mapping, "state": ApprovalState.CLOSED, "decided_at": now}))
        return closed

    def finish_approval(self, approval_id: str, state: str) -> None:
        with self.writing() as conn:
            conn.execute(_APPROVALS.update().where(_APPROVALS.c.id == approval_id).values(state=state))

    def pending_approvals(self, now: datetime, limit: int = 20) -> list[Approval]:
        with self.session() as session:
            stmt = select(Approval).where(Approval.state == ApprovalState.PENDING,
                                          col(Approval.expires_at) > now)
            return list(session.exec(stmt.order_by(col(Approval.created_at).desc()).limit(limit)))

    # --- intents -----------------------------------------------------------------------------
    def open_intent(self, intent: Intent, urgent: bool = False) -> None:
        with self.writing(urgent) as conn:
            conn.execute(_INTENTS.insert(), _values(intent, _INTENTS))

    def close_intent(
        self,
        intent_id: str,
        drafts: Sequence[EntryDraft] = (),
        send_updates: Sequence[tuple[str, str, str | None]] = (),
        new_sends: Sequence[TrackedSend] = (),
    ) -> bool:
        """Record the outcome of a provider call: ledger entries, state changes and the intent's
        close, in one transaction. `send_updates`: (send_id, state, provider_status)."""
        now = self.clock.now()
        with self.writing() as conn:
            closed = conn.execute(
                _INTENTS.update()
                .where(_INTENTS.c.id == intent_id, _INTENTS.c.finished_at.is_(None))
                .values(finished_at=now)
            )
            if not closed.rowcount:
                # someone (a reconciling replica) recorded this outcome already: nothing was written
                return False
            if new_sends:
                conn.execute(_SENDS.insert(), [_values(send, _SENDS) for send in new_sends])
            for send_id, state, provider_status in send_updates:
                conn.execute(_SENDS.update().where(_SENDS.c.id == send_id)
                             .values(**_state_change(state, provider_status, now)))
            for draft in drafts:
                append_row(conn, draft, now)
            return True

    def move_send(self, intent_id: str, send_id: str, batch_id: str, send_at: datetime, provider_status: str,
                  drafts: Sequence[EntryDraft] = ()) -> bool:
        """A send given a new time at the provider (same id): its new time and batch (the reminders and
        the notice of the new time), its ledger entries and the intent's close, in one transaction."""
        now = self.clock.now()
        with self.writing() as conn:
            closed = conn.execute(
                _INTENTS.update()
                .where(_INTENTS.c.id == intent_id, _INTENTS.c.finished_at.is_(None))
                .values(finished_at=now)
            )
            if not closed.rowcount:
                return False
            conn.execute(_SENDS.update().where(_SENDS.c.id == send_id).values(
                batch_id=batch_id, send_at=send_at, provider_status=provider_status, updated_at=now,
                notice_channel=None, notice_ts=None))
            for draft in drafts:
                append_row(conn, draft, now)
            return True

    def open_intents(self, started_before: datetime | None = None) -> list[Intent]:
        with self.session() as session:
            stmt = select(Intent).where(col(Intent.finished_at).is_(None))
            if started_before is not None:
                stmt = stmt.where(col(Intent.started_at) <= started_before)
            return list(session.exec(stmt.order_by(col(Intent.started_at))))

    def intents_started_since(self, actor: str, since: datetime) -> list[Intent]:
        """An actor's intents, open or closed, started at or after `since` (an interrupted request's
        provider calls may have been closed by reconciliation before its retake looks)."""
        with self.session() as session:
            stmt = select(Intent).where(Intent.actor == actor, col(Intent.started_at) >= since)
            return list(session.exec(stmt.order_by(col(Intent.started_at))))

    # --- reminders ---------------------------------------------------------------------------
    def claim_reminder(self, send_id: str, lead_seconds: int, status: str,
                       draft: EntryDraft | None = None) -> bool:
        """Insert the claim; only the first replica to do so gets True."""
        now = self.clock.now()
        try:
            with self.writing() as conn:
                # the insert first: a replica that loses on the primary key writes no ledger entry
                conn.execute(_CLAIMS.insert(), {"send_id": send_id, "lead_seconds": lead_seconds,
                                                "status": status, "claimed_at": now})
                if draft is not None:
                    append_row(conn, draft, now)
                return True
        except IntegrityError:
            return False

    # --- Slack names ---------------------------------------------------------------------------
    def remember_name(self, user_id: str, name: str) -> None:
        """Keep the name a user went by (written only when it is new or changed)."""
        name = name.strip().lstrip("@")[:80]
        if not user_id or not name:
            return
        user_id = user_id[:64]
        try:
            with self.writing() as conn:
                known = conn.execute(sa_select(_NAMES.c.name).where(_NAMES.c.user_id == user_id)).first()
                if known is not None and known.name == name:
                    return
                values = {"name": name, "seen_at": self.clock.now()}
                if known is None:
                    conn.execute(_NAMES.insert(), {"user_id": user_id, **values})
                else:
                    conn.execute(_NAMES.update().where(_NAMES.c.user_id == user_id).values(**values))
        except IntegrityError:  # another request for the same user wrote it first
            pass

    # --- Slack request de-duplication ---------------------------------------------------------
    def first_time(self, key: str, urgent: bool = False) -> bool:
        """True the first time a request key is seen (replays and retries get False)."""
        now = self.clock.now()
        try:
            with self.writing(urgent) as conn:
                conn.execute(_SEEN.insert(), {"key": key[:128], "at": now})
                return True
        except IntegrityError:
            return False

    def forget_seen(self, key: str) -> None:
        """Undo `first_time` for a request whose handling failed, so its redelivery is acted on."""
        with self.writing() as conn:
            conn.execute(_SEEN.delete().where(_SEEN.c.key == key[:128]))

    def forget_seen_before(self, cutoff: datetime) -> None:
        with self.writing() as conn:
            conn.execute(_SEEN.delete().where(_SEEN.c.at < cutoff))

    # --- opt-outs (bot/operations/optout.py, guard.py) ------------------------------------------
    def add_optout(self, optout: OptOut, draft: EntryDraft) -> bool:
        """Put a number on the opt-out list with its ledger entry; False (nothing written) if it is on it."""
        with self.writing() as conn:
            if conn.execute(sa_select(_OPTOUTS.c.number).where(_OPTOUTS.c.number == optout.number)).first():
                return False
            conn.execute(_OPTOUTS.insert(), _values(optout, _OPTOUTS))
            append_row(conn, draft, self.clock.now())
            return True

    def remove_optout(self, number: str, draft: EntryDraft) -> bool:
        """Take a number off the list with its ledger entry; False (nothing written) if it was not on it."""
        with self.writing() as conn:
            removed = conn.execute(_OPTOUTS.delete().where(_OPTOUTS.c.number == number))
            if not removed.rowcount:
                return False
            append_row(conn, draft, self.clock.now())
            return True

    def opted_out(self, numbers: Sequence[str]) -> list[str]:
        """Which of `numbers` are on the opt-out list, in the order given."""
        found: set[str] = set()
        with self.reader.connect() as conn:
            for start in range(0, len(numbers), 500):  # bound parameters per statement stay few
                chunk = list(numbers[start:start + 500])
                found.update(row[0] for row in conn.execute(
                    sa_select(_OPTOUTS.c.number).where(_OPTOUTS.c.number.in_(chunk))))
        return [n for n in numbers if n in found]

    def optouts(self, limit: int = 50) -> tuple[int, list[OptOut]]:
        """How many numbers are opted out, and the newest `limit` of them."""
        with self.reader.connect() as conn:
            total = conn.execute(sa_select(func.count()).select_from(_OPTOUTS)).scalar_one()
            rows = conn.execute(sa_select(_OPTOUTS).order_by(_OPTOUTS.c.added_at.desc()).limit(limit))
            return int(total), [OptOut(**row._mapping) for row in rows]

    # --- daily caps (bot/operations/guard.py) ----------------------------------------------------
    def recipients_going_out(self, provider: str, start: datetime, end: datetime) -> int:
        """Recipients of the sends at `provider` that go out in [start, end): scheduled, sending or sent
        (cancelled, failed and deleted ones do not count)."""
        with self.reader.connect() as conn:
            total = conn.execute(
                sa_select(func.coalesce(func.sum(_SENDS.c.recipient_count), 0)).where(
                    _SENDS.c.provider == provider, _SENDS.c.send_at >= start, _SENDS.c.send_at < end,
                    _SENDS.c.state.notin_(("cancelled", "failed", "deleted")))
            ).scalar_one()
            return int(total)

    # --- the Slack inbox (bot/server/inbox.py) ----------------------------------------------------
    def enqueue_request(self, item: InboxItem, ack_text: Callable[[int], str] = lambda _: "") -> int | None:
        """The one write in front of an ack: the replay check and the durable request in one transaction
        (the unique key refuses a body queued before). Returns how many queued requests are ahead of it
        (`ack_text(ahead)`, what the ack says, is kept with it), or None for a replay or Slack's retry."""
        values = _values(item, _INBOX)
        values.pop("seq")
        try:
            with self.writing(urgent=True) as conn:
                ahead = int(conn.execute(_QUEUED_COUNT).scalar_one())
                values["ack_text"] = ack_text(ahead)
                conn.execute(_INBOX.insert(), values)
                return ahead
        except IntegrityError:
            return None

    def take_request(self, taker: str, lease_until: datetime) -> InboxItem | None:
        """The oldest queued request, or one whose worker's lease ran out (it died), now held by
        `taker`. Workers of other processes skip the rows held (FOR UPDATE SKIP LOCKED on PostgreSQL;
        SQLite has one writer at a time)."""
        now = self.clock.now()
        oldest = (
            sa_select(_INBOX.c.seq)
            .where(or_(_INBOX.c.state == InboxState.QUEUED,
                       and_(_INBOX.c.state == InboxState.TAKEN, _INBOX.c.lease_until < now)))
            .order_by(_INBOX.c.seq).limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.writing() as conn:
            row = conn.execute(
                _INBOX.update().where(_INBOX.c.seq == oldest)
                .values(state=InboxState.TAKEN, taker=taker[:64], taken_at=now, lease_until=lease_until,
                        attempts=_INBOX.c.attempts + 1)
                .returning(*_INBOX.c)
            ).first()
        return InboxItem(**row._mapping) if row is not None else None

    def renew_request(self, seq: int, taker: str, lease_until: datetime) -> bool:
        """Keep holding a request while its work runs; False if another worker took it over."""
        with self.writing() as conn:
            return bool(conn.execute(
                _INBOX.update().where(_INBOX.c.seq == seq, _INBOX.c.taker == taker[:64],
                                      _INBOX.c.state == InboxState.TAKEN)
                .values(lease_until=lease_until)
            ).rowcount)

    def settle_request(self, seq: int, taker: str) -> bool:
        with self.writing() as conn:
            return bool(conn.execute(
                _INBOX.update().where(_INBOX.c.seq == seq, _INBOX.c.taker == taker[:64],
                                      _INBOX.c.state == InboxState.TAKEN)
                .values(state=InboxState.DONE, done_at=self.clock.now(), lease_until=None)
            ).rowcount)

    def unsettled_request_ids(self) -> set[str]:
        """The request ids the inbox still owns (queued or taken): their workers answer them."""
        with self.reader.connect() as conn:
            rows = conn.execute(sa_select(_INBOX.c.request_id).where(_INBOX.c.state != InboxState.DONE))
            return {str(r[0]) for r in rows}

    def queued_requests(self) -> int:
        with self.reader.connect() as conn:
            return int(conn.execute(sa_select(func.count()).select_from(_INBOX)
                                    .where(_INBOX.c.state == InboxState.QUEUED)).scalar_one())

    def forget_settled_before(self, cutoff: datetime) -> None:
        """Settled requests older than Slack's 5-minute signature window can no longer be replayed."""
        with self.writing() as conn:
            conn.execute(_INBOX.delete().where(_INBOX.c.state == InboxState.DONE, _INBOX.c.done_at < cutoff))

    # --- held sends (bot/operations/held.py) ------------------------------------------------------
    def add_held(self, send: TrackedSend, held: HeldSend, draft: EntryDraft) -> None:
        """A send the bot keeps, its content and its ledger entry, together."""
        with self.writing() as conn:
            conn.execute(_SENDS.insert(), _values(send, _SENDS))
            conn.execute(_HELD.insert(), _values(held, _HELD))
            append_row(conn, draft, self.clock.now())

    def get_held(self, send_id: str) -> HeldSend | None:
        with self.reader.connect() as conn:
            row = conn.execute(sa_select(_HELD).where(_HELD.c.send_id == send_id)).first()
            return HeldSend(**row._mapping) if row is not None else None

    def due_held(self, now: datetime, limit: int = 100) -> list[tuple[TrackedSend, HeldSend]]:
        """Held sends whose submission time has come, soonest first."""
        stmt = (sa_select(_SENDS, _HELD).join(_HELD, _HELD.c.send_id == _SENDS.c.id)
                .where(_SENDS.c.state == HELD, _HELD.c.submit_at.is_not(None), _HELD.c.submit_at <= now)
                .order_by(_HELD.c.submit_at).limit(limit))
        with self.reader.connect() as conn:
            rows = conn.execute(stmt).all()
        send_keys = [c.name for c in _SENDS.columns]
        held_keys = [c.name for c in _HELD.columns]
        return [(TrackedSend(**{k: row._mapping[_SENDS.c[k]] for k in send_keys}),
                 HeldSend(**{k: row._mapping[_HELD.c[k]] for k in held_keys})) for row in rows]

    def claim_held(self, send_id: str, to_state: str, intent: Intent | None = None,
                   drafts: Sequence[EntryDraft] = ()) -> bool:
        """Move a held send on (submitting, cancelled, failed…) once, whichever replica or click asks first;
        the intent (a submission) and the ledger entries are written only by the winner, in the same
        transaction."""
        now = self.clock.now()
        with self.writing() as conn:
            won = bool(conn.execute(_SENDS.update().where(_SENDS.c.id == send_id, _SENDS.c.state == HELD)
                                    .values(state=to_state, updated_at=now)).rowcount)
            if not won:
                return False
            if intent is not None:
                conn.execute(_INTENTS.insert(), _values(intent, _INTENTS))
                conn.execute(_HELD.update().where(_HELD.c.send_id == send_id)
                             .values(intent_id=intent.id, updated_at=now))
            for draft in drafts:
                append_row(conn, draft, now)
            return True

    def reschedule_held(self, send_id: str, send_at: datetime, submit_at: datetime | None,
                        draft: EntryDraft) -> bool:
        """A new send time for a send still held (nothing at the provider to change); False once it was
        submitted, cancelled or is being submitted."""
        now = self.clock.now()
        with self.writing() as conn:
            won = bool(conn.execute(_SENDS.update().where(_SENDS.c.id == send_id, _SENDS.c.state == HELD)
                                    .values(send_at=send_at, updated_at=now)).rowcount)
            if won:
                conn.execute(_HELD.update().where(_HELD.c.send_id == send_id)
                             .values(submit_at=submit_at, updated_at=now))
                append_row(conn, draft, now)
            return won

    def release_held(self, send_id: str, submit_at: datetime, draft: EntryDraft | None = None) -> bool:
        """Make an approved hold due for submission, once: of several approvals meeting the quorum at the
        same moment only one releases it (and writes `draft`); False for the others."""
        now = self.clock.now()
        with self.writing() as conn:
            held = sa_select(_SENDS.c.id).where(_SENDS.c.id == send_id, _SENDS.c.state == HELD)
            won = bool(conn.execute(_HELD.update().where(_HELD.c.send_id == send_id, _HELD.c.submit_at.is_(None),
                                                         _HELD.c.send_id.in_(held))
                                    .values(submit_at=submit_at, updated_at=now)).rowcount)
            if won and draft is not None:
                append_row(conn, draft, now)
            return won

    def add_held_approval(self, send_id: str, user: str, draft: EntryDraft) -> bool:
        """One person's approval, recorded once (a repeated click by the same person adds nothing)."""
        now = self.clock.now()
        try:
            with self.writing() as conn:
                if conn.execute(sa_select(_SENDS.c.id).where(_SENDS.c.id == send_id,
                                                             _SENDS.c.state == HELD)).first() is None:
                    return False
                conn.execute(_HELD_APPROVALS.insert(), {"send_id": send_id, "user_id": user, "at": now})
                append_row(conn, draft, now)
                return True
        except IntegrityError:
            return False

    def held_approvers(self, send_id: str) -> list[str]:
        with self.reader.connect() as conn:
            rows = conn.execute(sa_select(_HELD_APPROVALS.c.user_id).where(_HELD_APPROVALS.c.send_id == send_id)
                                .order_by(_HELD_APPROVALS.c.at))
            return [row[0] for row in rows]

    def expired_approval_holds(self, now: datetime, limit: int = 100) -> list[TrackedSend]:
        stmt = (sa_select(_SENDS).join(_HELD, _HELD.c.send_id == _SENDS.c.id)
                .where(_SENDS.c.state == HELD, _HELD.c.submit_at.is_(None), _HELD.c.expires_at <= now).limit(limit))
        with self.reader.connect() as conn:
            return [_send(row) for row in conn.execute(stmt)]

    def settle_submitted_held(self) -> int:
        """Held sends left `submitting` by a crash whose intent reconciliation has since closed: they were
        handed to the provider (the outcome is the intent's ledger entry)."""
        with self.writing() as conn:
            finished = sa_select(_INTENTS.c.id).where(_INTENTS.c.finished_at.is_not(None))
            ids = sa_select(_HELD.c.send_id).where(_HELD.c.intent_id.in_(finished))
            return int(conn.execute(_SENDS.update().where(_SENDS.c.state == "submitting", _SENDS.c.id.in_(ids))
                                    .values(state="submitted", updated_at=self.clock.now())).rowcount)

    def approvers_in_ledger(self, target: str, marker: str) -> list[str]:
        """Who recorded an approval of one `/sms send` request under the approval rules: the actors of
        `approved` entries on `target` whose detail starts with `marker` (the request's id), in order. The
        ledger is the record; the final send is still claimed once (claim_approval)."""
        with self.session() as session:
            stmt = (select(LedgerEntry.actor).where(LedgerEntry.target == target, LedgerEntry.action == "approved",
                                                    col(LedgerEntry.detail).startswith(marker, autoescape=True))
                    .order_by(col(LedgerEntry.seq)))
            return list(dict.fromkeys(session.exec(stmt)))
