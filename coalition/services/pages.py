"""Keyset pagination: rows in id order after a cursor, the id of the last row shown.

A cursor is an id, so a page costs an index range scan wherever it starts,
and rows added meanwhile are found by the next page, never shown twice.
"""

import re

from coalition.domain.errors import Invalid

MAX_ID = 2**63 - 1  # ledger ids are BIGINT columns


def keyset(query, id_column, limit: int | None, cursor: str | None, max_id: int = MAX_ID):
    """``query`` from just after ``cursor`` (the id of the last row of the page before), in
    id order, one row past a page of ``limit`` (so that whether another page follows is
    known, :func:`split_page`), or every row after it without one. Ids run up to ``max_id``
    (the column's type)."""
    if cursor:
        if not re.fullmatch(r"[0-9]{1,19}", cursor) or int(cursor) > max_id:
            raise Invalid("cursor is not one this service returned", reason="bad_cursor")
        query = query.where(id_column > int(cursor))
    query = query.order_by(id_column)
    return query if limit is None else query.limit(limit + 1)


def split_page(found: list, limit: int | None) -> tuple[list, str | None]:
    """The page of rows a :func:`keyset` query found, and the cursor of the next page."""
    if limit is None or len(found) <= limit:
        return found, None
    return found[:limit], str(found[limit - 1].id)


def page(session, query, id_column, limit: int | None, cursor: str | None, max_id: int = MAX_ID):
    """One page of ``query``'s rows after ``cursor`` (all of them without ``limit``), and
    the cursor of the next page (None on the last)."""
    return split_page(list(session.scalars(keyset(query, id_column, limit, cursor, max_id))), limit)


def within(query, column, filters: dict):
    """``query`` narrowed to rows whose ``column`` falls from ``filters["from"]``
    (inclusive) to ``filters["to"]`` (exclusive), as period bounds do; either may be
    absent."""
    if filters.get("from") is not None:
        query = query.where(column >= filters["from"])
    if filters.get("to") is not None:
        query = query.where(column < filters["to"])
    return query
