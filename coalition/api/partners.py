"""Partners (SPEC §5)."""

from flask.views import MethodView
from marshmallow import fields

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.fields import (
    Body,
    Changes,
    Currency,
    Legible,
    NullLeftOut,
    OneOf,
    PartnerId,
    Range,
    Whole,
)
from coalition.domain.partners import CATEGORIES, STATUSES
from coalition.services import partners

blp = Blueprint("partners", __name__, url_prefix="/api/v1/partners", description="Partners")


class PartnerFields(Body):
    id = fields.String(required=True, validate=PartnerId)
    name = Legible(required=True)
    category = fields.String(required=True, validate=OneOf(CATEGORIES))
    currency = Currency(required=True)
    hold_days = Whole(
        validate=Range(0, 3650),
        metadata={
            "description": "Days after occurred_at before the points this partner issues"
            " (its earns and bonuses) may be spent, a return window; a change applies to"
            " points posted after it; a new partner's is 0 if not given"
        },
    )
    status = fields.String(
        validate=OneOf(STATUSES),
        metadata={
            "description": "A suspended partner's new transactions are 422"
            " partner_suspended; a new partner is active if not given"
        },
    )


class PartnerSchema(NullLeftOut, PartnerFields):
    """A new partner: ``hold_days`` and ``status`` left out, or null, take their defaults."""


class PartnerOut(PartnerFields, Answer):
    """A partner as answered: hold_days and status too, which a new one may leave to
    their defaults."""


class PartnerPatch(Changes, PartnerFields):
    """The fields to change. ``id`` may be sent as read (a client that edits what it
    read sends it back), but not changed."""

    id = fields.String(
        validate=PartnerId, metadata={"description": "The partner's id as in the path, if sent"}
    )

    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)


@blp.route("")
class Partners(MethodView):
    @blp.doc(operationId="listPartners")
    @blp.roles("operator", "finance")
    @blp.response(200, PartnerOut(many=True))
    def get(self):
        """List partners"""
        return database().run_reading(partners.all_partners)

    @blp.doc(operationId="createPartner")
    @blp.roles("operator")
    @blp.arguments(PartnerSchema)
    @blp.response(201, PartnerOut)
    @blp.alt_response(409, description="duplicate_partner: a partner has this id already")
    def post(self, body):
        """Add a partner"""
        return database().run(partners.create, body)


@blp.route("/<partner_id>")
class Partner(MethodView):
    @blp.doc(operationId="getPartner")
    @blp.roles("operator", "finance")
    @blp.response(200, PartnerOut)
    @blp.alt_response(404, description="not_found: no partner with this id")
    def get(self, partner_id):
        """Read a partner"""
        return database().run_reading(partners.get, partner_id)

    @blp.doc(operationId="updatePartner")
    @blp.roles("operator")
    @blp.arguments(PartnerPatch, required=False)  # the fields given: none, none changed
    @blp.response(200, PartnerOut)
    @blp.alt_response(404, description="not_found: no partner with this id")
    @blp.alt_response(
        409,
        description="currency_fixed: a new currency for a partner with transactions,"
        " or for the coalition partner (it settles in the base currency)",
    )
    def patch(self, changes, partner_id):
        """Change a partner's name, category, currency, hold days or status"""
        return database().run(partners.update, partner_id, changes)
