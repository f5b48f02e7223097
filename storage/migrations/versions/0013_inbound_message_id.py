"""Received mail is indexed by its Message-ID: processing looks for an earlier copy of the same
email that came by another route (a forwarder rewrites the envelope sender, so storing keeps
both), and that look must not read every message ever received.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_message_id", "inbound_messages", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_message_id", table_name="inbound_messages")
