"""Mail kept aside and then dealt with notes who marked it and when, in columns of its own, so the
staff page can list what was dealt with recently and put a message back on the list.

Rows marked before this noted who and when in `outcome` only ("...; dealt with by {email} at
{ISO moment}", the last such note being the marking in force): the columns are filled from it.
A row whose note cannot be read keeps them empty, and is listed after the others.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 10:30:00
"""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# How storage.inbox.mark_dealt_with noted a marking before these columns existed.
MARKED = re.compile(r"; dealt with by (?P<by>[^;\s]+) at (?P<at>[^;\s]+)")

messages = sa.table(
    "inbound_messages",
    sa.column("id", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("dealt_with_by", sa.String()),
    sa.column("dealt_with_at", storage.types.UTCDateTime(timezone=True)),
)


def marked(outcome: str | None) -> tuple[str, datetime] | None:
    """Who marked a message and when, from the last note of a marking in its outcome."""
    notes = list(MARKED.finditer(outcome or ""))
    if not notes:
        return None
    try:
        at = datetime.fromisoformat(notes[-1]["at"])
    except ValueError:
        return None
    return (notes[-1]["by"], at) if at.tzinfo is not None else None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(
            sa.Column("dealt_with_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.add_column(
            sa.Column("dealt_with_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(messages.c.id, messages.c.outcome).where(messages.c.status == "dealt_with")
    ).all()
    for message_id, outcome in rows:
        found = marked(outcome)
        if found is not None:
            connection.execute(
                messages.update()
                .where(messages.c.id == message_id)
                .values(dealt_with_by=found[0], dealt_with_at=found[1])
            )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("dealt_with_at")
        batch.drop_column("dealt_with_by")
