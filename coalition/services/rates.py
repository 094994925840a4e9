"""The operator's rates: append-only versions (SPEC §5).

Which version applies, and what each kind may name, is decided by
:mod:`coalition.domain.rates`; this module stores them. A use case reads the
versions in force from :mod:`coalition.services.catalog`.
"""

from datetime import UTC, datetime

from sqlalchemy import select

from coalition.db import aggregates, models
from coalition.domain import money, rates
from coalition.domain.errors import Invalid, PeriodClosed
from coalition.services import calendar, catalog, partners


def create(session, fields: dict) -> models.Rate:
    """Add a rate version (rates are never edited: a later version outweighs an earlier),
    dated and marked with the ledger's last transaction, the window within which a
    settlement re-prices what was posted before it (:mod:`coalition.domain.repricing`)."""
    # first: a close in progress commits before, and its period is then closed; a change of
    # the base currency or a partner's currency in progress too, before they are checked.
    # Exclusively: no posting is in flight, so those up to the ledger's last transaction
    # were priced without this rate and every later one with it (domain.repricing)
    granted_at = calendar.lock_calendar(session, exclusive=True)
    rates.check_scope(fields)
    if (
        fields["kind"] == "fx"
        and fields["currency"] == catalog.current(session).settings.base_currency
    ):
        raise Invalid(
            f"{fields['currency']} is the base currency: its fx rate is always 1", field="currency"
        )
    if fields.get("partner_id"):
        partner = partners.get_for_reference(session, fields["partner_id"])
        if fields.get("min_amount") is not None:
            money.check_places(fields["min_amount"], partner.currency, "min_amount")
    last_closed = calendar.last_closed(session)
    if last_closed is not None and fields["effective_from"] < last_closed.end:
        opens = catalog.current(session).calendar.local(last_closed.end)  # as every bound is shown
        raise PeriodClosed(
            f"effective_from falls in a closed period: every period up to {last_closed.id}"
            f" is closed; it may be from {opens.isoformat()}"
        )
    last = aggregates.largest_id(session, "transactions")
    # dated as postings are: a rate re-prices those dated up to 5 minutes after it was added
    added = calendar.dated_once_locked(datetime.now(UTC), granted_at)
    rate = models.Rate(created_at=added, last_transaction_id=last, **fields)
    session.add(rate)
    session.flush()
    return rate


def listing(session, kind=None, partner_id=None, currency=None, at=None) -> list:
    """Rate versions in the order added, of a kind, a partner's own, an fx rate's currency;
    with ``at``, only those in force then. Those in force are chosen from the catalog's
    copy (the console's Rates page asks for them first): read from the table, a daily fx
    rate per currency for years took half a second to load for the 20 that are in force."""
    if at is not None:
        versions = catalog.current(session).rates_of((kind,) if kind else rates.KINDS)
        wanted = [
            rate
            for rate in versions
            if (partner_id is None or rate.partner_id == partner_id)
            and (currency is None or rate.currency == currency)
        ]
        return rates.versions_in_force(wanted, at)
    query = select(models.Rate).order_by(models.Rate.id)
    if kind is not None:
        query = query.where(models.Rate.kind == kind)
    if partner_id is not None:
        query = query.where(models.Rate.partner_id == partner_id)
    if currency is not None:
        query = query.where(models.Rate.currency == currency)
    return list(session.scalars(query))
