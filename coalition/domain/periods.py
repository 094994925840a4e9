"""Settlement periods: ids, boundaries in the coalition's time zone, lateness.

SPEC §5 and §7. A period runs from one local midnight to another (a month,
an ISO week or a day) and is identified as ``2026-10``, ``2026-W43`` or
``2026-10-05``. Closed periods always form a prefix of the calendar, because
closing a period closes every earlier open one first; so "the earliest open
period" is simply the one after the last closed period.

Which period comes after which is told by their ids (they sort as the periods
do), not by their bounds: a closed period keeps the bounds its zone's rules
gave it when it closed, and an update of the zone database since (Kazakhstan
moved from +06:00 to +05:00 on 2024-03-01, announced weeks before) may put
the local midnight at its end an hour earlier or later than the one stored.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

from coalition.domain.errors import Invalid

KINDS = ("monthly", "weekly", "daily")

# SPEC §5: a transaction may be dated up to this far ahead of the moment it is posted
FUTURE_TOLERANCE = timedelta(minutes=5)
# The most the operator's max_backdate_days may be: no posting is ever dated further back
MAX_BACKDATE_DAYS = 3650
# A period's last instant is this much before its (exclusive) end: the instant at which
# rates in force "at the period's end" and the outstanding liability are read (SPEC §7)
LAST_INSTANT = timedelta(microseconds=1)

_ID_PATTERNS = {
    "monthly": re.compile(r"([0-9]{4})-([0-9]{2})"),
    "weekly": re.compile(r"([0-9]{4})-W([0-9]{2})"),
    "daily": re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"),
}
# what an id of each kind looks like, said when one is not (SPEC §5)
_ID_EXAMPLES = {"monthly": "2026-10", "weekly": "2026-W43", "daily": "2026-10-05"}


@dataclass(frozen=True, order=True)
class Period:
    """One settlement period; ``start`` inclusive and ``end`` exclusive, both UTC."""

    start: datetime
    end: datetime
    id: str

    @property
    def last_instant(self) -> datetime:
        return self.end - LAST_INSTANT


@dataclass(frozen=True, order=True)
class ListedPeriod(Period):
    """A period as the calendar lists it (SPEC §7): open, or closed at ``closed_at``."""

    closed_at: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def status(self) -> str:
        return "closed" if self.closed else "open"


def check_occurred_at(occurred_at: datetime, now: datetime, max_backdate_days: int) -> None:
    """Refuse a transaction dated more than 5 minutes ahead of ``now``, or more than
    ``max_backdate_days`` before it (SPEC §5)."""
    if occurred_at > now + FUTURE_TOLERANCE:
        # the service's time beside the tolerance: a till whose clock runs ahead sees by how much
        raise Invalid(
            f"occurred_at is more than {FUTURE_TOLERANCE.seconds // 60} minutes ahead of the"
            f" service's clock ({now.isoformat(timespec='seconds')})",
            reason="occurred_in_future",
            field="occurred_at",
        )
    if occurred_at < now - timedelta(days=max_backdate_days):
        raise Invalid(
            f"occurred_at is more than {max_backdate_days}"
            f" {'day' if max_backdate_days == 1 else 'days'} ago",
            reason="too_old",
            field="occurred_at",
        )


def is_timezone(name: str) -> bool:
    """Whether the calendar may follow this IANA zone (SPEC §5).

    Asking ZoneInfo is not enough: it opens directories ("America" raises
    IsADirectoryError), data files, "posixrules" and the leap-second "right/"
    zones, so the name must be in the zone catalogue. Debian's "localtime" is
    in it too, but follows each machine's /etc/localtime, and so is tzdata's
    "Factory", a placeholder for a machine whose zone was never set (its
    abbreviation is "-00"): both are refused.
    """
    return name not in ("localtime", "Factory") and name in available_timezones()


def _first_day(kind: str, day: date) -> date:
    if kind == "monthly":
        return day.replace(day=1)
    if kind == "weekly":
        return day - timedelta(days=day.weekday())
    return day


def _next_first_day(kind: str, first: date) -> date:
    if kind == "monthly":
        return (first + timedelta(days=32)).replace(day=1)
    return first + timedelta(days=7 if kind == "weekly" else 1)


def _id(kind: str, first: date) -> str:
    if kind == "monthly":
        return f"{first.year:04d}-{first.month:02d}"
    if kind == "weekly":
        year, week, _ = first.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return first.isoformat()


def _period(kind: str, first: date, tz: ZoneInfo) -> Period:
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=tz).astimezone(ZoneInfo("UTC"))

    return Period(midnight(first), midnight(_next_first_day(kind, first)), _id(kind, first))


@dataclass(frozen=True)
class Calendar:
    """The coalition's settlement calendar (SPEC §5): periods of one ``kind`` between
    local midnights of one IANA ``timezone``.

    Attributes:
        kind: ``monthly``, ``weekly`` (ISO weeks) or ``daily``.
        timezone: the IANA name whose midnights bound the periods.
    """

    kind: str
    timezone: str

    def containing(self, at: datetime) -> Period:
        """The period whose local-midnight boundaries contain the instant ``at``."""
        tz = ZoneInfo(self.timezone)
        return _period(self.kind, _first_day(self.kind, at.astimezone(tz).date()), tz)

    def local(self, at: datetime) -> datetime:
        """An instant as the coalition's users keep it: a period's bound is a local midnight."""
        return at.astimezone(ZoneInfo(self.timezone))

    def following(self, period: Period) -> Period:
        """The period after ``period``, also where the zone's rules have since moved the
        local midnight at its end later: as they now bound it, it still holds that end."""
        after = self.containing(period.end)
        return after if after.id > period.id else self.containing(after.end)

    def parse(self, period_id: str) -> Period:
        """The period with this id; a malformed id or one of another kind → Invalid.

        So is the id of a period whose bounds no datetime holds: ``9999-12`` ends
        on 10000-01-01, and ``0001-01`` in a +14:00 zone starts before year 1 in UTC.
        """
        kind = self.kind
        match = _ID_PATTERNS[kind].fullmatch(period_id)
        try:
            if match is None:
                raise ValueError
            numbers = [int(group) for group in match.groups()]
            if kind == "monthly":
                first = date(numbers[0], numbers[1], 1)
            elif kind == "weekly":
                first = date.fromisocalendar(numbers[0], numbers[1], 1)
            else:
                first = date(*numbers)
        except ValueError:
            raise Invalid(
                f"{period_id!r} is not a {kind} period id, such as {_ID_EXAMPLES[kind]}"
            ) from None
        try:
            return _period(kind, first, ZoneInfo(self.timezone))
        except (ValueError, OverflowError):
            raise Invalid(
                f"period {period_id} has no bounds in UTC: it begins or ends "
                "outside the years 1 to 9999"
            ) from None

    def attribute(self, at: datetime, last_closed: Period | None) -> tuple[Period, bool]:
        """The period a transaction that occurred at ``at`` belongs to, and whether it is late.

        A transaction whose own period is closed lands in the earliest open
        period and is marked late, so a closed statement never changes.
        """
        own = self.containing(at)
        if last_closed is not None and own.id <= last_closed.id:
            return self.following(last_closed), True
        return own, False

    def between(self, first: Period, last: Period) -> list[Period]:
        """Every period from ``first`` to ``last`` inclusive."""
        periods, period = [], first
        while period.start <= last.start:
            periods.append(period)
            period = self.following(period)
        return periods
