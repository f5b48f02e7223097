"""Mail kept aside for staff notes the region it concerns, when that can be known (a genuine token
forwarded from another address names its concern; a reply to a digest, its dean's region), so
that only that region's dean and quality team read it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("region_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_inbound_messages_region_id_regions", "regions", ["region_id"], ["id"]
        )
        batch.create_index(batch.f("ix_inbound_messages_region_id"), ["region_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_index(batch.f("ix_inbound_messages_region_id"))
        batch.drop_constraint("fk_inbound_messages_region_id_regions", type_="foreignkey")
        batch.drop_column("region_id")
