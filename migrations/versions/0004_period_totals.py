"""Period totals: what a close sums, kept as the ledger is written.

``pair_totals`` holds the points redeemed by period, issuer, redeemer and
redemption rate; ``partner_totals`` each partner's activity by period and fee
rate. Both are counters split into stripes (:mod:`coalition.db.period_totals`).
The ledger already written is counted into stripe 0 here, with writers held
off until the upgrade commits. Stop every process of the older version
before upgrading (no rolling deploy across this revision): one still running
afterwards would write ledger rows without counting them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from coalition.db.types import RateValue

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COUNT_PAIRS = """
INSERT INTO pair_totals (period_id, issuer_id, redeemer_id, value_rate, stripe, points)
SELECT period_id, issuer_id, redeemer_id, value_rate, 0, sum(-points)
FROM allocations WHERE type IN ('burn', 'burn_reversal')
GROUP BY period_id, issuer_id, redeemer_id, value_rate
"""

COUNT_PARTNERS = """
INSERT INTO partner_totals (period_id, partner_id, fee_rate, stripe, points_issued,
    points_reversed, shortfall_points, points_expired, late_count)
SELECT period_id, partner_id, fee_rate, 0,
    sum(CASE WHEN type IN ('earn', 'bonus') THEN points ELSE 0 END),
    sum(CASE WHEN type = 'earn_reversal' THEN -points ELSE 0 END),
    sum(shortfall_points),
    sum(CASE WHEN type = 'expiry' THEN -points ELSE 0 END),
    sum(CASE WHEN late THEN 1 ELSE 0 END)
FROM transactions
GROUP BY period_id, partner_id, fee_rate
"""


def upgrade() -> None:
    op.create_table(
        "pair_totals",
        sa.Column("period_id", sa.String(16), primary_key=True),
        sa.Column("issuer_id", sa.String(63), primary_key=True),
        sa.Column("redeemer_id", sa.String(63), primary_key=True),
        sa.Column("value_rate", RateValue(), primary_key=True),
        sa.Column("stripe", sa.Integer, primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "partner_totals",
        # an upsert draws an id even when it updates: BIGINT, so they never run out
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("period_id", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(63), nullable=False),
        sa.Column("fee_rate", RateValue()),
        sa.Column("stripe", sa.Integer, nullable=False),
        *(
            sa.Column(name, sa.BigInteger, nullable=False)
            for name in (
                "points_issued",
                "points_reversed",
                "shortfall_points",
                "points_expired",
                "late_count",
            )
        ),
    )
    # fee_rate is NULL where no fee applies; the key must treat NULLs as equal
    op.create_index(
        "uq_partner_totals_key",
        "partner_totals",
        ["period_id", "partner_id", sa.text("coalesce(fee_rate, -1)"), "stripe"],
        unique=True,
    )
    if op.get_bind().dialect.name == "postgresql":
        # a posting committed after this count would never be counted: hold
        # writers off until the upgrade commits
        op.execute("LOCK TABLE transactions, allocations IN SHARE MODE")
    op.execute(COUNT_PAIRS)
    op.execute(COUNT_PARTNERS)


def downgrade() -> None:
    op.drop_table("partner_totals")
    op.drop_table("pair_totals")
