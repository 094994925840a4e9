"""Keyset pagination: rows in id order after a cursor, the id of the last row shown.

A cursor is an id, so a page costs an index range scan wherever it starts,
and rows added meanwhile are found by the next page, never shown twice.
Newest first, the pages run down the ids from the newest: what is added
meanwhile is above the first page, for a reader to ask for again.
"""

import re
from typing import NamedTuple

from coalition.domain.errors import Invalid

MAX_ID = 2**63 - 1  # ledger ids are BIGINT columns


class Paging(NamedTuple):
    """The page a reader asks for: ``limit`` rows (None: every one) after ``cursor``,
    oldest first, or newest first."""

    limit: int | None = None
    cursor: str | None = None
    newest: bool = False


def keyset(query, id_column, paging: Paging, max_id: int = MAX_ID):
    """``query`` from just after ``paging.cursor`` (the id of the last row of the page
    before), in id order or newest first, one row past a page of ``paging.limit`` (so that
    whether another page follows is known, :func:`split_page`), or every row after it
    without one. Ids run up to ``max_id`` (the column's type)."""
    if paging.cursor:
        if not re.fullmatch(r"[0-9]{1,19}", paging.cursor) or int(paging.cursor) > max_id:
            raise Invalid(
                "cursor is not one this service returned",
                reason="bad_cursor",
                field="cursor",
                location="query",
            )
        after = int(paging.cursor)
        query = query.where(id_column < after if paging.newest else id_column > after)
    query = query.order_by(id_column.desc() if paging.newest else id_column)
    return query if paging.limit is None else query.limit(paging.limit + 1)


def split_page(found: list, limit: int | None) -> tuple[list, str | None]:
    """The page of rows a :func:`keyset` query found, and the cursor of the next page."""
    if limit is None or len(found) <= limit:
        return found, None
    return found[:limit], str(found[limit - 1].id)


def page(session, query, id_column, paging: Paging, max_id: int = MAX_ID):
    """One page of ``query``'s rows (all of them without a limit), and the cursor of the
    next page (None on the last)."""
    found = list(session.scalars(keyset(query, id_column, paging, max_id)))
    return split_page(found, paging.limit)


def within(query, column, filters: dict):
    """``query`` narrowed to rows whose ``column`` falls from ``filters["from"]``
    (inclusive) to ``filters["to"]`` (exclusive), as period bounds do; either may be
    absent."""
    if filters.get("from") is not None:
        query = query.where(column >= filters["from"])
    if filters.get("to") is not None:
        query = query.where(column < filters["to"])
    return query
