"""What a period's postings in the windows of rates added late add up to
(:mod:`coalition.domain.repricing`), grouped by the stretch their original
posting is dated in.

A posting's original is itself, or for a reversal the burn or earn it
reverses: a burn reversal is valued at its burn's rate, a return recovers
the fee at its earn's (SPEC §7). Both statements start from the period's
own rows (the index on ``period_id, id, type``): its burns or issues dated in
the windows' parts inside the period, and its reversals, whose originals
may be older. So a window costs only the periods it reaches, and in a
later one only a look at that period's reversals.
"""

from sqlalchemy import (
    Integer,
    String,
    case,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
    values,
)
from sqlalchemy.orm import aliased

from coalition.db.models import Allocation, Transaction
from coalition.db.types import UTCDateTime
from coalition.domain import periods, repricing
from coalition.domain.lots import ISSUING
from coalition.domain.repricing import Window


def redeemed(session, period: periods.Period, windows: list[Window], starts: list) -> list:
    """``(issuer, redeemer, rate recorded, stretch, points)`` redeemed in the period by
    burns in the windows and by reversals of those burns."""
    postings = _postings(period, ("burn",), "burn_reversal", windows, starts)
    A = Allocation
    query = (
        select(A.issuer_id, A.redeemer_id, A.value_rate, postings.c.stretch, -func.sum(A.points))
        .join(postings, A.transaction_id == postings.c.transaction_id)
        .group_by(A.issuer_id, A.redeemer_id, A.value_rate, postings.c.stretch)
    )
    return [(*row[:4], int(row[4])) for row in session.execute(query)]


def issued(session, period: periods.Period, windows: list[Window], starts: list) -> list:
    """``(issuer, fee rate recorded, stretch, points)`` issued in the period by earns and
    bonuses in the windows, less what returns of them recovered."""
    postings = _postings(period, ISSUING, "earn_reversal", windows, starts)
    T = Transaction
    query = (
        select(T.partner_id, T.fee_rate, postings.c.stretch, func.sum(T.points))
        .join(postings, T.id == postings.c.transaction_id)
        .group_by(T.partner_id, T.fee_rate, postings.c.stretch)
    )
    return [(*row[:3], int(row[3])) for row in session.execute(query)]


def _postings(period, types: tuple[str, ...], reversal: str, windows: list[Window], starts):
    """Ids of the period's postings of ``types`` in the windows, and of its reversals of
    postings in them, each with the stretch (an index into ``starts``) its original is
    dated in."""
    T = Transaction
    own = repricing.within(windows, period.start, period.end)
    original = aliased(Transaction, name="original")
    reversals = (
        select(T.id.label("transaction_id"), _stretch(original, starts))
        .join(original, original.id == T.original_id)
        .where(T.period_id == period.id, T.type == reversal, _in(original, windows, "windows"))
    )
    if not own:
        return reversals.subquery("postings")
    originals = select(T.id.label("transaction_id"), _stretch(T, starts)).where(
        T.period_id == period.id, T.type.in_(types), _in(T, own, "own_windows")
    )
    return union_all(originals, reversals).subquery("postings")


def _in(posting, windows: list[Window], name: str):
    """Whether ``posting`` is in one of the windows, asked of them as rows (a ``VALUES``
    list named ``name``): a coalition's windows add up over its life, one a rate added
    while it has postings, and one condition a window, joined by OR, made an expression
    SQLite refuses past a depth of 1,000, every settlement after as many an error."""
    rows = (
        values(
            column("start", UTCDateTime()),
            column("end", UTCDateTime()),
            column("last_transaction_id", Integer()),
            column("partner_id", String()),
            name=name,
        )
        .data([(w.start, w.end, w.last_transaction_id, w.partner_id) for w in windows])
        .cte(name)
    )
    return exists().where(
        posting.id <= rows.c.last_transaction_id,
        posting.occurred_at >= rows.c.start,
        posting.occurred_at < rows.c.end,
        or_(rows.c.partner_id.is_(None), posting.partner_id == rows.c.partner_id),
    )


def _stretch(posting, starts: list):
    """Which stretch ``posting`` is dated in: the last of ``starts`` at or before it."""
    if len(starts) == 1:
        return literal(0).label("stretch")
    moments = ((posting.occurred_at < start, index) for index, start in enumerate(starts[1:]))
    return case(*moments, else_=len(starts) - 1).label("stretch")
