"""contact phones with extensions, and each campaign's default region

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import os
import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PHONE_LENGTH = 64  # "+" and up to 17 digits, ";ext=", and phonenumbers' longest extension (20 digits)


def existing_campaigns_region() -> str:
    """The region existing campaigns' numbers were read in: the server's CALLSTATS_DEFAULT_REGION.

    Until this revision every campaign was read with that one setting, so it is what their contacts'
    numbers mean; without the setting (or with an unusable one), "US", the setting's default then.
    """
    region = os.environ.get("CALLSTATS_DEFAULT_REGION", "US").strip().upper()
    return region if re.fullmatch(r"[A-Z]{2}", region) else "US"


def upgrade() -> None:
    # Existing campaigns get the region their contacts were read in, through a server default that
    # only fills them: new campaigns always name their region.
    region = existing_campaigns_region()
    op.add_column(
        "campaigns", sa.Column("default_region", sa.String(2), nullable=False, server_default=region)
    )
    if op.get_bind().dialect.name != "postgresql":
        # SQLite cannot drop a default or change a length in place (a table rebuild would be needed,
        # and contacts reference campaigns); it enforces neither lengths nor, since every insert
        # names the region, does the default matter there.
        return
    op.alter_column("campaigns", "default_region", server_default=None)
    # An extension makes the identity longer than E.164's 16 characters.
    op.alter_column(
        "contacts",
        "phone",
        existing_type=sa.String(20),
        type_=sa.String(PHONE_LENGTH),
        existing_nullable=False,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Fails while a contact's identity (one with an extension) is longer than 20 characters.
        op.alter_column(
            "contacts",
            "phone",
            existing_type=sa.String(PHONE_LENGTH),
            type_=sa.String(20),
            existing_nullable=False,
        )
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("default_region")
