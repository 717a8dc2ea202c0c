"""calls remember whether their start came from a call.started (issue 8: start time independent of order)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A call's start is the earliest call.started's time once one has arrived, else the opening
    # event's: the column says which. Existing calls with a stored call.started are marked so. The
    # default stays (false: a start not yet reported), for rows written by other tools (bench/dataset.py).
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("start_reported", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(  # a semi-join on the set of calls with a stored call.started (no index on call_id)
        "UPDATE calls SET start_reported = TRUE WHERE (account_id, call_id) IN"
        " (SELECT account_id, call_id FROM call_events WHERE type = 'call.started')"
    )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("start_reported")
