"""Query arguments shared by every cursor-paginated listing."""

from marshmallow import Schema, fields, validate

MAX_PAGE = 1000


class PageArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_PAGE))
    cursor = fields.String(load_default=None, validate=validate.Length(max=32))
