"""Retention removes a concern's events through the append-only guard instead of around it; chat
deliveries are indexed by age for the hourly housekeeping.

A `removals` row names a concern being removed; the events guard (0001) now lets a DELETE of an
event through only when its concern is named there, and still refuses every UPDATE. Retention
writes the row and deletes it again in the same transaction, so no one else ever sees it, and
no longer switches the trigger off (PostgreSQL: ALTER TABLE, which needs the table's owner) or
drops and recreates it (SQLite).

The guard also wants the concern closed: retention removes only closed concerns, so a row in
`removals` for an open one (a mistake, or a role that should not write there) frees nothing.

No foreign key to concerns: the row lives only inside the transaction that removes the concern,
and a key would only add an order (the row must go before the concern) to get wrong.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The guard's words, as migration 0001 has them: callers and tests match on "append-only".
APPEND_ONLY = "events are append-only: record a new event instead"
# A concern named for removal, and closed: the only events a DELETE may take.
BEING_REMOVED = (
    "EXISTS (SELECT 1 FROM removals JOIN concerns ON concerns.id = removals.concern_id "
    "WHERE removals.concern_id = OLD.concern_id AND concerns.status = 'closed')"
)


def upgrade() -> None:
    # The hourly housekeeping forgets chat deliveries by age.
    op.create_index("ix_chat_deliveries_received_at", "chat_deliveries", ["received_at"])
    op.create_table(
        "removals",
        sa.Column("concern_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("concern_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The trigger (BEFORE UPDATE OR DELETE, FOR EACH ROW) keeps calling this function.
        op.execute(
            "CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN "
            f"IF TG_OP = 'DELETE' AND {BEING_REMOVED} THEN RETURN OLD; END IF; "
            f"RAISE EXCEPTION '{APPEND_ONLY}'; "
            "END $$"
        )
        return
    op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    op.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        f"WHEN NOT {BEING_REMOVED} "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
        op.execute(
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )
    op.drop_table("removals")
    op.drop_index("ix_chat_deliveries_received_at", table_name="chat_deliveries")
