"""indexes for the drill-down and export routes' keyset pages (issue 12)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# name, table, columns: each list's pages read one index range from the cursor on, never an OFFSET
_INDEXES = (
    ("ix_contacts_campaign_order", "contacts", ["campaign_id", "id"]),
    ("ix_contacts_campaign_state", "contacts", ["campaign_id", "state", "id"]),
    ("ix_contacts_campaign_outcome", "contacts", ["campaign_id", "last_outcome", "id"]),
    ("ix_contacts_campaign_state_outcome", "contacts", ["campaign_id", "state", "last_outcome", "id"]),
    ("ix_calls_campaign_started", "calls", ["campaign_id", "started_at", "call_id"]),
    ("ix_calls_campaign_outcome_started", "calls", ["campaign_id", "outcome", "started_at", "call_id"]),
)


def upgrade() -> None:
    # Built in the migration's one transaction (callstats migrate holds an advisory lock around it):
    # writes to contacts and calls wait while they build, about a minute per 10 million rows.
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
