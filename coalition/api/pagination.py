"""Query arguments shared by every cursor-paginated listing."""

from marshmallow import Schema, fields, validate

from coalition.api.fields import Count
from coalition.services.pages import Paging

MAX_PAGE = 1000


class PageArgs(Schema):
    limit = Count(load_default=100, validate=validate.Range(1, MAX_PAGE))
    cursor = fields.String(load_default=None, validate=validate.Length(max=32))
    order = fields.String(
        load_default="oldest",
        validate=validate.OneOf(["oldest", "newest"]),
        metadata={"description": "oldest first, or newest first: each next page older"},
    )


def paging(query: dict) -> Paging:
    """The page a listing's query asks for, taken out of it: what is left are its filters."""
    return Paging(query.pop("limit"), query.pop("cursor"), newest=query.pop("order") == "newest")
