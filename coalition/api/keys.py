"""API keys: created and revoked by the operator (SPEC §4)."""

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from coalition import auth
from coalition.api import MALFORMED_JSON, Blueprint, database, refuse_malformed_body
from coalition.api.fields import PartnerId, Text

blp = Blueprint("keys", __name__, url_prefix="/api/v1/keys", description="API keys")


class KeyIn(Schema):
    role = fields.String(required=True, validate=validate.OneOf(auth.ROLES))
    partner_id = fields.String(load_default=None, validate=PartnerId)
    name = Text(load_default=None)


class KeyOut(Schema):
    id = fields.String()
    key = fields.String(metadata={"description": "Shown once; only its hash is stored"})
    role = fields.String()
    partner_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


@blp.route("")
class Keys(MethodView):
    @blp.roles("operator")
    @blp.arguments(KeyIn)
    @blp.response(201, KeyOut)
    def post(self, body):
        """Create a key"""

        def create(session):
            row, key = auth.create_key(session, **body)
            return {
                "id": row.id,
                "key": key,
                "role": row.role,
                "partner_id": row.partner_id,
                "name": row.name,
            }

        return database().run(create)


@blp.route("/<key_id>")
class Key(MethodView):
    @blp.roles("operator")
    @blp.response(204)
    @blp.alt_response(404, description="not_found: no key with this id")
    @blp.alt_response(400, MALFORMED_JSON.name)
    def delete(self, key_id):
        """Revoke a key"""
        refuse_malformed_body()
        database().run(auth.revoke_key, key_id)
