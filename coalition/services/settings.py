"""The operator's programme settings (SPEC §5)."""

from sqlalchemy import exists, select

from coalition.db import models
from coalition.domain import money, periods
from coalition.domain.errors import Conflict, Invalid
from coalition.domain.partners import OPERATOR_PARTNER
from coalition.services import calendar

FROZEN = ("base_currency", "timezone", "period")  # once anything is posted or closed


def load(session) -> models.Settings:
    return session.get(models.Settings, 1)


def update(session, changes: dict) -> models.Settings:
    """Apply the given fields; calendar and currency freeze once the ledger depends on them."""
    settings = load(session)
    if any(
        changes.get(field, getattr(settings, field)) != getattr(settings, field) for field in FROZEN
    ):
        # postings in flight commit first, so they count below; judged by the row as it
        # is written, as for a partner (services.partners.update)
        calendar.lock_calendar(session, exclusive=True)
        session.refresh(settings)
    changes = {
        field: value for field, value in changes.items() if getattr(settings, field) != value
    }
    if "base_currency" in changes:
        money.check_currency(changes["base_currency"], field="base_currency")
        if _ledger_started(session):
            raise Conflict(
                "base_currency is fixed once any transaction exists or a period has been closed",
                reason="base_currency_fixed",
            )
        session.get(models.Partner, OPERATOR_PARTNER).currency = changes["base_currency"]
    if "timezone" in changes and not periods.is_timezone(changes["timezone"]):
        raise Invalid(
            f"{changes['timezone']!r} is not an IANA time zone a calendar may follow",
            field="timezone",
        )
    if {"timezone", "period"} & changes.keys() and _ledger_started(session):
        raise Conflict(
            "the settlement calendar is fixed once any transaction exists "
            "or a period has been closed",
            reason="calendar_fixed",
        )
    for field, value in changes.items():
        setattr(settings, field, value)
    return settings


def _ledger_started(session) -> bool:
    """Whether anything is posted or closed, which fixes the calendar and the base currency.

    Every transaction carries the period it was posted in, and its period
    totals are counted by that id, so a new calendar would leave them in no
    period that can close; closed statements and posted rates' values are in
    the base currency.
    """
    return _any(session, models.Transaction) or _any(session, models.Period)


def _any(session, model) -> bool:
    return session.scalar(select(exists().where(model.id.isnot(None))))
