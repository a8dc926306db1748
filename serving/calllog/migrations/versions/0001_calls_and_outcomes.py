"""Calls and outcomes: the decision log's first schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(128), primary_key=True),
        sa.Column("logged_at", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("campaign", sa.String(256), nullable=False),
        sa.Column("call_metadata", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("buying_intent", sa.Float(), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("decision_label", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("segment", sa.String(256), nullable=False),
        sa.Column("decision_seconds", sa.Float(), nullable=True),
        sa.Column("early", sa.Boolean(), nullable=False),
        sa.Column("audio_seconds", sa.Float(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("transcript_mode", sa.String(16), nullable=False),
    )
    op.create_index("ix_calls_logged_at", "calls", ["logged_at"])
    op.create_index("ix_calls_source", "calls", ["source"])
    op.create_index("ix_calls_campaign", "calls", ["campaign"])
    op.create_table(
        "outcomes",
        sa.Column("call_id", sa.String(128), primary_key=True),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=True),
        sa.Column("disposition", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(256), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_outcomes_occurred_at", "outcomes", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_occurred_at", table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_index("ix_calls_campaign", table_name="calls")
    op.drop_index("ix_calls_source", table_name="calls")
    op.drop_index("ix_calls_logged_at", table_name="calls")
    op.drop_table("calls")
