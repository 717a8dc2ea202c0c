"""calls keep their raw carrier outcome; ended calls counted by raw outcome per campaign (issue 11)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column and a new table: servers of the previous version keep working after the
    # migration. No backfill: calls ended before it have no raw outcome, so none is counted for them.
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("raw_outcome", sa.String(length=160), nullable=True))
    op.create_table(
        "campaign_raw_outcomes",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("raw_outcome", sa.String(length=160), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "raw_outcome", "slot", name=op.f("pk_campaign_raw_outcomes")),
    )


def downgrade() -> None:
    op.drop_table("campaign_raw_outcomes")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("raw_outcome")
