"""The tables, as SQLAlchemy mapped classes.

The schema itself is created only by the Alembic migrations in
``migrations/``; these classes describe it for queries. Ledger rows
(transactions, allocations) are never updated; a lot's ``remaining`` is the
one column that changes, always under a lock on its member. The database
refuses the rest (migration 0014), and so for final statements, the record
of changes and a closed period's settlement.
"""

import secrets
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from coalition.db.types import Amount, AsWritten, BigId, IdList, RateValue, UTCDateTime


class Base(DeclarativeBase):
    pass


class Settings(Base):
    __tablename__ = "settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    base_currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    points_ttl_days: Mapped[int]
    max_backdate_days: Mapped[int]
    auto_close_after_hours: Mapped[int]
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    keys_generation: Mapped[int] = mapped_column(BigInteger, default=0)  # moved with the keys


def new_generation(keys: bool = True):
    """The statement that stamps the reference data as changed: every process of the
    service reads its catalog afresh on its next request
    (:mod:`coalition.services.catalog`); the API keys too where ``keys`` (without it,
    a process keeps those it holds: thousands, which no rate or close changes)."""
    stamps = {"generation": secrets.randbits(62)}
    if keys:
        stamps["keys_generation"] = secrets.randbits(62)
    return update(Settings).values(**stamps)


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    hold_days: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Rate(Base):
    __tablename__ = "rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[Decimal] = mapped_column(AsWritten())
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    category: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    min_amount: Mapped[Decimal | None] = mapped_column(AsWritten())
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    effective_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the ledger's last transaction id when the rate was added: those up to it were
    # posted without it, and a settlement re-prices them (migration 0008)
    last_transaction_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (UniqueConstraint("partner_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId(), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    external_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    amount: Mapped[Decimal | None] = mapped_column(Amount())
    currency: Mapped[str | None] = mapped_column(String(3))
    category: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(BigInteger)
    shortfall_points: Mapped[int] = mapped_column(BigInteger, default=0)
    original_id: Mapped[int | None] = mapped_column(BigId(), ForeignKey("transactions.id"))
    rate_ids: Mapped[tuple[int, ...]] = mapped_column(IdList, default=())
    fee_rate: Mapped[Decimal | None] = mapped_column(RateValue())
    period_id: Mapped[str] = mapped_column(String(16))
    late: Mapped[bool]
    request_hash: Mapped[str] = mapped_column(String(64))
    # the API key that posted it; None for a command's or a job's (migration 0019)
    key_id: Mapped[str | None] = mapped_column(String(32))


class Lot(Base):
    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(BigId(), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(BigId(), ForeignKey("transactions.id"), unique=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    issuer_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Allocation(Base):
    """Points moved between a lot and a burn, reversal or expiry.

    ``points`` is the signed change to the lot (a burn −p, a burn reversal
    +p); ``value_rate`` is the burn's redemption rate (a burn reversal repeats
    its burn's), which keys the period's pair totals and lets a late rate
    re-price what was redeemed (:mod:`coalition.db.repricing_sums`).
    """

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(BigId(), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(BigId(), ForeignKey("transactions.id"))
    type: Mapped[str] = mapped_column(String(16))
    lot_id: Mapped[int] = mapped_column(BigId(), ForeignKey("lots.id"))
    issuer_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    redeemer_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    value_rate: Mapped[Decimal | None] = mapped_column(RateValue())
    reverses_id: Mapped[int | None] = mapped_column(BigId(), ForeignKey("allocations.id"))
    period_id: Mapped[str] = mapped_column(String(16))


class PairTotal(Base):
    """Points of ``issuer_id`` redeemed at ``redeemer_id`` in a period at one rate.

    A counter kept as burns and burn reversals are written, one of
    :data:`coalition.db.period_totals.STRIPES` per key (:mod:`coalition.db.period_totals`).
    """

    __tablename__ = "pair_totals"

    period_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    issuer_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    redeemer_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    value_rate: Mapped[Decimal] = mapped_column(RateValue(), primary_key=True)
    stripe: Mapped[int] = mapped_column(primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)


class PartnerTotal(Base):
    """A partner's activity in a period at one fee rate (none for expiries, burns and
    the operator's bonuses); a counter like :class:`PairTotal`."""

    __tablename__ = "partner_totals"

    id: Mapped[int] = mapped_column(BigId(), primary_key=True)
    period_id: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[str] = mapped_column(String(63))
    fee_rate: Mapped[Decimal | None] = mapped_column(RateValue())
    stripe: Mapped[int]
    points_issued: Mapped[int] = mapped_column(BigInteger)
    points_reversed: Mapped[int] = mapped_column(BigInteger)
    shortfall_points: Mapped[int] = mapped_column(BigInteger)
    points_expired: Mapped[int] = mapped_column(BigInteger)
    late_count: Mapped[int] = mapped_column(BigInteger)


class Period(Base):
    """A closed period with the settlement it was closed with."""

    __tablename__ = "periods"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    end: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settlement: Mapped[str] = mapped_column(Text)


class ClosedPeriodCounts(Base):
    """A closed period's KPI counts, kept when first counted after the close: in a row of
    their own, as SQLite writes a row whole, and the period's holds its stored settlement."""

    __tablename__ = "closed_period_counts"

    period_id: Mapped[str] = mapped_column(ForeignKey("periods.id"), primary_key=True)
    kpi_counts: Mapped[str] = mapped_column("activity", Text)


class OpenPeriodCounts(Base):
    """An open period's KPI counts, kept when counting them took seconds."""

    __tablename__ = "open_period_counts"

    period_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kpi_counts: Mapped[str] = mapped_column("activity", Text)


class Statement(Base):
    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("period_id", "partner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    period_id: Mapped[str] = mapped_column(ForeignKey("periods.id"))
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)


class Change(Base):
    """A change to what the operator configures (settings, partners, rates, keys) or a
    period's close: who made it and what it changed (:mod:`coalition.services.changes`)."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(BigId(), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    via: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str | None] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)


#: What the operator configures, and the periods closed: the catalog caches these rows
#: (any change to one stamps its generation) and the record of changes names them so.
REFERENCE_DATA = {
    Settings: "settings",
    Partner: "partner",
    Rate: "rate",
    ApiKey: "key",
    Period: "period",
}
