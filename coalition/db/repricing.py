"""What a period's postings in the windows of rates added late add up to
(:mod:`coalition.domain.repricing`), grouped by the stretch their original
posting is dated in.

A posting's original is itself, or for a reversal the burn or earn it
reverses: a burn reversal is valued at its burn's rate, a return recovers
the fee at its earn's (SPEC §7). Both statements start from the originals
in the windows, found by the index on ``occurred_at`` or the primary key,
so a period with no window reads nothing and one with a small window reads
little.
"""

from datetime import datetime

from sqlalchemy import and_, case, func, literal, or_, select, true, union_all
from sqlalchemy.orm import aliased

from coalition.db.models import Allocation, Transaction
from coalition.domain.repricing import Window
from coalition.domain.totals import REDEEMING

ISSUING = ("earn", "bonus")


def redeemed(session, period_id: str, windows: list[Window], starts: list[datetime]) -> list:
    """``(issuer, redeemer, rate recorded, stretch, points)`` redeemed in the period by
    burns in the windows and by reversals of those burns."""
    postings = _postings(("burn",), windows, starts)
    A = Allocation
    query = (
        select(A.issuer_id, A.redeemer_id, A.value_rate, postings.c.stretch, -func.sum(A.points))
        .join(postings, A.transaction_id == postings.c.transaction_id)
        .where(A.period_id == period_id, A.type.in_(REDEEMING))
        .group_by(A.issuer_id, A.redeemer_id, A.value_rate, postings.c.stretch)
    )
    return [(*row[:4], int(row[4])) for row in session.execute(query)]


def issued(session, period_id: str, windows: list[Window], starts: list[datetime]) -> list:
    """``(issuer, fee rate recorded, stretch, points)`` issued in the period by earns and
    bonuses in the windows, less what returns of them recovered."""
    postings = _postings(ISSUING, windows, starts)
    T = Transaction
    query = (
        select(T.partner_id, T.fee_rate, postings.c.stretch, func.sum(T.points))
        .join(postings, T.id == postings.c.transaction_id)
        .where(T.period_id == period_id, T.type.in_((*ISSUING, "earn_reversal")))
        .group_by(T.partner_id, T.fee_rate, postings.c.stretch)
    )
    return [(*row[:3], int(row[3])) for row in session.execute(query)]


def _postings(types: tuple[str, ...], windows: list[Window], starts: list[datetime]):
    """Ids of the originals of ``types`` in the windows and of their reversals, each with
    the stretch (an index into ``starts``) its original is dated in."""
    original = aliased(Transaction, name="original")
    in_windows = or_(
        *(
            and_(
                original.id <= window.last_transaction_id,
                original.occurred_at >= window.start,
                original.occurred_at < window.end,
                true() if window.partner_id is None else original.partner_id == window.partner_id,
            )
            for window in windows
        )
    )
    stretch = (
        case(
            *((original.occurred_at < start, index) for index, start in enumerate(starts[1:])),
            else_=len(starts) - 1,
        )
        if len(starts) > 1
        else literal(0)
    )
    originals = (
        select(original.id, stretch.label("stretch"))
        .where(original.type.in_(types), in_windows)
        .subquery("originals")
    )
    T = Transaction
    return union_all(
        select(originals.c.id.label("transaction_id"), originals.c.stretch),
        select(T.id, originals.c.stretch).join(originals, T.original_id == originals.c.id),
    ).subquery("postings")
