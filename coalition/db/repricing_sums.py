"""What a period's postings in the windows of rates added late add up to
(:mod:`coalition.domain.repricing`), grouped by the stretch their original
posting is dated in.

A posting's original is itself, or for a reversal the burn or earn it
reverses: a burn reversal is valued at its burn's rate, a return recovers
the fee at its earn's (SPEC §7). Both statements start from the period's
own rows (the index on ``period_id, id, type``): its burns or issues posted
up to the last a rate can re-price, and its reversals, whose originals may
be older. Whether a posting is in a window, and where its stretch begins,
are asked of the ``rates`` table by its indexes (migration 0025): the rates
of the kind added after the posting, and the last instant at or before it
at which one begins or ends.
"""

from typing import ClassVar

from sqlalchemy import case, exists, func, or_, select, text, true, type_coerce, union, union_all
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from coalition.db import on_postgresql
from coalition.db.models import Allocation, Rate, Transaction
from coalition.db.types import UTCDateTime
from coalition.domain import periods, repricing
from coalition.domain.lots import ISSUING

#: The most partners whose postings a settlement names when it asks which of them rates
#: added late re-price (:func:`_of_partners`).
PARTNERS_NAMED = 1_000


def redeemed(session, period: periods.Period, reach: repricing.Reach) -> list:
    """``(issuer, redeemer, rate recorded, stretch, points)`` redeemed in the period by
    burns in the windows and by reversals of those burns, within ``reach``."""
    postings = _postings(
        session, period, "redemption", ("burn",), "burn_reversal", reach, _their_ids
    )
    A = Allocation
    query = (
        select(A.issuer_id, A.redeemer_id, A.value_rate, postings.c.stretch, -func.sum(A.points))
        .join(postings, A.transaction_id == postings.c.transaction_id)
        .group_by(A.issuer_id, A.redeemer_id, A.value_rate, postings.c.stretch)
    )
    return [(*row[:4], int(row[4])) for row in _uncompiled(session, query)]


def issued(session, period: periods.Period, reach: repricing.Reach) -> list:
    """``(issuer, fee rate recorded, stretch, points)`` issued in the period by earns and
    bonuses in the windows, less what returns of them recovered, within ``reach``."""
    postings = _postings(session, period, "fee", ISSUING, "earn_reversal", reach, _their_fees)
    p = postings.c
    query = select(p.partner_id, p.fee_rate, p.stretch, func.sum(p.points)).group_by(
        p.partner_id, p.fee_rate, p.stretch
    )
    return [(*row[:3], int(row[3])) for row in _uncompiled(session, query)]


def _uncompiled(session, query) -> list:
    """``query``'s rows, run on PostgreSQL without its JIT, and the transaction's setting
    as it was after it. A check of a rate's window for each posting is costed high, so
    a month of postings passes the threshold at which the server compiles and optimises
    the query, which took longer than running it: 1.2 s of 2.0 s on 250,000 earns re-priced
    (performance-log.md, "Rates added late: a partner's rate dated back to the 1st")."""
    if not on_postgresql(session):
        return session.execute(query).all()
    session.execute(text("SET LOCAL jit = off"))
    rows = session.execute(query).all()
    session.execute(text("SET LOCAL jit TO DEFAULT"))
    return rows


def _their_ids(posting) -> tuple:
    """What :func:`redeemed` reads of a posting: its id, to join its allocations."""
    return (posting.id.label("transaction_id"),)


def _their_fees(posting) -> tuple:
    """What :func:`issued` reads of a posting, taken as its row is found: not joined
    again, which read the whole table to hash it (0.5–1 s on a million postings)."""
    return posting.partner_id, posting.fee_rate, posting.points


def _postings(session, period, kind, types, reversal: str, reach: repricing.Reach, read):
    """The period's postings of ``types`` in the windows of rates of ``kind``, and its
    reversals of postings in them, as ``read`` takes their columns, each with the
    stretch its original is dated in. Its own are dated in it: a late posting is dated
    in a period closed before it was posted, so after any rate dated there was added."""
    T = Transaction
    original = aliased(Transaction, name="original")
    _stretch = _stretch_searched if on_postgresql(session) else _stretch_probed
    own = select(*read(T), _stretch(T, kind)).where(
        T.period_id == period.id,
        T.id <= reach.last_transaction_id,
        T.occurred_at >= reach.since,
        T.type.in_(types),
        _of_partners(T, reach.partners),
        _in_a_window(T, kind),
    )
    reversals = (
        select(*read(T), _stretch(original, kind))
        .join(original, original.id == T.original_id)
        .where(
            T.period_id == period.id,
            T.type == reversal,
            original.occurred_at < period.end,
            _in_a_window(original, kind),
        )
    )
    return union_all(own, reversals).subquery("postings")


def _of_partners(posting, partners: frozenset[str] | None):
    """Whether ``posting`` is of one of ``partners`` (of any, None): each named a value of
    the statement, up to :data:`PARTNERS_NAMED` of them; past that, of any partner, which
    reads more postings, never fewer (:mod:`coalition.domain.repricing`). 65,600 partners,
    each with a rate added late, made a statement PostgreSQL refused (65,535 values at
    most), and every draft and close failed; SQLite takes 250,000."""
    if partners is None or len(partners) > PARTNERS_NAMED:
        return true()
    return posting.partner_id.in_(sorted(partners))


def _in_a_window(posting, kind: str):
    """Whether ``posting`` is in the window of a rate of ``kind``: its partner's or every
    partner's, added after it was posted and in force at its date."""
    return or_(
        _added_after(posting, kind, posting.partner_id),
        _added_after(posting, kind, None),
    )


def _added_after(posting, kind: str, partner_id):
    """Asked of the rates of the partner added after ``posting`` (their index): few
    of them, where the rates of the kind that began before it are nearly all."""
    rate = aliased(Rate, name="added_after")
    return exists().where(
        rate.kind == kind,
        rate.partner_id == partner_id,
        rate.last_transaction_id >= posting.id,
        _NotSearched(rate.effective_from) <= posting.occurred_at,
        or_(rate.effective_to.is_(None), rate.effective_to > posting.occurred_at),
    )


class _NotSearched(ColumnElement):
    """A column no index is searched by. SQLite plans without statistics (decisions.md,
    "SQLite plans without statistics"), and between two indexes that each narrow the
    rates of a kind by a range, the rates added after a posting and the rates begun
    before it, it took the second: every rate of the kind for each posting."""

    inherit_cache = True
    _traverse_internals: ClassVar = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column):
        self.column = column
        self.type = column.type


@compiles(_NotSearched)
def _column(element: _NotSearched, compiler, **kw) -> str:
    return compiler.process(element.column, **kw)


@compiles(_NotSearched, "sqlite")
def _unary_plus(element: _NotSearched, compiler, **kw) -> str:
    """SQLite's unary ``+`` changes no value and keeps a term from choosing an index."""
    return "+" + compiler.process(element.column, **kw)


def _stretch_probed(posting, kind: str):
    """Where the stretch ``posting`` is dated in begins: the last instant at or before it
    at which a rate of ``kind`` begins or ends (one begins at or before it: the rate whose
    window it is in), found by two probes of the rates' indexes."""
    began, ended = aliased(Rate, name="began"), aliased(Rate, name="ended")
    last_begun = (
        select(func.max(began.effective_from))
        .where(began.kind == kind, began.effective_from <= posting.occurred_at)
        .scalar_subquery()
    )
    last_ended = (
        select(func.max(ended.effective_to))
        .where(ended.kind == kind, ended.effective_to <= posting.occurred_at)
        .scalar_subquery()
    )
    return case((last_ended > last_begun, last_ended), else_=last_begun).label("stretch")


def _stretch_searched(posting, kind: str):
    """:func:`_stretch_probed` on PostgreSQL: the instants at which rates of ``kind`` begin
    or end, in order, read once as an array, and the one ``posting`` is dated from found
    by a binary search of it (``width_bucket``). Each probe a posting made cost
    PostgreSQL a subplan: a month of 1,000,000 earns re-priced by one rate took 30 s
    (performance-log.md)."""
    edges = union(
        select(Rate.effective_from.label("at")).where(Rate.kind == kind),
        select(Rate.effective_to).where(Rate.kind == kind, Rate.effective_to.is_not(None)),
    ).subquery("edges")
    in_order = select(func.array_agg(aggregate_order_by(edges.c.at, edges.c.at)))
    instants = type_coerce(in_order.scalar_subquery(), ARRAY(UTCDateTime()))
    return instants[func.width_bucket(posting.occurred_at, instants)].label("stretch")
