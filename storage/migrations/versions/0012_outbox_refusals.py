"""Outbox rows count the relay's permanent refusals apart from every attempt: a message is given
up after five refusals, however many temporary failures (a relay down for a day) came before.
Existing rows start at 0 refusals.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("refusals")
