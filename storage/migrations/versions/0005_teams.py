"""Teams: the conversation reference of each Teams user the bot has heard from, so notifications
can be sent to them proactively.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aad_object_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("teams_user_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aad_object_id"),
    )
    op.create_index(
        "ix_teams_conversations_teams_user_id", "teams_conversations", ["teams_user_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_teams_conversations_teams_user_id", table_name="teams_conversations")
    op.drop_table("teams_conversations")
