"""Member balances and history (SPEC §6)."""

from datetime import UTC, datetime

from flask.views import MethodView
from marshmallow import fields

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.authentication import authenticate_at, principal, reads_generation
from coalition.api.fields import LotAvailableAt, LotExpiresAt, OneOfOut
from coalition.api.pagination import PageArgs, paging
from coalition.domain import lots
from coalition.domain.errors import NotFound
from coalition.services import queries

blp = Blueprint("members", __name__, url_prefix="/api/v1/members", description="Members")


class Expiring(Answer):
    points = fields.Integer()
    expires_at = fields.AwareDateTime()


class BalanceOut(Answer):
    member_id = fields.String()
    available = fields.Integer(
        metadata={"description": "Points a burn may spend now: held past hold_days, not expired"}
    )
    pending = fields.Integer(
        metadata={
            "description": "Points not yet spendable, still within their issuer's hold_days"
            " (a lot whose hold outlasts its expiry counts in neither)"
        }
    )
    expiring = fields.List(
        fields.Nested(Expiring),
        metadata={
            "description": "Available and pending points that expire within the next 90"
            " days, by instant, soonest first"
        },
    )
    lifetime_earned = fields.Integer(
        metadata={
            "description": "Points the member earned and was given as bonuses, less what "
            "returns took back (not what they could not: shortfall points stay earned)"
        }
    )
    lifetime_burned = fields.Integer(
        metadata={"description": "Points the member burned, less what burn reversals put back"}
    )
    as_of = fields.AwareDateTime()


class Movement(Answer):
    class LotMovement(Answer):
        lot_id = fields.Integer()
        issuer_id = fields.String()
        points = fields.Integer()

    transaction_id = fields.Integer()
    external_id = fields.String(
        metadata={"description": "The posting partner's own id of it (a till's receipt)"}
    )
    type = OneOfOut(lots.TYPES)
    partner_id = fields.String()
    occurred_at = fields.AwareDateTime()
    points = fields.Integer()
    shortfall_points = fields.Integer(
        metadata={
            "description": "Of a return: the points the lot no longer held, borne by the issuer"
        }
    )
    reason = fields.String()
    lots = fields.List(fields.Nested(LotMovement))
    available_at = LotAvailableAt()
    expires_at = LotExpiresAt()


class HistoryOut(Answer):
    member_id = fields.String()
    items = fields.List(fields.Nested(Movement))
    next_cursor = fields.String(allow_none=True)


@blp.route("/<member:member_id>/balance", merge_slashes=False)
class Balance(MethodView):
    @blp.doc(operationId="getMemberBalance")
    @reads_generation
    @blp.response(200, BalanceOut)
    @blp.alt_response(404, description="not_found: no member with this id")
    def get(self, member_id):
        """A member's available, pending and expiring points"""
        balance, generation = database().read(queries.balance, member_id, datetime.now(UTC))
        authenticate_at(generation)
        if balance is None:
            raise NotFound(f"no member {member_id!r}")
        return balance


@blp.route("/<member:member_id>/history", merge_slashes=False)
class History(MethodView):
    @blp.doc(operationId="getMemberHistory")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, HistoryOut)
    @blp.alt_response(404, description="not_found: no member with this id")
    def get(self, page, member_id):
        """Every points movement of a member (a partner key sees its own)"""
        return database().run_reading(queries.history, principal(), member_id, paging(page))
