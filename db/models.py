"""Tables. The ledger is append-only; the other tables hold the bot's current view of things."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, DateTime, Index, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, gives back timezone-aware UTC datetimes on every database (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Action(StrEnum):
    SCHEDULED = "scheduled"
    TRACKED = "tracked"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVED = "approved"
    SENT = "sent"
    CANCELLED = "cancelled"
    DELETED = "deleted"
    REMINDED = "reminded"
    REFUSED = "refused"
    FAILED = "failed"
    OPTED_OUT = "opted_out"  # a number added to the opt-out list (by an inbound STOP or an admin)
    OPTED_IN = "opted_in"  # a number removed from it (an inbound START, or an admin with a reason)
    OVERRIDDEN = "overridden"  # an admin's --override let a send past a guard rail (quiet hours, a cap)
    RESCHEDULED = "rescheduled"  # target: the old id; the detail names the new id and time
    REJECTED = "rejected"  # an approval-held send rejected (bot/operations/held_approval.py)
    EXPIRED = "expired"  # an approval-held send not approved within APPROVAL_TTL


class Outcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    ERROR = "error"


SYSTEM_ACTOR = "system"


class LedgerEntry(SQLModel, table=True):
    """One action, refusal or failure. Never updated or deleted; chained by hash."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("hash", name="uq_ledger_hash"),
        # Each filter's index ends in seq, so it also gives the order and a LIMIT stops early;
        # (at, seq) turns a time range into a stretch of the chain (db/audit.py, measured with
        # bench/ledger_bench.py).
        Index("ix_ledger_target_seq", "target", "seq"),
        Index("ix_ledger_actor_seq", "actor", "seq"),
        Index("ix_ledger_provider_seq", "provider", "seq"),
        Index("ix_ledger_at_seq", "at", "seq"),
    )

    # 1, 2, 3 … with no gaps: a gap is a removed entry. Assigned by db.ledger.append_row under the chain
    # lock, never by the database (no SERIAL/IDENTITY: a sequence would skip numbers on rollback).
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=_utc_column())
    actor: str = Field(max_length=64)
    team: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=32)
    provider: str | None = Field(default=None, max_length=16)
    target: str | None = Field(default=None, max_length=128)
    outcome: str = Field(max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    request_id: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)

    CONTRACT_KEYS: ClassVar[tuple[str, ...]] = (
        "at", "actor", "channel", "action", "provider", "target", "outcome", "detail",
    )

    def contract_dict(self) -> dict[str, str | None]:
        return {
            "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "channel": self.channel,
            "action": self.action,
            "provider": self.provider,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


class TrackedSend(SQLModel, table=True):
    """A scheduled message or group the bot knows of (scheduled through it, or tracked)."""

    __tablename__ = "tracked_sends"
    __table_args__ = (
        UniqueConstraint("provider", "target", name="uq_tracked_provider_target"),
        Index("ix_tracked_state_send_at", "state", "send_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    provider: str = Field(max_length=16)
    target: str = Field(max_length=128)  # the provider's id
    batch_id: str = Field(max_length=32, index=True)  # one /sms schedule may create several messages
    state: str = Field(max_length=16)  # SendState values
    provider_status: str = Field(default="", max_length=32)
    send_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    recipient_count: int = 0
    recipients_preview: str = Field(default="", max_length=300)
    text_preview: str = Field(default="", max_length=300)
    created_by: str = Field(max_length=64, index=True)
    team: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    notice_channel: str | None = Field(default=None, max_length=64)
    notice_ts: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())


class ApprovalState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # someone's click won; the send is in flight
    APPROVED = "approved"  # sent
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    CLOSED = "closed"  # the group's fate was settled elsewhere (deleted, cancelled, sent): nothing to decide


class Approval(SQLModel, table=True):
    """A request to send a PENDING Solapi group, decided by one click."""

    __tablename__ = "approvals"

    id: str = Field(primary_key=True, max_length=32)
    send_id: str = Field(foreign_key="tracked_sends.id", max_length=32, index=True)
    requested_by: str = Field(max_length=64)
    team: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    state: str = Field(max_length=16, index=True)
    expires_at: datetime = Field(sa_column=_utc_column())
    message_channel: str | None = Field(default=None, max_length=64)
    message_ts: str | None = Field(default=None, max_length=32)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    created_at: datetime = Field(sa_column=_utc_column())


class Intent(SQLModel, table=True):
    """A provider call about to be made. Closed when its outcome is in the ledger; an open one
    after a crash is reconciled on start by asking the provider what really happened."""

    __tablename__ = "intents"

    id: str = Field(primary_key=True, max_length=32)
    operation: str = Field(max_length=16)  # cancel, send, delete, schedule
    provider: str = Field(max_length=16)
    target: str | None = Field(default=None, max_length=128)
    actor: str = Field(max_length=64)
    team: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    payload: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    started_at: datetime = Field(sa_column=_utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True, index=True))


class ReminderClaim(SQLModel, table=True):
    """Inserted once per (send, lead): whichever replica inserts it posts the reminder."""

    __tablename__ = "reminder_claims"

    send_id: str = Field(primary_key=True, max_length=32)
    lead_seconds: int = Field(primary_key=True)
    status: str = Field(max_length=16)  # posted, missed, skipped
    claimed_at: datetime = Field(sa_column=_utc_column())


class SeenRequest(SQLModel, table=True):
    """Slack requests already handled (replays and retries are processed once)."""

    __tablename__ = "seen_requests"

    key: str = Field(primary_key=True, max_length=128)
    at: datetime = Field(sa_column=_utc_column(index=True))


class SlackName(SQLModel, table=True):
    """The name a Slack user went by when the bot last heard from them (their request's payload), so
    that the CLI, which has only the ledger's ids, can say `@bob`."""

    __tablename__ = "slack_names"

    user_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=80)
    seen_at: datetime = Field(sa_column=_utc_column())


class OptOut(SQLModel, table=True):
    """A number that must not be messaged: every schedule and send to it is refused before any call.
    Added by an inbound STOP (Telnyx, Twilio) or `/sms optout add`; removed by START or an admin."""

    __tablename__ = "opt_outs"

    number: str = Field(primary_key=True, max_length=32)  # E.164
    source: str = Field(max_length=32)  # telnyx, twilio (an inbound keyword) or slack (an admin)
    added_by: str = Field(max_length=64)  # the admin's user id, or `system` for an inbound keyword
    detail: str = Field(default="", max_length=300)  # the keyword received, or the admin's note
    added_at: datetime = Field(sa_column=_utc_column())
class InboxState(StrEnum):
    QUEUED = "queued"  # acked, waiting for a worker
    TAKEN = "taken"  # a worker holds it until lease_until (renewed while it works)
    DONE = "done"  # settled: answered, or handed to reconciliation


class InboxItem(SQLModel, table=True):
    """A Slack request, made durable before its ack and worked on afterwards by a worker of any
    process (bot/server/inbox.py). The unique key is the replay check: the same body is queued once."""

    __tablename__ = "slack_inbox"
    __table_args__ = (Index("ix_slack_inbox_state_seq", "state", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=128, unique=True)
    request_id: str = Field(max_length=32)
    kind: str = Field(max_length=16)  # command, action, event, socket
    content_type: str = Field(default="", max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    ack_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    received_at: datetime = Field(sa_column=_utc_column())
    state: str = Field(default=InboxState.QUEUED, max_length=8)
    attempts: int = Field(default=0)
    taker: str | None = Field(default=None, max_length=64)
    taken_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    lease_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    done_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True, index=True))
class HeldReason(StrEnum):
    WINDOW = "window"  # further out than the provider schedules: submitted once inside its window
    APPROVAL = "approval"  # the rules file asks for approval first: submitted once every quorum is met


HELD = "held"  # a tracked send's state while the bot keeps it (nothing at the provider yet)
SUBMITTING = "submitting"  # claimed by one replica: its schedule call is in flight
SUBMITTED = "submitted"  # handed to the provider: its messages are the batch's other tracked sends


class HeldSend(SQLModel, table=True):
    """The full content of a send the bot keeps itself, until it is submitted to the provider. Its tracked
    send (same id) carries the state, the send time, the notice and the reminders like any other."""

    __tablename__ = "held_sends"
    __table_args__ = (Index("ix_held_submit_at", "submit_at"),)

    send_id: str = Field(foreign_key="tracked_sends.id", primary_key=True, max_length=32)
    reason: str = Field(max_length=16)  # HeldReason values
    recipients: str = Field(sa_column=Column(Text, nullable=False))  # a JSON list
    text: str = Field(sa_column=Column(Text, nullable=False))
    sender: str | None = Field(default=None, max_length=64)
    submit_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))  # None: awaits approval
    intent_id: str | None = Field(default=None, max_length=32)  # the submission's intent, once claimed
    rules: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # JSON rule names
    expires_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))  # approval holds
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())


class HeldApproval(SQLModel, table=True):
    """One person's approval of a held send (once per person: the primary key)."""

    __tablename__ = "held_approvals"

    send_id: str = Field(foreign_key="held_sends.send_id", primary_key=True, max_length=32)
    user_id: str = Field(primary_key=True, max_length=64)
    at: datetime = Field(sa_column=_utc_column())
