"""Programme KPIs per period, per partner and coalition-wide (coalition.domain.kpis defines
each; docs/console.md explains them to the operator)."""

from datetime import UTC, datetime

from flask import jsonify
from flask.views import MethodView
from marshmallow import fields

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.authentication import principal
from coalition.api.errors import ANOTHER_PARTNERS_DATA
from coalition.api.fields import (
    PERIOD_ID,
    PERIOD_ID_LENGTH,
    PERIOD_STATUSES,
    Count,
    MoneyOut,
    OneOfOut,
    PartnerId,
    Query,
    Range,
    Ratio,
    Text,
)
from coalition.services import kpis

blp = Blueprint("kpis", __name__, url_prefix="/api/v1/kpis", description="Programme KPIs")


class KpiQuery(Query):
    period_id = Text(
        max_length=PERIOD_ID_LENGTH, load_default=None, metadata={"description": PERIOD_ID}
    )
    partner_id = fields.String(load_default=None, validate=PartnerId)
    periods = Count(
        load_default=kpis.DEFAULT_PERIODS,
        validate=Range(1, kpis.MAX_PERIODS),
        metadata={"description": "Without period_id: how many of the latest periods to return"},
    )


class Figures(Answer):
    currency = fields.String(
        metadata={
            "description": "Currency of sales and averages; liability is in the base currency"
        }
    )
    active_members = fields.Integer(
        metadata={"description": "Distinct members with an earn or burn"}
    )
    new_members = fields.Integer(
        metadata={"description": "Members whose first lot belongs to the period"}
    )
    purchases = fields.Integer(metadata={"description": "Earn transactions"})
    purchasers = fields.Integer(metadata={"description": "Distinct members with a purchase"})
    purchase_frequency = Ratio(
        allow_none=True,
        metadata={"description": "Purchases ÷ purchasers, to 2 places; null without a purchase"},
    )
    sales = MoneyOut(
        allow_none=True,
        metadata={
            "description": "Σ purchase amounts; coalition-wide each partner's sum at the fx rate"
            " in force at the period's end, rounded once, and null while a partner with"
            " purchases has no such rate"
        },
    )
    average_purchase = MoneyOut(
        allow_none=True,
        metadata={
            "description": "Sales ÷ purchases, half-even at the currency's minor unit; null"
            " without a purchase"
        },
    )
    purchases_with_points = fields.Integer(
        metadata={
            "description": "Purchases by members who also spent points in the period: at the"
            " same partner, or coalition-wide anywhere"
        }
    )
    average_purchase_with_points = MoneyOut(
        allow_none=True, metadata={"description": "The average of those purchases"}
    )
    average_purchase_without_points = MoneyOut(
        allow_none=True, metadata={"description": "The average of the other purchases"}
    )
    redemptions = fields.Integer(metadata={"description": "Burn transactions"})
    earn_share = Ratio(allow_none=True, metadata={"description": "Earns ÷ (earns + burns)"})
    burn_share = Ratio(allow_none=True, metadata={"description": "Burns ÷ (earns + burns)"})
    points_issued = fields.Integer(
        metadata={"description": "Points of the scope's earns and bonuses, before returns"}
    )
    points_reversed = fields.Integer(
        metadata={"description": "Points recovered from the scope's lots by returns"}
    )
    points_redeemed = fields.Integer(
        metadata={"description": "The scope's points spent anywhere, less burn reversals"}
    )
    points_redeemed_here = fields.Integer(
        metadata={"description": "Points spent at the scope, less burn reversals"}
    )
    points_expired = fields.Integer(
        metadata={"description": "The scope's points removed by expiry (breakage)"}
    )
    redemption_rate = Ratio(
        allow_none=True,
        metadata={
            "description": "points_redeemed ÷ (points_issued − points_reversed); null when"
            " that is not above 0"
        },
    )
    breakage_rate = Ratio(
        allow_none=True,
        metadata={
            "description": "points_expired ÷ (points_issued − points_reversed); null when"
            " that is not above 0"
        },
    )
    liability_points = fields.Integer(
        metadata={
            "description": "The scope's points available or pending at the period's end"
            " (a closed period's as its settlement stored them)"
        }
    )
    liability = MoneyOut(
        allow_none=True,
        metadata={
            "description": "Their value in the base currency, at the coalition-wide redemption"
            " rate at the period's end; null when points are outstanding and no such rate is"
            " in force"
        },
    )


class PartnerFigures(Figures):
    partner_id = fields.String()
    name = fields.String()


class PeriodKpis(Answer):
    period_id = fields.String()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    status = OneOfOut(PERIOD_STATUSES)
    counted_at = fields.AwareDateTime(
        allow_none=True,
        metadata={
            "description": "When the figures counted from the period's earns and burns "
            "(members, purchases, sales, redemptions) were counted, where that was before "
            "this request: open periods whose counting together takes seconds are read "
            "back from their last count for up to an hour. Null when they were counted for this "
            "request, or are final (a closed period). The points figures are always as of "
            "the request"
        },
    )
    coalition = fields.Nested(
        Figures,
        allow_none=True,
        metadata={"description": "Coalition-wide totals; null for a key bound to a partner"},
    )
    partners = fields.List(fields.Nested(PartnerFigures))


class KpiReport(Answer):
    base_currency = fields.String()
    periods = fields.List(fields.Nested(PeriodKpis))


@blp.route("")
class Kpis(MethodView):
    @blp.doc(operationId="getKpis")
    @blp.arguments(KpiQuery, location="query")
    @blp.response(200, KpiReport)
    @blp.alt_response(403, ANOTHER_PARTNERS_DATA.name)
    @blp.alt_response(
        404,
        description="not_found: no partner with this partner_id, or a period_id outside the"
        " periods GET /periods lists",
    )
    def get(self, query):
        """Programme KPIs of a period, or of the latest periods (a partner key sees only its own)"""
        report = database().run_consistent(kpis.report, principal(), datetime.now(UTC), **query)
        return _answered(report)


# a period's own fields, dumped; its figures are added as the use case made them
PERIOD_ALONE = PeriodKpis(exclude=("coalition", "partners"))


def _answered(report: dict):
    """The report as JSON, its figures as :func:`coalition.domain.kpis.figures` made them.

    They are in the API's form already (counts as integers, money and ratios as
    strings), which the schemas above document and would only copy: 2,400 sets of
    figures at 400 partners and six periods, a tenth of a second. Only each period's
    own fields (its instants) are dumped.
    """
    periods = [
        {
            **PERIOD_ALONE.dump(period),
            "coalition": period["coalition"],
            "partners": period["partners"],
        }
        for period in report["periods"]
    ]
    return jsonify({"base_currency": report["base_currency"], "periods": periods})
