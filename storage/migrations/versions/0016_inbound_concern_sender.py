"""An index on the mail received of each concern with its sender and Message-ID: every email to a
learner who raised their concern by email answers that email, and the dispatcher reads its
Message-ID and sender from the index alone, while it holds the write lock. On SQLite, reading
those columns from the row would read through the email's raw bytes stored before them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_inbound_concern_sender",
        "inbound_messages",
        ["concern_id", "from_address", "message_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_concern_sender", table_name="inbound_messages")
