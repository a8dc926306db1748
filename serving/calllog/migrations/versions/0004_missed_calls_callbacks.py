"""Missed calls (and voicemails) with their callback terms, and callback attempts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "missed_calls",
        sa.Column("call_id", sa.String(128), primary_key=True),
        sa.Column("missed_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("campaign", sa.String(256), nullable=False),
        sa.Column("call_metadata", sa.JSON(), nullable=False),
        sa.Column("intent", sa.String(32), nullable=False),
        sa.Column("buying_intent", sa.Float(), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("sla_seconds", sa.Float(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(256), nullable=False),
        sa.Column("logged_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_missed_calls_missed_at", "missed_calls", ["missed_at"])
    op.create_index("ix_missed_calls_source", "missed_calls", ["source"])
    op.create_index("ix_missed_calls_due_at", "missed_calls", ["due_at"])
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("agent", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("call_id", "attempted_at", "agent", name="uq_callback_attempts_call_time_agent"),
    )
    op.create_index("ix_callback_attempts_call_id", "callback_attempts", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_callback_attempts_call_id", table_name="callback_attempts")
    op.drop_table("callback_attempts")
    op.drop_index("ix_missed_calls_due_at", table_name="missed_calls")
    op.drop_index("ix_missed_calls_source", table_name="missed_calls")
    op.drop_index("ix_missed_calls_missed_at", table_name="missed_calls")
    op.drop_table("missed_calls")
