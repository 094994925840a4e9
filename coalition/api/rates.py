"""Rates: append-only, versioned by ``effective_from`` (SPEC §5)."""

from flask.views import MethodView
from marshmallow import fields

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.fields import (
    Body,
    Currency,
    DecimalString,
    Instant,
    Legible,
    OneOf,
    OneOfOut,
    PartnerId,
    Query,
    Range,
)
from coalition.domain import money
from coalition.domain.rates import KINDS
from coalition.services import rates

blp = Blueprint("rates", __name__, url_prefix="/api/v1/rates", description="Rates")


class RateValue(DecimalString):
    """A rate as a decimal string, with the decimals it was written with."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else money.as_written(value)


#: SPEC §5's table of kinds, for the OpenAPI document: the schema alone says only that
#: a rate has a kind, a value and an effective_from (domain.rates.check_scope holds it).
BY_KIND = (
    "By kind, what value means and what the rate names besides kind, value and"
    " effective_from: earn: points per 1 unit of the partner's currency, needs partner_id,"
    ' may name a category; promo: a multiplier on an earn\'s points ("2" doubles them),'
    " needs partner_id and effective_to, may name a category; threshold: whole bonus points"
    " for a purchase of at least min_amount (the highest reached applies, and 0 withdraws"
    " one), needs partner_id and min_amount; redemption: base currency paid per point"
    " redeemed, coalition-wide or the redeeming partner's; fee: base currency the issuer"
    " pays the operator per point issued, coalition-wide or a partner's (not the coalition"
    " partner's); fx: base currency per 1 unit of currency, needs currency and names no"
    " partner_id. earn, promo and fx are above 0. At an instant the rate in force is, of"
    " the versions whose [effective_from, effective_to) holds it, the most specific (a"
    " partner's before a coalition-wide one, a category's before none), then the latest"
    " effective_from, then the latest added. A version never changes: a later one"
    " supersedes it."
)


class RateIn(Body):
    kind = fields.String(required=True, validate=OneOf(KINDS))
    value = DecimalString(
        required=True,
        validate=Range(min=0, max=money.MAX_RATE),
        metadata={"example": "0.1"},
    )
    partner_id = fields.String(load_default=None, validate=PartnerId)
    category = Legible(max_length=64, load_default=None)
    currency = Currency(load_default=None)
    min_amount = DecimalString(load_default=None, validate=Range(min=0, max=money.MAX_AMOUNT))
    effective_from = Instant(required=True)
    effective_to = Instant(load_default=None)


class RateOut(Answer):
    id = fields.Integer()
    kind = OneOfOut(KINDS)
    value = RateValue()
    partner_id = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    min_amount = RateValue(allow_none=True)
    effective_from = fields.AwareDateTime()
    effective_to = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()


class RateQuery(Query):
    kind = fields.String(load_default=None, validate=OneOf(KINDS))
    partner_id = fields.String(
        load_default=None,
        validate=PartnerId,
        metadata={
            "description": "Rates of this partner's own; the coalition-wide ones it falls"
            " back to have no partner_id"
        },
    )
    currency = Currency(
        load_default=None,
        metadata={"description": "fx rates of this currency (the other kinds name none)"},
    )
    at = Instant(load_default=None)


@blp.route("")
class Rates(MethodView):
    @blp.doc(operationId="listRates")
    @blp.roles("operator", "finance")
    @blp.arguments(RateQuery, location="query")
    @blp.response(200, RateOut(many=True))
    def get(self, query):
        """List rate versions (with at: those in force then)"""
        return database().run_reading(rates.listing, **query)

    @blp.doc(operationId="createRate")
    @blp.roles("operator")
    @blp.arguments(RateIn, description=BY_KIND)
    @blp.response(201, RateOut)
    @blp.alt_response(409, description="period_closed: effective_from falls in a closed period")
    def post(self, body):
        """Add a rate version"""
        return database().run(rates.create, body)
