"""API keys: created, listed and revoked by the operator (SPEC §4).

A key's secret is shown once, in the answer that creates it; listings show
what it is for (role, partner, name) and whether it is revoked, never the
key or its hash.
"""

from flask.views import MethodView
from marshmallow import fields

from coalition import auth
from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.errors import MALFORMED_JSON
from coalition.api.fields import Body, Legible, OneOf, OneOfOut, PartnerId, Query
from coalition.api.parsing import refuse_malformed_body

blp = Blueprint("keys", __name__, url_prefix="/api/v1/keys", description="API keys")
BOUND = "reads no keys: they name every partner's tills and teams"


class KeyIn(Body):
    role = fields.String(required=True, validate=OneOf(auth.ROLES))
    partner_id = fields.String(load_default=None, validate=PartnerId)
    name = Legible(load_default=None)


class KeyRecord(Answer):
    id = fields.String()
    role = OneOfOut(auth.ROLES)
    partner_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    revoked_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "When it was revoked; null while it works"}
    )


class KeyOut(KeyRecord):
    key = fields.String(metadata={"description": "Shown once; only its hash is stored"})


class KeyQuery(Query):
    partner_id = fields.String(load_default=None, validate=PartnerId)
    role = fields.String(load_default=None, validate=OneOf(auth.ROLES))
    status = fields.String(
        load_default=None,
        validate=OneOf(auth.KEY_STATUSES),
        metadata={"description": "active (not revoked) or revoked; both when not given"},
    )


@blp.route("")
class Keys(MethodView):
    @blp.doc(operationId="listKeys")
    @blp.reads_every_partner(BOUND)
    @blp.arguments(KeyQuery, location="query")
    @blp.response(200, KeyRecord(many=True))
    def get(self, query):
        """List keys, oldest first (never the keys themselves)"""
        return database().read(auth.listing, **query)

    @blp.doc(operationId="createKey")
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
                "created_at": row.created_at,
                "revoked_at": row.revoked_at,
            }

        # the key is in this answer alone: no cache along the way may keep a copy
        return database().run(create), {"Cache-Control": "no-store"}


@blp.route("/<key_id>")
class Key(MethodView):
    @blp.doc(operationId="getKey")
    @blp.reads_every_partner(BOUND)
    @blp.response(200, KeyRecord)
    @blp.alt_response(404, description="not_found: no key with this id")
    def get(self, key_id):
        """Read a key (never the key itself)"""
        return database().read(auth.get_key, key_id)

    @blp.doc(operationId="revokeKey")
    @blp.roles("operator")
    @blp.response(204)
    @blp.alt_response(404, description="not_found: no key with this id")
    @blp.alt_response(400, MALFORMED_JSON.name)
    def delete(self, key_id):
        """Revoke a key"""
        refuse_malformed_body()
        database().run(auth.revoke_key, key_id)
