"""The record of changes to what the operator configures (settings, partners, rates,
keys) and of closes: who made each, when, and what it changed."""

from flask.views import MethodView
from marshmallow import fields

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.fields import OneOf, OneOfOut, Text
from coalition.api.pagination import WindowArgs, paging
from coalition.services import changes

blp = Blueprint("changes", __name__, url_prefix="/api/v1/changes", description="Changes")
BOUND = "reads no changes: they name every partner's rates and keys"


SUBJECTS = sorted(set(changes.SUBJECTS.values()))


class ChangeQuery(WindowArgs):
    subject = fields.String(validate=OneOf(SUBJECTS))
    subject_id = Text(max_length=63)
    key_id = Text(max_length=32, metadata={"description": "Changes made with this key"})
    via = fields.String(validate=OneOf(changes.VIAS))


class ChangeOut(Answer):
    id = fields.Integer()
    at = fields.AwareDateTime()
    via = fields.String(metadata={"description": "api, cli, scheduler or system"})
    key_id = fields.String(allow_none=True, metadata={"description": "The key, through the API"})
    subject = OneOfOut(SUBJECTS)
    subject_id = fields.String()
    action = fields.String(metadata={"description": "create, update, revoke or close"})
    fields_ = fields.Dict(  # named so in Python only: ``fields`` is marshmallow's module
        attribute="fields",
        data_key="fields",
        metadata={
            "description": "What was created, or each field changed as [before, after];"
            " money and rates as strings, instants in RFC 3339"
        },
    )


class ChangePage(Answer):
    items = fields.List(fields.Nested(ChangeOut))
    next_cursor = fields.String(allow_none=True)


@blp.route("")
class Changes(MethodView):
    @blp.doc(operationId="listChanges")
    @blp.reads_every_partner(BOUND)
    @blp.arguments(ChangeQuery, location="query")
    @blp.response(200, ChangePage)
    def get(self, query):
        """Changes to settings, partners, rates and keys, and closes, oldest or newest first"""
        page = paging(query)
        return database().read(changes.listing, query, page)
