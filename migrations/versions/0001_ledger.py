"""The points ledger: settings, partners, keys, rates, members, transactions, lots, allocations,
and the settlement tables (closed periods, statements).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from coalition.db.types import Amount, RateValue, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    settings = op.create_table(
        "settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("base_currency", sa.String(3), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("points_ttl_days", sa.Integer, nullable=False),
        sa.Column("max_backdate_days", sa.Integer, nullable=False),
        sa.Column("auto_close_after_hours", sa.Integer, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_settings_single_row"),
    )
    partners = op.create_table(
        "partners",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("hold_days", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("hold_days >= 0", name="ck_partners_hold_days"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(63), sa.ForeignKey("partners.id")),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
    )
    op.create_table(
        "rates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", RateValue(), nullable=False),
        sa.Column("partner_id", sa.String(63), sa.ForeignKey("partners.id")),
        sa.Column("category", sa.String(64)),
        sa.Column("currency", sa.String(3)),
        sa.Column("min_amount", Amount()),
        sa.Column("effective_from", UTCDateTime(), nullable=False),
        sa.Column("effective_to", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_rates_kind", "rates", ["kind", "partner_id"])
    op.create_table(
        "members",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("partner_id", sa.String(63), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("amount", Amount()),
        sa.Column("currency", sa.String(3)),
        sa.Column("category", sa.String(64)),
        sa.Column("reason", sa.String(200)),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("shortfall_points", sa.BigInteger, nullable=False),
        sa.Column("original_id", sa.Integer, sa.ForeignKey("transactions.id")),
        sa.Column("rate_ids", sa.Text, nullable=False),
        sa.Column("fee_rate", RateValue()),
        sa.Column("period_id", sa.String(16), nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("partner_id", "external_id", name="uq_transactions_idempotency"),
        sa.CheckConstraint("shortfall_points >= 0", name="ck_transactions_shortfall"),
    )
    op.create_index("ix_transactions_member", "transactions", ["member_id", "id"])
    op.create_index("ix_transactions_partner", "transactions", ["partner_id", "id"])
    op.create_index("ix_transactions_period", "transactions", ["period_id", "type"])
    op.create_index("ix_transactions_original", "transactions", ["original_id"])
    op.create_table(
        "lots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "transaction_id",
            sa.Integer,
            sa.ForeignKey("transactions.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("member_id", sa.String(128), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("issuer_id", sa.String(63), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("earned_at", UTCDateTime(), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("points > 0", name="ck_lots_points"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= points", name="ck_lots_remaining"),
    )
    op.create_index("ix_lots_member", "lots", ["member_id", "expires_at"])
    op.create_index(
        "ix_lots_live_expiry",
        "lots",
        ["expires_at"],
        postgresql_where=sa.text("remaining > 0"),
        sqlite_where=sa.text("remaining > 0"),
    )
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("lot_id", sa.Integer, sa.ForeignKey("lots.id"), nullable=False),
        sa.Column("issuer_id", sa.String(63), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("redeemer_id", sa.String(63), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("value_rate", RateValue()),
        sa.Column("reverses_id", sa.Integer, sa.ForeignKey("allocations.id")),
        sa.Column("period_id", sa.String(16), nullable=False),
        sa.CheckConstraint("points <> 0", name="ck_allocations_points"),
    )
    op.create_index("ix_allocations_transaction", "allocations", ["transaction_id"])
    op.create_index("ix_allocations_period", "allocations", ["period_id", "type"])
    op.create_index("ix_allocations_reverses", "allocations", ["reverses_id"])
    op.create_table(
        "periods",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("settlement", sa.Text, nullable=False),
    )
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("period_id", sa.String(16), sa.ForeignKey("periods.id"), nullable=False),
        sa.Column("partner_id", sa.String(63), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("period_id", "partner_id", name="uq_statements_period_partner"),
    )
    op.create_index("ix_statements_partner", "statements", ["partner_id", "period_id"])

    op.bulk_insert(
        settings,
        [
            {
                "id": 1,
                "base_currency": "EUR",
                "timezone": "UTC",
                "period": "monthly",
                "points_ttl_days": 365,
                "max_backdate_days": 90,
                "auto_close_after_hours": 72,
            }
        ],
    )
    op.bulk_insert(
        partners,
        [
            {
                "id": "coalition",
                "name": "Coalition",
                "category": "other",
                "currency": "EUR",
                "hold_days": 0,
                "status": "active",
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "statements",
        "periods",
        "allocations",
        "lots",
        "transactions",
        "members",
        "rates",
        "api_keys",
        "partners",
        "settings",
    ):
        op.drop_table(table)
