"""Ledger rows as plain objects: what the book reads, decides on and writes.

One field per column of the table of the same name (a test holds them to
:mod:`coalition.db.models`). The book handles thousands of rows a chunk,
and an ORM instance costs some 30 µs to build through its instrumented
attributes; these cost one. Queries that only read keep to the ORM classes, or
read only the columns they show. ``as_lot`` and ``as_rate`` turn a lot or rate
row, plain or ORM, into the value the domain's rules take.
"""

import operator
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from coalition.domain import lots as lots_domain
from coalition.domain import rates as rates_domain


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
    key_id: str | None = None


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


def _as_value(kind):
    """The function turning a row, plain or ORM, into the value ``kind`` of the domain's
    rules (they know no ORM): each of its fields read from the column of that name, in
    one C call (faster than naming them, on a burn's path over every live lot)."""
    read = operator.attrgetter(*(field.name for field in fields(kind)))
    return lambda row: kind(*read(row))


as_lot = _as_value(lots_domain.Lot)  # a lot row as the ledger's rules take it
as_rate = _as_value(rates_domain.Rate)  # a rate row as the rate rules take it


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
