"""carrier connections (sealed signing secrets) and the raw carrier callbacks (issue 11)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New tables only: servers of the previous version keep working after the migration.
    op.create_table(
        "carrier_connections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("outcome_map", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_carrier_connections_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_connections")),
    )
    op.create_index(
        "ix_carrier_connections_account_created",
        "carrier_connections",
        ["account_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "carrier_callbacks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("applied_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_callbacks")),
    )
    op.create_index(
        "ix_carrier_callbacks_account_verdict",
        "carrier_callbacks",
        ["account_id", "verdict", "connection_id", "received_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_carrier_callbacks_account_verdict", table_name="carrier_callbacks")
    op.drop_table("carrier_callbacks")
    op.drop_index("ix_carrier_connections_account_created", table_name="carrier_connections")
    op.drop_table("carrier_connections")
