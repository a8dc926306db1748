"""Outcome corrections: the audit trail of ``PUT /calls/{call_id}/outcome``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcome_corrections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("corrected_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("current", sa.JSON(), nullable=False),
    )
    op.create_index("ix_outcome_corrections_call_id", "outcome_corrections", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_outcome_corrections_call_id", table_name="outcome_corrections")
    op.drop_table("outcome_corrections")
