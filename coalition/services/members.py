"""Members and the lock that serialises everything touching one member's lots.

A burn, a reversal and the expiry job each lock the member row first
(:data:`LOCK`; :mod:`coalition.services.book` locks a chunk's members at
once), then read the lots: two burns of one member therefore run one after
the other and can never spend the same points.

The lock is PostgreSQL's ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: it
excludes the same lock, so burns of one member still queue, but not the
``KEY SHARE`` lock a foreign key check takes on the member when another
unit of work inserts a row naming them. With ``FOR UPDATE``, two batches,
each burning for a member the other earns for, waited on each other:
a deadlock, retried, at the cost of both.
"""

from sqlalchemy import select

from coalition.db import models, rows
from coalition.domain import lots as lots_domain

LOCK = {"key_share": True}  # with_for_update(): FOR NO KEY UPDATE on PostgreSQL


def lock(session, member_id: str) -> bool:
    """Lock the member for this transaction; False when there is no such member."""
    query = select(models.Member.id).where(models.Member.id == member_id).with_for_update(**LOCK)
    return session.scalar(query) is not None


def exists(session, member_id: str) -> bool:
    return session.get(models.Member, member_id) is not None


def lot_value(row: models.Lot | rows.Lot) -> lots_domain.Lot:
    return lots_domain.Lot(
        id=row.id,
        issuer_id=row.issuer_id,
        points=row.points,
        remaining=row.remaining,
        earned_at=row.earned_at,
        available_at=row.available_at,
        expires_at=row.expires_at,
    )
