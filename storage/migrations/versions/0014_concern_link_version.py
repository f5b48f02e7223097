"""Concerns carry a link version: status links name it, and a link naming an older one no longer
opens the concern. A learner who corrects a mistyped email address raises it, so the links (and
status-page access) the stranger at the old address got stop working. Existing concerns start at
0, the version every link signed before names, so their links keep working.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch: on SQLite a batch copies the table, and the events guard's
# triggers (0007) name `concerns`, so the copy could not take its name.


def upgrade() -> None:
    op.add_column(
        "concerns", sa.Column("link_version", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("concerns", "link_version")
