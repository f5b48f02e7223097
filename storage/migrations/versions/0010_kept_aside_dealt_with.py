"""Mail kept aside and then dealt with notes who marked it and when, in columns of its own, so the
staff page can list what was dealt with recently and put a message back on the list.

Rows marked before this keep the note in `outcome` only ("dealt with by ... at ..."); their new
columns stay empty, and they are listed after those marked since.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(
            sa.Column("dealt_with_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.add_column(
            sa.Column("dealt_with_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("dealt_with_at")
        batch.drop_column("dealt_with_by")
