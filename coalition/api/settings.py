"""Programme settings (SPEC §5)."""

from flask.views import MethodView
from marshmallow import fields

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.fields import Changes, Currency, Length, OneOf, Range, Whole
from coalition.domain import periods
from coalition.services import settings as settings_service

blp = Blueprint(
    "settings", __name__, url_prefix="/api/v1/settings", description="Programme settings"
)


#: Said of the calendar and the base currency, which every posted transaction settles by.
FIXED = "; fixed (409) once a transaction exists or a period has been closed"


class SettingsSchema(Changes):
    base_currency = Currency(
        metadata={"description": "The clearing house's settlement currency (ISO 4217)" + FIXED}
    )
    timezone = fields.String(
        validate=Length(1, 64),
        metadata={
            "description": "IANA name, such as Europe/Moscow: periods begin and end at its"
            " local midnights" + FIXED
        },
    )
    period = fields.String(
        validate=OneOf(periods.KINDS),
        metadata={
            "description": "The settlement period: monthly (ids such as 2026-10), weekly"
            " (ISO weeks, 2026-W43) or daily (2026-10-05)" + FIXED
        },
    )
    points_ttl_days = Whole(
        validate=Range(1, 36500),
        metadata={
            "description": "A lot expires this many days after its occurred_at; a change"
            " applies to lots posted after it"
        },
    )
    # at least a day: with 0, a posting would be refused for having taken time to arrive
    max_backdate_days = Whole(
        validate=Range(1, periods.MAX_BACKDATE_DAYS),
        metadata={
            "description": "A posting's occurred_at may be at most this many days ago"
            " (older: 422 too_old)"
        },
    )
    auto_close_after_hours = Whole(
        validate=Range(0, 8760),
        metadata={"description": "The scheduler closes a period this many hours after its end"},
    )


class SettingsOut(SettingsSchema, Answer):
    """The settings as answered: every one, where a PUT may give only those it changes."""


@blp.route("")
class Settings(MethodView):
    @blp.doc(operationId="getSettings")
    @blp.roles("operator", "finance")
    @blp.response(200, SettingsOut)
    def get(self):
        """Read the settings"""
        return database().run_reading(settings_service.load)

    @blp.doc(operationId="updateSettings")
    @blp.roles("operator")
    @blp.arguments(SettingsSchema, required=False)  # the fields given: none, none changed
    @blp.response(200, SettingsOut)
    @blp.alt_response(
        409,
        description="base_currency_fixed: base_currency changed once a transaction exists or a"
        " period has been closed; calendar_fixed: timezone or period changed then",
    )
    def put(self, changes):
        """Change the settings (only the fields given)"""
        return database().run(settings_service.update, changes)
