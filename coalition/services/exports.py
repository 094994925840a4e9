"""The transactions behind a statement's figures, for a finance team's file: each points
movement a row, read a page at a time (decisions.md, "The transactions behind the figures
download as CSV").

A transaction moves points into its own lot (an earn, a bonus) or out of and into
others' (a burn takes from one lot or several, a reversal puts back, an expiry
removes what is left). As a row each, signed as the member's balance sees them, a
column's sum is a total: a transaction's points are its rows', a lot's rows add up to
what it holds, and a period's burn and burn reversal rows by issuer and redeemer are
its pair lines' points.
"""

from collections.abc import Iterator
from functools import partial

from coalition.services import pages, queries


def movement_pages(database, principal, filters: dict, size: int) -> Iterator[list[dict]]:
    """The movements of every transaction the listing's ``filters`` select, in posting
    order, a page of ``size`` transactions at a time.

    Each page is read in a unit of work of its own, so a file of millions of rows holds
    no snapshot open, and never passes a posting in flight (:func:`queries.keyset_page`).
    The first page is read before this returns: a filter it refuses is refused then,
    before an answer has begun.
    """
    read = partial(database.run_reading, queries.list_transactions, principal, filters)
    first = read(pages.Paging(size))
    return _pages_from(read, first, size)


def _pages_from(read, page: dict, size: int) -> Iterator[list[dict]]:
    while True:
        yield [row for view in page["items"] for row in movements(view)]
        if page["next_cursor"] is None:
            return
        page = read(pages.Paging(size, page["next_cursor"]))


def movements(view: dict) -> list[dict]:
    """A transaction as the API shows it (:func:`queries.transaction_views`), as a row per
    lot it moved points into or out of, each with the transaction's other fields; one
    that moved none (a return whose lot was spent) is one row without a lot."""
    sign = -1 if view["points"] < 0 else 1  # each lot moves points the transaction's way
    moved = [
        {"lot_id": lot["lot_id"], "issuer_id": lot["issuer_id"], "points": sign * lot["points"]}
        for lot in queries.lots_moved(view)
    ] or [{"lot_id": None, "issuer_id": None, "points": view["points"]}]
    shared = {name: value for name, value in view.items() if name not in ("id", "allocations")}
    return [shared | {"transaction_id": view["id"]} | lot for lot in moved]
