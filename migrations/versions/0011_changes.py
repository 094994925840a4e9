"""Changes to what the operator configures, kept with who made them.

Settings, partners, rates and keys are changed in place or added to, and a
period is closed, by the operator's keys, the command line or the
scheduler; a settlement depends on every one of them. Each change is
recorded in the transaction that makes it (:mod:`coalition.services.changes`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from coalition.db.types import BigId, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", BigId(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(63), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_changes_subject", "changes", ["subject", "subject_id"])


def downgrade() -> None:
    op.drop_index("ix_changes_subject", "changes")
    op.drop_table("changes")
