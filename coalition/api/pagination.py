"""Query arguments shared by every cursor-paginated listing."""

from marshmallow import Schema, fields, validate


class PageArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    cursor = fields.String(load_default=None, validate=validate.Length(max=32))
