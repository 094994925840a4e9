"""Query arguments shared by every cursor-paginated listing."""

from marshmallow import ValidationError, fields, validates_schema

from coalition.api.fields import Count, Instant, OneOf, Query, Range
from coalition.services.pages import Paging

MAX_PAGE = 1000


class PageArgs(Query):
    limit = Count(load_default=100, validate=Range(1, MAX_PAGE))
    cursor = fields.String(
        load_default=None,
        # no bound of its own: one too long to be a cursor is told as any other the
        # service did not return, with the same reason (pages.keyset)
        metadata={
            "description": "The page before's next_cursor; none for the first page",
            "maxLength": 32,
        },
    )
    order = fields.String(
        load_default="oldest",
        validate=OneOf(["oldest", "newest"]),
        metadata={"description": "oldest first, or newest first: each next page older"},
    )


class Window(Query):
    """A window of time: ``from`` inclusive, ``to`` exclusive."""

    from_ = Instant(  # "from" is a keyword
        data_key="from",
        attribute="from",
        metadata={
            "description": "From this instant, inclusive: a transaction's occurred_at, a change's at"
        },
    )
    to = Instant(metadata={"description": "Up to this instant, exclusive; not before from"})

    @validates_schema
    def _from_not_after_to(self, data, **kwargs):
        # A window that ends before it starts is a mistake (swapped bounds, a wrong
        # offset), not a question whose answer is "nothing".
        start, end = data.get("from"), data.get("to")
        if start is not None and end is not None and end < start:
            raise ValidationError("is before from: the window would end before it starts", "to")


class WindowArgs(Window, PageArgs):
    """A listing over a window of time, a page at a time."""


def paging(query: dict) -> Paging:
    """The page a listing's query asks for, taken out of it: what is left are its filters."""
    return Paging(query.pop("limit"), query.pop("cursor"), newest=query.pop("order") == "newest")
