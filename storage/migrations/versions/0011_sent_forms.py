"""The web forms sent in the last two minutes, so that the same form sent again reaching another
instance gets the first sending's reference (and sealed one-time code) instead of raising a
second concern. Rows are forgotten after two minutes, so going down loses nothing a learner sent.
During a rolling upgrade, instances still on the older code neither write nor read these rows: a
second press reaching one of them is de-duplicated only in that process, as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sent_forms",
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sealed_code", sa.LargeBinary(), nullable=True),
        sa.Column("sent_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    op.create_index("ix_sent_forms_sent_at", "sent_forms", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_sent_forms_sent_at", table_name="sent_forms")
    op.drop_table("sent_forms")
