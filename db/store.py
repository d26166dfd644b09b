"""The bot's state besides the ledger: tracked sends, approvals, intents, seen requests.

Every change that is also an action writes its ledger entry in the same transaction, so a state
change and its record land together or not at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from bot.clock import Clock
from db.ledger import EntryDraft, append
from db.models import Approval, ApprovalState, Intent, LedgerEntry, ReminderClaim, SeenRequest, TrackedSend

UPCOMING_STATES = ("scheduled", "pending")
CANCELLING = "cancelling"


def new_id() -> str:
    return uuid.uuid4().hex


class Store:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- ledger ------------------------------------------------------------------------------
    def record(self, *drafts: EntryDraft) -> list[LedgerEntry]:
        with self.session() as session:
            entries = [append(session, d, self.clock.now()) for d in drafts]
            session.commit()
            return entries

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
        with self.session() as session:
            stmt = select(TrackedSend).where(TrackedSend.target == target)
            if provider:
                stmt = stmt.where(TrackedSend.provider == provider)
            return session.exec(stmt.limit(1)).first()

    def get_send(self, send_id: str) -> TrackedSend | None:
        with self.session() as session:
            return session.get(TrackedSend, send_id)

    def batch(self, batch_id: str) -> list[TrackedSend]:
        with self.session() as session:
            stmt = select(TrackedSend).where(TrackedSend.batch_id == batch_id).order_by(col(TrackedSend.target))
            return list(session.exec(stmt))

    def add_sends(self, sends: Iterable[TrackedSend], drafts: Iterable[EntryDraft]) -> None:
        """New tracked sends and their ledger entries, together."""
        now = self.clock.now()
        with self.session() as session:
            for send in sends:
                existing = session.exec(
                    select(TrackedSend).where(
                        TrackedSend.provider == send.provider, TrackedSend.target == send.target
                    )
                ).first()
                if existing is not None:
                    session.delete(existing)
                    session.flush()
                session.add(send)
            for draft in drafts:
                append(session, draft, now)
            session.commit()

    def set_notice(self, batch_id: str, channel: str, ts: str) -> None:
        with self.session() as session:
            session.execute(
                update(TrackedSend)
                .where(col(TrackedSend.batch_id) == batch_id)
                .values(notice_channel=channel, notice_ts=ts)
            )
            session.commit()

    def claim_send(self, send_id: str, from_states: Sequence[str], to_state: str,
                   intent: Intent | None = None) -> bool:
        """Move a send from one of `from_states` to `to_state`; False if someone else moved it first.
        With `intent`, the intent is opened in the same transaction (only when the claim is won), so a
        crash can never leave a claimed send without the intent that reconciliation settles."""
        with self.session() as session:
            result = session.execute(
                update(TrackedSend)
                .where(col(TrackedSend.id) == send_id, col(TrackedSend.state).in_(from_states))
                .values(state=to_state, updated_at=self.clock.now())
            )
            won = bool(result.rowcount)  # type: ignore[attr-defined]
            if won and intent is not None:
                session.add(intent)
            session.commit()
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
        with self.session() as session:
            send = session.get(TrackedSend, send_id)
            if send is not None:
                send.state = state
                if provider_status is not None:
                    send.provider_status = provider_status
                if send_at is not None:
                    send.send_at = send_at
                send.updated_at = now
                session.add(send)
            for draft in drafts:
                append(session, draft, now)
            session.commit()

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

    def owned_upcoming(self, owner: str, now: datetime, since: datetime | None) -> list[TrackedSend]:
        with self.session() as session:
            stmt = select(TrackedSend).where(
                TrackedSend.created_by == owner,
                TrackedSend.state == "scheduled",
                or_(col(TrackedSend.send_at).is_(None), col(TrackedSend.send_at) >= now),
            )
            if since is not None:
                stmt = stmt.where(col(TrackedSend.created_at) >= since)
            return list(session.exec(stmt.order_by(col(TrackedSend.send_at))))

    # --- approvals ---------------------------------------------------------------------------
    def add_approval(self, approval: Approval, send: TrackedSend | None, draft: EntryDraft) -> None:
        with self.session() as session:
            if send is not None:
                existing = session.exec(
                    select(TrackedSend).where(
                        TrackedSend.provider == send.provider, TrackedSend.target == send.target
                    )
                ).first()
                if existing is None:
                    session.add(send)
                    session.flush()  # the approval's foreign key needs the send first
            session.add(approval)
            append(session, draft, self.clock.now())
            session.commit()

    def get_approval(self, approval_id: str) -> Approval | None:
        with self.session() as session:
            return session.get(Approval, approval_id)

    def open_approval_for(self, send_id: str) -> Approval | None:
        with self.session() as session:
            stmt = select(Approval).where(Approval.send_id == send_id, Approval.state == ApprovalState.PENDING)
            return session.exec(stmt).first()

    def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None:
        with self.session() as session:
            session.execute(
                update(Approval).where(col(Approval.id) == approval_id).values(message_channel=channel,
                                                                              message_ts=ts)
            )
            session.commit()

    def claim_approval(self, approval_id: str, user: str, to_state: str, now: datetime,
                       draft: EntryDraft | None = None, intent: Intent | None = None) -> bool:
        """The one conditional update that makes a decision happen once, however many clicks arrive.
        `intent` (the send about to be made) is opened in the same transaction when the claim is won,
        so a crash cannot leave a claimed approval that reconciliation does not know of."""
        with self.session() as session:
            result = session.execute(
                update(Approval)
                .where(
                    col(Approval.id) == approval_id,
                    col(Approval.state) == ApprovalState.PENDING,
                    col(Approval.expires_at) > now,
                )
                .values(state=to_state, decided_by=user, decided_at=now)
            )
            won = bool(result.rowcount)  # type: ignore[attr-defined]
            if won and draft is not None:
                append(session, draft, now)
            if won and intent is not None:
                session.add(intent)
            session.commit()
            return won

    def expire_approval(self, approval_id: str, now: datetime) -> bool:
        with self.session() as session:
            result = session.execute(
                update(Approval)
                .where(col(Approval.id) == approval_id, col(Approval.state) == ApprovalState.PENDING,
                       col(Approval.expires_at) <= now)
                .values(state=ApprovalState.EXPIRED, decided_at=now)
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish_approval(self, approval_id: str, state: str) -> None:
        with self.session() as session:
            session.execute(update(Approval).where(col(Approval.id) == approval_id).values(state=state))
            session.commit()

    def pending_approvals(self, now: datetime, limit: int = 20) -> list[Approval]:
        with self.session() as session:
            stmt = select(Approval).where(Approval.state == ApprovalState.PENDING,
                                          col(Approval.expires_at) > now)
            return list(session.exec(stmt.order_by(col(Approval.created_at).desc()).limit(limit)))

    # --- intents -----------------------------------------------------------------------------
    def open_intent(self, intent: Intent) -> None:
        with self.session() as session:
            session.add(intent)
            session.commit()

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
        with self.session() as session:
            closed = session.execute(
                update(Intent)
                .where(col(Intent.id) == intent_id, col(Intent.finished_at).is_(None))
                .values(finished_at=now)
            )
            if not closed.rowcount:  # type: ignore[attr-defined]
                session.rollback()  # someone (a reconciling replica) recorded this outcome already
                return False
            for send in new_sends:
                session.add(send)
            for send_id, state, provider_status in send_updates:
                values: dict[str, object] = {"state": state, "updated_at": now}
                if provider_status is not None:
                    values["provider_status"] = provider_status
                session.execute(update(TrackedSend).where(col(TrackedSend.id) == send_id).values(**values))
            for draft in drafts:
                append(session, draft, now)
            session.commit()
            return True

    def open_intents(self, started_before: datetime | None = None) -> list[Intent]:
        with self.session() as session:
            stmt = select(Intent).where(col(Intent.finished_at).is_(None))
            if started_before is not None:
                stmt = stmt.where(col(Intent.started_at) <= started_before)
            return list(session.exec(stmt.order_by(col(Intent.started_at))))

    # --- reminders ---------------------------------------------------------------------------
    def claim_reminder(self, send_id: str, lead_seconds: int, status: str,
                       draft: EntryDraft | None = None) -> bool:
        """Insert the claim; only the first replica to do so gets True."""
        now = self.clock.now()
        try:
            with self.session() as session:
                session.add(ReminderClaim(send_id=send_id, lead_seconds=lead_seconds, status=status,
                                          claimed_at=now))
                session.flush()
                if draft is not None:
                    append(session, draft, now)
                session.commit()
                return True
        except IntegrityError:
            return False

    # --- Slack request de-duplication ---------------------------------------------------------
    def first_time(self, key: str) -> bool:
        """True the first time a request key is seen (replays and retries get False)."""
        now = self.clock.now()
        try:
            with self.session() as session:
                session.add(SeenRequest(key=key[:128], at=now))
                session.commit()
                return True
        except IntegrityError:
            return False

    def forget_seen(self, key: str) -> None:
        """Undo `first_time` for a request whose handling failed, so its redelivery is acted on."""
        with self.session() as session:
            session.execute(delete(SeenRequest).where(col(SeenRequest.key) == key[:128]))
            session.commit()

    def forget_seen_before(self, cutoff: datetime) -> None:
        with self.session() as session:
            session.execute(delete(SeenRequest).where(col(SeenRequest.at) < cutoff))
            session.commit()
