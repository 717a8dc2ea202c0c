"""campaign status (stall_after_minutes, last_event_at); contact erasure (erased_at, phone nullable)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Existing campaigns' last event: the latest time an applied event of theirs was received, put on their
# slot 0 (every campaign has it from creation), read as the MAX over slots as the write path keeps it.
_BACKFILL_LAST_EVENT = """
UPDATE campaign_counters SET last_event_at = (
    SELECT max(e.received_at) FROM call_events e
    WHERE e.campaign_id = campaign_counters.campaign_id AND e.account_id = campaign_counters.account_id
      AND e.effect = 'applied'
) WHERE slot = 0
"""


def upgrade() -> None:
    # New columns are nullable or have a server default, so servers of the previous version keep working
    # after the migration (they never name them).
    op.add_column(
        "campaigns", sa.Column("stall_after_minutes", sa.Integer(), nullable=False, server_default="30")
    )
    op.add_column("campaign_counters", sa.Column("last_event_at", sa.BigInteger(), nullable=True))
    op.execute(_BACKFILL_LAST_EVENT)  # one pass over call_events
    op.add_column("contacts", sa.Column("erased_at", sa.BigInteger(), nullable=True))
    # An erased contact keeps no phone. PostgreSQL drops the constraint in place; SQLite rebuilds the
    # table (a copy of every contact, once: the cost of this migration on a large SQLite database).
    with op.batch_alter_table("contacts") as batch:
        batch.alter_column("phone", existing_type=sa.String(64), existing_nullable=False, nullable=True)


def downgrade() -> None:
    # Fails while an erased contact (no phone) is stored: there is no number to give it back.
    with op.batch_alter_table("contacts") as batch:
        batch.alter_column("phone", existing_type=sa.String(64), existing_nullable=True, nullable=False)
        batch.drop_column("erased_at")
    with op.batch_alter_table("campaign_counters") as batch:
        batch.drop_column("last_event_at")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("stall_after_minutes")
