"""Slack names: the name each Slack user id went by when the bot last heard from them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

The ledger keeps ids (the contract); this small table lets `python -m bot audit` show `@bob` and take
`--actor @bob` without asking Slack.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_names",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("slack_names")
