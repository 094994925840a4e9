"""How a statement writes its figures, days and times: amounts with thousands
separators at their currency's minor unit and never rounded again, points,
rates, and instants in the coalition's time zone."""

import datetime
from collections.abc import Mapping
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import dates

from coalition.domain.money import exponent, fits_minor_unit
from coalition.domain.periods import LAST_INSTANT


def fx_rate(rate: str | None, base: str, currency: str) -> str:
    """The fx rate; None on the statement of a partner that took no part in the period,
    which closes without one (its net is 0 in any currency). A partner that settles
    in the base currency converts nothing: "1 EUR per EUR" reads as a rate to check."""
    if currency == base:
        return f"none needed: settles in {base}"
    if rate is None:
        return "none needed"
    return rate_of(rate, base, currency)


def rate_of(rate: str, base: str, currency: str) -> str:
    """An fx rate as a statement says it: "0.0061 EUR per JPY"."""
    return f"{rate} {base} per {currency}"


def liability(amount: str | None, base: str) -> str:
    """The liability's value; None when points were outstanding and no coalition-wide
    redemption rate was in force at the period's end to value them with."""
    if amount is None:
        return "not valued: no redemption rate"
    return money_in(amount, base)


def money_in(amount: str | Decimal, currency: str) -> str:
    """An amount followed by its currency's code: "1,234.50 EUR"."""
    return f"{money(amount, currency)} {currency}"


def term(amount: str | Decimal, currency: str) -> str:
    """An amount to be subtracted or added in a sum written out: a negative one (fees
    returned, a period whose reversals outweigh its burns) in parentheses, so that
    "− fees (-2.23)" is not read as "− fees -2.23"."""
    printed = money(amount, currency)
    return f"({printed})" if Decimal(amount) < 0 else printed


def money(amount: str | Decimal, currency: str) -> str:
    """Print an amount with thousands separators at its currency's minor unit.

    Only zeros are ever added (``"90"`` EUR prints as ``90.00``); an amount
    with more decimals than the currency has is refused rather than rounded,
    because rounding belongs to the settlement (SPEC §3), not to the printer.
    """
    value = Decimal(amount)
    places = exponent(currency)
    if not fits_minor_unit(value, currency):
        raise ValueError(f"{amount!r} is not a {currency} amount with at most {places} decimals")
    return f"{value:,.{places}f}"


def points(count: int) -> str:
    return f"{count:,}"


def period_dates(start: str, end: str, zone: str | None = None) -> str:
    """The period as the inclusive days it covers, e.g. "1 October 2026 – 31 October 2026".

    Periods end exclusively at the next period's start, so the last day is
    the one holding the instant before the end. The bounds are stored in UTC;
    a statement that names its coalition's time zone (SPEC §3: periods follow
    it) is shown in that zone's days, naming the zone unless it is UTC, even
    where a daylight-saving change makes a day start at 01:00. A statement
    issued before statements named their zone shows UTC days when its bounds
    are UTC midnights, else the exact instants rather than a guessed day.
    """
    first, after = datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(end)
    if zone is None and not first.time() == after.time() == datetime.time(0):
        return f"{timestamp(start)} – {timestamp(end)}"
    local = ZoneInfo(zone or "UTC")
    first, last = first.astimezone(local), (after - LAST_INSTANT).astimezone(local)
    days = _day(first) if last.date() == first.date() else f"{_day(first)} – {_day(last)}"
    return days if zone in (None, "UTC") else f"{days} ({zone})"


def issued(issued_at: str, zone: str | None = None) -> str:
    """The day the statement was issued, in the coalition's time zone when named, as
    the period's days are: a daily period closed just after it ended is issued the
    next local day, though in UTC that may still be the period's last day."""
    return _day(_moment(issued_at, zone))


def _day(moment: datetime.datetime) -> str:
    return dates.format_date(moment.date(), "d MMMM y", locale="en")


def timestamp(value: str, zone: str | None = None) -> str:
    """A timestamp in the coalition's time zone, if named, else in its own offset, with
    the offset, e.g. ``1 Oct 2026 01:10 UTC+02:00`` or ``30 Sep 2026 23:10 UTC``: a late
    item reads in the local time its period's days are shown in."""
    moment = _moment(value, zone)
    return (
        f"{dates.format_date(moment.date(), 'd MMM y', locale='en')} {moment:%H:%M} {_zone(moment)}"
    )


def _moment(value: str, zone: str | None) -> datetime.datetime:
    """An RFC 3339 instant in the coalition's time zone, if named, else in its own offset."""
    moment = datetime.datetime.fromisoformat(value)
    return moment if zone is None else moment.astimezone(ZoneInfo(zone))


def _zone(moment: datetime.datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def pdf_date(statement: Mapping) -> str:
    """The PDF creation date: when the statement was issued.

    Taken from the data, never the clock, so the bytes stay the same.
    """
    moment = datetime.datetime.fromisoformat(statement["issued_at"])
    offset = moment.strftime("%z")
    return f"D:{moment:%Y%m%d%H%M%S}{offset[:3]}'{offset[3:5]}'"
