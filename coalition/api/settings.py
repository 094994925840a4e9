"""Programme settings (SPEC §5)."""

from flask.views import MethodView
from marshmallow import fields, validate

from coalition.api import Blueprint, database
from coalition.api.answers import Answer
from coalition.api.fields import Changes, Currency, Whole
from coalition.domain import periods
from coalition.services import settings as settings_service

blp = Blueprint(
    "settings", __name__, url_prefix="/api/v1/settings", description="Programme settings"
)


class SettingsSchema(Changes):
    base_currency = Currency()
    timezone = fields.String(validate=validate.Length(1, 64))
    period = fields.String(validate=validate.OneOf(periods.KINDS))
    points_ttl_days = Whole(validate=validate.Range(1, 36500))
    # at least a day: with 0, a posting would be refused for having taken time to arrive
    max_backdate_days = Whole(validate=validate.Range(1, periods.MAX_BACKDATE_DAYS))
    auto_close_after_hours = Whole(validate=validate.Range(0, 8760))


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
