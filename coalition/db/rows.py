"""Ledger rows as plain objects: what the book reads, decides on and writes.

One field per column of the table of the same name (a test holds them to
:mod:`coalition.db.models`). The book handles thousands of rows a chunk,
and an ORM instance costs some 30 µs to build through its instrumented
attributes; these cost one. Queries that only read keep to the ORM classes, or
read only the columns they show. :func:`as_lot` turns a lot row, plain or ORM,
into the value the ledger's rules take.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from coalition.db import models
from coalition.domain import lots as lots_domain


@dataclass(slots=True, kw_only=True)
class Transaction:
    partner_id: str
    external_id: str
    type: str
    member_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    period_id: str
    late: bool
    request_hash: str
    id: int | None = None  # drawn when the book records the row
    points: int = 0
    shortfall_points: int = 0
    amount: Decimal | None = None
    currency: str | None = None
    category: str | None = None
    reason: str | None = None
    original_id: int | None = None
    rate_ids: tuple[int, ...] = ()
    fee_rate: Decimal | None = None


@dataclass(slots=True, kw_only=True)
class Lot:
    transaction_id: int
    member_id: str
    issuer_id: str
    points: int
    remaining: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    id: int | None = None


def as_lot(row: models.Lot | Lot) -> lots_domain.Lot:
    """A lot row as the value the ledger's rules take (they know no ORM)."""
    return lots_domain.Lot(
        id=row.id,
        issuer_id=row.issuer_id,
        points=row.points,
        remaining=row.remaining,
        earned_at=row.earned_at,
        available_at=row.available_at,
        expires_at=row.expires_at,
    )


@dataclass(slots=True, kw_only=True)
class Allocation:
    transaction_id: int
    type: str
    lot_id: int
    issuer_id: str
    redeemer_id: str
    points: int
    period_id: str
    value_rate: Decimal | None = None
    reverses_id: int | None = None
    id: int | None = None
