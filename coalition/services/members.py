"""Members and the lock that serialises everything touching one member's lots.

A burn, a reversal and the expiry job each lock the member row first
(``SELECT … FOR UPDATE`` on PostgreSQL; :mod:`coalition.services.book` locks
a chunk's members at once), then read the lots: two burns of one member
therefore run one after the other and can never spend the same points.
"""

from sqlalchemy import select

from coalition.db import models, rows
from coalition.domain import lots as lots_domain


def lock(session, member_id: str) -> bool:
    """Lock the member for this transaction; False when there is no such member."""
    query = select(models.Member.id).where(models.Member.id == member_id).with_for_update()
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
