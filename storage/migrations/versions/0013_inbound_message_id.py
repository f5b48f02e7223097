"""Received mail is indexed by its Message-ID: processing looks for an earlier copy of the same
email that came by another route (a forwarder rewrites the envelope sender, so storing keeps
both), and that look must not read every message ever received.

An index entry has a size limit in bytes (PostgreSQL's btree: 2,704), and a stored Message-ID
could be up to 998 characters of several bytes each: those over 998 bytes are cleared first, as
storing now does (such a message still dedupes by its content).

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
    size = "octet_length(message_id)"
    if op.get_bind().dialect.name == "sqlite":
        size = "length(CAST(message_id AS BLOB))"
    op.execute(f"UPDATE inbound_messages SET message_id = NULL WHERE {size} > 998")
    op.create_index("ix_inbound_message_id", "inbound_messages", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_message_id", table_name="inbound_messages")
