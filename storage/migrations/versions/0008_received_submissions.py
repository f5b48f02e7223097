"""Web form submissions are committed as the learner sent them before the confirmation page, and
raised into concerns just after (triage, routing, messages), as the mailbox does with email.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "received_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("received_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submission", sa.Text(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("next_attempt_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
    )


def downgrade() -> None:
    waiting = op.get_bind().execute(sa.text("SELECT count(*) FROM received_submissions")).scalar()
    if waiting:
        # Dropping the table would lose learners' words: let `concerns serve` raise them first.
        raise RuntimeError(
            f"{waiting} web submission(s) are still waiting to be raised: start the service "
            "until they are, then downgrade"
        )
    op.drop_table("received_submissions")
