"""Chat: outbox rows carry a chat payload and where the sent message lives; chat deliveries
already handled (Slack retries and double clicks have one effect).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
    op.create_table(
        "chat_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("received_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("chat_deliveries")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("external_ref")
        batch.drop_column("payload")
