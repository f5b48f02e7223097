"""A confidential concern's summary and description as the learner wrote them, beside the copies
without their name and address that contacts below the dean read. Triage reads these when it
rates the concern again (a learner named 'Sam Fell' keeps "fell" in what they wrote), and the dean
and quality team, who may know who raised it, read them whole (a name staff corrected later
takes no more words from them than from the learner). Empty when nothing was taken out.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch, as in 0015: the events guard's triggers (0007) name `concerns`.


def upgrade() -> None:
    op.add_column("concerns", sa.Column("summary_as_written", sa.Text(), nullable=True))
    op.add_column("concerns", sa.Column("description_as_written", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("concerns", "description_as_written")
    op.drop_column("concerns", "summary_as_written")
