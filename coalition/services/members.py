"""Members and the lock that serialises everything touching one member's lots.

A burn, a reversal and the expiry job each lock the member rows first
(:func:`lock`: a chunk's or a batch's members at once, in id order, so two
units of work never lock them crosswise), then read the lots: two burns of
one member therefore run one after the other and can never spend the same
points.

The lock is PostgreSQL's ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: it
excludes the same lock, so burns of one member still queue, but not the
``KEY SHARE`` lock a foreign key check takes on the member when another
unit of work inserts a row naming them. With ``FOR UPDATE``, two batches,
each burning for a member the other earns for, would wait on each other:
a deadlock, retried, at the cost of both.
"""

from sqlalchemy import select

from coalition.db import models, rows
from coalition.db.lists import among
from coalition.domain import lots as lots_domain

# with_for_update(key_share=True) is FOR NO KEY UPDATE on PostgreSQL
LOCK_MEMBERS = (
    select(models.Member.id)
    .where(among(models.Member.id, "ids"))
    .order_by(models.Member.id)
    .with_for_update(key_share=True)
)


def lock(session, member_ids: set[str]) -> set[str]:
    """Lock these members for this transaction, in id order; returns those that exist."""
    if not member_ids:
        return set()
    found = session.connection().execute(LOCK_MEMBERS, {"ids": sorted(member_ids)})
    return set(found.scalars())


def exists(session, member_id: str) -> bool:
    return session.get(models.Member, member_id) is not None


def as_lot(row: models.Lot | rows.Lot) -> lots_domain.Lot:
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
