"""Initial schema: the ledger, tracked sends, approvals, intents, reminder claims, seen requests.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Plain SQLAlchemy types on purpose (not the models' own): a migration describes the schema as it was
at this revision, whatever the models become. `UTCDateTime` is `DateTime(timezone=True)` underneath.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _utc("at"),
        _str("actor", 64),
        _str("team", 32, nullable=True),
        _str("channel", 64, nullable=True),
        _str("action", 32),
        _str("provider", 16, nullable=True),
        _str("target", 128, nullable=True),
        _str("outcome", 16),
        sa.Column("detail", sa.Text(), nullable=False),
        _str("request_id", 64, nullable=True),
        _str("prev_hash", 64),
        _str("hash", 64),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash", name="uq_ledger_hash"),
    )
    op.create_index("ix_ledger_target_seq", "ledger_entries", ["target", "seq"])
    op.create_index("ix_ledger_actor_seq", "ledger_entries", ["actor", "seq"])
    op.create_index("ix_ledger_provider_seq", "ledger_entries", ["provider", "seq"])
    op.create_index("ix_ledger_at_seq", "ledger_entries", ["at", "seq"])

    op.create_table(
        "tracked_sends",
        _str("id", 32),
        _str("provider", 16),
        _str("target", 128),
        _str("batch_id", 32),
        _str("state", 16),
        _str("provider_status", 32),
        _utc("send_at", nullable=True),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        _str("recipients_preview", 300),
        _str("text_preview", 300),
        _str("created_by", 64),
        _str("team", 32, nullable=True),
        _str("channel", 64, nullable=True),
        _str("notice_channel", 64, nullable=True),
        _str("notice_ts", 32, nullable=True),
        _utc("created_at"),
        _utc("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "target", name="uq_tracked_provider_target"),
    )
    op.create_index("ix_tracked_sends_batch_id", "tracked_sends", ["batch_id"])
    op.create_index("ix_tracked_sends_created_by", "tracked_sends", ["created_by"])
    op.create_index("ix_tracked_state_send_at", "tracked_sends", ["state", "send_at"])

    op.create_table(
        "approvals",
        _str("id", 32),
        _str("send_id", 32),
        _str("requested_by", 64),
        _str("team", 32, nullable=True),
        _str("channel", 64, nullable=True),
        _str("state", 16),
        _utc("expires_at"),
        _str("message_channel", 64, nullable=True),
        _str("message_ts", 32, nullable=True),
        _str("decided_by", 64, nullable=True),
        _utc("decided_at", nullable=True),
        _utc("created_at"),
        sa.ForeignKeyConstraint(["send_id"], ["tracked_sends.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approvals_send_id", "approvals", ["send_id"])
    op.create_index("ix_approvals_state", "approvals", ["state"])

    op.create_table(
        "intents",
        _str("id", 32),
        _str("operation", 16),
        _str("provider", 16),
        _str("target", 128, nullable=True),
        _str("actor", 64),
        _str("team", 32, nullable=True),
        _str("channel", 64, nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        _utc("started_at"),
        _utc("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_intents_finished_at", "intents", ["finished_at"])

    op.create_table(
        "reminder_claims",
        _str("send_id", 32),
        sa.Column("lead_seconds", sa.Integer(), nullable=False),
        _str("status", 16),
        _utc("claimed_at"),
        sa.PrimaryKeyConstraint("send_id", "lead_seconds"),
    )

    op.create_table(
        "seen_requests",
        _str("key", 128),
        _utc("at"),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_seen_requests_at", "seen_requests", ["at"])


def downgrade() -> None:
    op.drop_table("seen_requests")
    op.drop_table("reminder_claims")
    op.drop_table("intents")
    op.drop_table("approvals")
    op.drop_table("tracked_sends")
    op.drop_table("ledger_entries")
