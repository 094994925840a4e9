"""Members and the lock that serialises everything touching one member's lots.

A burn, a reversal and the expiry job each lock the member row first
(``SELECT … FOR UPDATE`` on PostgreSQL), then read the lots: two burns of one
member therefore run one after the other and can never spend the same points.
"""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from coalition.db import models
from coalition.domain import lots as lots_domain

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def ensure(session, member_id: str) -> None:
    """Create the member on its first earn or bonus; concurrent firsts are harmless."""
    insert = _INSERTS[session.bind.dialect.name]
    statement = insert(models.Member).values(id=member_id, created_at=datetime.now(UTC))
    session.connection().execute(statement.on_conflict_do_nothing(index_elements=["id"]))


def lock(session, member_id: str) -> bool:
    """Lock the member for this transaction; False when there is no such member."""
    query = select(models.Member.id).where(models.Member.id == member_id).with_for_update()
    return session.scalar(query) is not None


def exists(session, member_id: str) -> bool:
    return session.get(models.Member, member_id) is not None


def live_lots(session, member_id: str) -> list[models.Lot]:
    """The member's lots that still hold points, read fresh after the lock."""
    query = (
        select(models.Lot)
        .where(models.Lot.member_id == member_id, models.Lot.remaining > 0)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def lot_value(row: models.Lot) -> lots_domain.Lot:
    return lots_domain.Lot(
        id=row.id,
        issuer_id=row.issuer_id,
        points=row.points,
        remaining=row.remaining,
        earned_at=row.earned_at,
        available_at=row.available_at,
        expires_at=row.expires_at,
    )
