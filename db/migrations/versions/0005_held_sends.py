"""Held sends: schedules the bot keeps itself (beyond the provider's window, or awaiting approval by the
rules file), with their full content, and the approvals given to them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10

Additive only (two new tables): replicas of the previous version keep running against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "held_sends",
        sa.Column("send_id", sa.String(length=32), sa.ForeignKey("tracked_sends.id"), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=True),
        sa.Column("submit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("intent_id", sa.String(length=32), nullable=True),
        sa.Column("rules", sa.Text(), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("send_id"),
    )
    op.create_index("ix_held_submit_at", "held_sends", ["submit_at"])
    op.create_table(
        "held_approvals",
        sa.Column("send_id", sa.String(length=32), sa.ForeignKey("held_sends.send_id"), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("send_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("held_approvals")
    op.drop_index("ix_held_submit_at", table_name="held_sends")
    op.drop_table("held_sends")
