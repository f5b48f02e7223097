"""Concerns keep the name the learner gave with them. The learner's record keeps only the first
name given with their address, and a confidential concern's later words must be redacted with
the name given with it too ('Priya Patel', where the record says 'Priya'). Existing concerns have
none, and are redacted with the record's name as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch: on SQLite a batch copies the table, and the events guard's
# triggers (0007) name `concerns`, so the copy could not take its name.


def upgrade() -> None:
    op.add_column("concerns", sa.Column("learner_name", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("concerns", "learner_name")
