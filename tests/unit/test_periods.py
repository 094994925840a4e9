"""Settlement periods (SPEC §5, §7): ids, local-midnight boundaries in UTC, lateness."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from coalition.domain import periods
from coalition.domain.errors import Invalid


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# The coalition's time zone (SPEC §5): an IANA name of the zone catalogue.


def test_an_iana_zone_name_is_a_timezone():
    assert periods.is_timezone("Europe/Moscow") is True


@pytest.mark.parametrize("name", ["America", "localtime", "Factory", "Mars/Olympus_Mons"])
def test_a_directory_the_machines_localtime_or_an_unknown_name_is_not_a_timezone(name):
    # "America" is a directory of zones; "localtime" follows each machine's clock setting;
    # "Factory" is tzdata's placeholder for a machine whose zone was never set.
    assert periods.is_timezone(name) is False


# Monthly periods in Moscow (UTC+3 all year, no DST).


def test_monthly_period_id_is_year_and_month():
    assert periods.Calendar("monthly", "Europe/Moscow").containing(utc(2026, 10, 15)).id == "2026-10"


def test_monthly_period_starts_at_local_midnight_in_utc():
    # 1 October 00:00 Moscow (UTC+3) = 30 September 21:00 UTC.
    period = periods.Calendar("monthly", "Europe/Moscow").containing(utc(2026, 10, 15))
    assert period.start == utc(2026, 9, 30, 21, 0)


def test_monthly_period_ends_at_next_local_midnight_in_utc():
    # 1 November 00:00 Moscow = 31 October 21:00 UTC.
    period = periods.Calendar("monthly", "Europe/Moscow").containing(utc(2026, 10, 15))
    assert period.end == utc(2026, 10, 31, 21, 0)


def test_a_periods_last_instant_is_one_microsecond_before_its_end():
    # Rates "at the period's end" are read here: 31 October 21:00 UTC − 1 µs.
    period = periods.Calendar("monthly", "Europe/Moscow").containing(utc(2026, 10, 15))
    assert period.last_instant == utc(2026, 10, 31, 20, 59, 59, 999999)


def test_utc_instant_before_local_month_start_belongs_to_previous_month():
    # 30 September 20:59 UTC is 23:59 in Moscow: still September.
    assert periods.Calendar("monthly", "Europe/Moscow").containing(utc(2026, 9, 30, 20, 59)).id == "2026-09"


def test_utc_instant_on_previous_utc_day_belongs_to_local_month():
    # 30 September 21:00 UTC is 1 October 00:00 in Moscow: October, though the UTC date is 30 Sep.
    assert periods.Calendar("monthly", "Europe/Moscow").containing(utc(2026, 9, 30, 21, 0)).id == "2026-10"


def test_instant_with_an_offset_is_placed_by_its_local_time_in_the_coalition_zone():
    # 2026-10-31T23:30-05:00 = 1 November 04:30 UTC = 07:30 Moscow → November.
    at = datetime(2026, 10, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert periods.Calendar("monthly", "Europe/Moscow").containing(at).id == "2026-11"


def test_december_is_followed_by_january_of_next_year():
    december = periods.Calendar("monthly", "UTC").containing(utc(2026, 12, 10))
    following = periods.Calendar("monthly", "UTC").following(december)
    assert (following.id, following.start, following.end) == (
        "2027-01", utc(2027, 1, 1), utc(2027, 2, 1))


def test_february_of_a_leap_year_has_29_days():
    # 2028 is a leap year: February runs to 1 March.
    february = periods.Calendar("monthly", "UTC").parse("2028-02")
    assert february.end - february.start == timedelta(days=29)


# DST in Berlin: CEST (UTC+2) ends on 25 October 2026 at 03:00, back to CET (UTC+1).


def test_berlin_october_starts_at_summer_time_midnight():
    # 1 October 00:00 CEST (UTC+2) = 30 September 22:00 UTC.
    assert periods.Calendar("monthly", "Europe/Berlin").parse("2026-10").start == utc(2026, 9, 30, 22, 0)


def test_berlin_october_ends_at_winter_time_midnight():
    # 1 November 00:00 CET (UTC+1) = 31 October 23:00 UTC.
    assert periods.Calendar("monthly", "Europe/Berlin").parse("2026-10").end == utc(2026, 10, 31, 23, 0)


def test_berlin_october_is_one_hour_longer_than_31_days():
    # From 30 Sep 22:00 UTC to 31 Oct 23:00 UTC: 31 days and 1 hour.
    october = periods.Calendar("monthly", "Europe/Berlin").parse("2026-10")
    assert october.end - october.start == timedelta(days=31, hours=1)


def test_last_hour_of_berlin_october_after_dst_belongs_to_october():
    # 31 October 22:30 UTC = 23:30 CET → October.
    assert periods.Calendar("monthly", "Europe/Berlin").containing(utc(2026, 10, 31, 22, 30)).id == "2026-10"


def test_berlin_midnight_after_dst_end_begins_november():
    # 31 October 23:00 UTC = 1 November 00:00 CET → November.
    assert periods.Calendar("monthly", "Europe/Berlin").containing(utc(2026, 10, 31, 23, 0)).id == "2026-11"


def test_berlin_day_of_dst_end_has_25_hours():
    # 25 October: from 24 Oct 22:00 UTC (00:00 CEST) to 25 Oct 23:00 UTC (00:00 CET).
    day = periods.Calendar("daily", "Europe/Berlin").parse("2026-10-25")
    assert (day.start, day.end) == (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0))


def test_berlin_day_of_dst_start_has_23_hours():
    # 29 March 2026: from 28 Mar 23:00 UTC (00:00 CET) to 29 Mar 22:00 UTC (00:00 CEST).
    day = periods.Calendar("daily", "Europe/Berlin").parse("2026-03-29")
    assert day.end - day.start == timedelta(hours=23)


# Weekly periods: ISO weeks, Monday to Monday.


def test_weekly_period_id_is_iso_year_and_week():
    # 15 October 2026 is a Thursday in ISO week 42 (week 1 holds Thursday 1 January 2026).
    assert periods.Calendar("weekly", "UTC").containing(utc(2026, 10, 15)).id == "2026-W42"


def test_weekly_period_runs_monday_to_monday():
    # Week 42 of 2026: Monday 12 October to Monday 19 October.
    week = periods.Calendar("weekly", "UTC").containing(utc(2026, 10, 15))
    assert (week.start, week.end) == (utc(2026, 10, 12), utc(2026, 10, 19))


def test_31_december_2026_is_in_week_53_of_2026():
    # 2026 starts on a Thursday, so it has 53 ISO weeks; 31 Dec 2026 is a Thursday of W53.
    assert periods.Calendar("weekly", "UTC").containing(utc(2026, 12, 31, 12)).id == "2026-W53"


def test_1_january_2027_is_still_in_week_53_of_2026():
    # Friday 1 January 2027 belongs to the ISO week that began on Monday 28 December 2026.
    assert periods.Calendar("weekly", "UTC").containing(utc(2027, 1, 1, 12)).id == "2026-W53"


def test_week_53_of_2026_spans_the_year_boundary():
    week = periods.Calendar("weekly", "UTC").parse("2026-W53")
    assert (week.start, week.end) == (utc(2026, 12, 28), utc(2027, 1, 4))


def test_week_after_2026_w53_is_2027_w01():
    week = periods.Calendar("weekly", "UTC").parse("2026-W53")
    assert periods.Calendar("weekly", "UTC").following(week).id == "2027-W01"


def test_week_id_uses_the_iso_year_of_a_week_starting_in_december():
    # 1 January 2025 is a Wednesday; its ISO week 2025-W01 began on Monday 30 December 2024.
    week = periods.Calendar("weekly", "UTC").containing(utc(2025, 1, 1, 12))
    assert (week.id, week.start) == ("2025-W01", utc(2024, 12, 30))


def test_weekly_period_starts_at_local_monday_midnight():
    # Monday 12 October 00:00 Moscow = Sunday 11 October 21:00 UTC.
    week = periods.Calendar("weekly", "Europe/Moscow").parse("2026-W42")
    assert week.start == utc(2026, 10, 11, 21, 0)


def test_sunday_evening_utc_is_next_week_in_moscow():
    # Sunday 18 October 21:30 UTC is Monday 19 October 00:30 in Moscow → W43.
    assert periods.Calendar("weekly", "Europe/Moscow").containing(utc(2026, 10, 18, 21, 30)).id == "2026-W43"


# Daily periods.


def test_daily_period_id_is_the_local_date():
    # 4 October 22:00 UTC is 5 October 01:00 in Moscow.
    assert periods.Calendar("daily", "Europe/Moscow").containing(utc(2026, 10, 4, 22)).id == "2026-10-05"


def test_daily_period_runs_between_local_midnights():
    # 5 October in Moscow: 4 Oct 21:00 UTC to 5 Oct 21:00 UTC.
    day = periods.Calendar("daily", "Europe/Moscow").parse("2026-10-05")
    assert (day.start, day.end) == (utc(2026, 10, 4, 21), utc(2026, 10, 5, 21))


# parse


def test_parse_gives_the_period_with_that_id():
    calendar = periods.Calendar("monthly", "Europe/Moscow")
    assert calendar.parse("2026-10") == calendar.containing(utc(2026, 10, 15))


@pytest.mark.parametrize(
    ("period_id", "kind"),
    [
        ("2026-13", "monthly"),  # no 13th month
        ("2026-00", "monthly"),  # no month 0
        ("2026-1", "monthly"),  # month needs two digits
        ("26-10", "monthly"),  # year needs four digits
        ("2026/10", "monthly"),
        ("2026-10-05", "monthly"),  # a daily id for a monthly calendar
        ("2026-W43", "monthly"),  # a weekly id for a monthly calendar
        ("2026-10", "weekly"),  # a monthly id for a weekly calendar
        ("2026-W54", "weekly"),  # no year has 54 ISO weeks
        ("2025-W53", "weekly"),  # 2025 starts on a Wednesday: 52 weeks only
        ("2026-W00", "weekly"),
        ("2026-w43", "weekly"),  # the W is upper case
        ("2026-02-30", "daily"),  # no 30 February
        ("2026-10-5", "daily"),
        ("", "daily"),
        (" 2026-10", "monthly"),
        ("abcd-ef", "monthly"),
    ],
)
def test_parse_rejects_malformed_id(period_id, kind):
    with pytest.raises(Invalid):
        periods.Calendar(kind, "UTC").parse(period_id)


@pytest.mark.parametrize(
    ("period_id", "kind", "timezone"),
    [
        ("9999-12", "monthly", "UTC"),  # ends on 10000-01-01
        ("9999-W52", "weekly", "UTC"),  # ends on 10000-01-03
        ("9999-12-31", "daily", "UTC"),
        ("0001-01", "monthly", "Etc/GMT-14"),  # starts at a midnight of +14:00, before year 1 in UTC
    ],
)
def test_parse_rejects_id_of_a_period_with_no_utc_bounds(period_id, kind, timezone):
    with pytest.raises(Invalid, match="begins or ends outside the years 1 to 9999"):
        periods.Calendar(kind, timezone).parse(period_id)


@pytest.mark.parametrize(
    "period_id",
    [
        "2026-10\n",  # a trailing newline
        "\uff12\uff10\uff12\uff16-10",  # full-width digits "２０２６"
        "\u0662\u0660\u0662\u0666-10",  # Arabic-Indic digits "٢٠٢٦"
    ],
)
def test_parse_rejects_id_not_written_in_ascii_digits_alone(period_id):
    # A period id is exactly "YYYY-MM" in ASCII: another spelling of 2026-10 is not its id.
    with pytest.raises(Invalid):
        periods.Calendar("monthly", "UTC").parse(period_id)


# attribute: a transaction in a closed period lands in the earliest open one, late.


def test_transaction_in_open_period_belongs_to_its_own_period():
    september = periods.Calendar("monthly", "Europe/Moscow").parse("2026-09")
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 10, 15), september)
    assert (period.id, late) == ("2026-10", False)


def test_transaction_with_no_closed_period_is_not_late():
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 10, 15), None)
    assert (period.id, late) == ("2026-10", False)


def test_transaction_in_last_closed_period_is_late_in_the_next():
    # October is closed: a transaction of 15 October goes to November, marked late.
    october = periods.Calendar("monthly", "Europe/Moscow").parse("2026-10")
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 10, 15), october)
    assert (period.id, late) == ("2026-11", True)


def test_transaction_in_an_earlier_closed_period_goes_after_the_last_closed():
    # October closed (so September too): a September transaction goes to November, late.
    october = periods.Calendar("monthly", "Europe/Moscow").parse("2026-10")
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 9, 10), october)
    assert (period.id, late) == ("2026-11", True)


def test_transaction_after_the_last_closed_period_keeps_its_own_period():
    # October closed; a December transaction is in December, not late (November is open too).
    october = periods.Calendar("monthly", "Europe/Moscow").parse("2026-10")
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 12, 3), october)
    assert (period.id, late) == ("2026-12", False)


def test_lateness_follows_local_boundary_not_utc_date():
    # October (Moscow) closed. 31 October 21:30 UTC is 1 November 00:30 in Moscow:
    # November, on time.
    october = periods.Calendar("monthly", "Europe/Moscow").parse("2026-10")
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 10, 31, 21, 30), october)
    assert (period.id, late) == ("2026-11", False)


def test_last_local_minute_of_closed_period_is_late():
    # 31 October 20:59 UTC is 23:59 in Moscow, still October (closed) → November, late.
    october = periods.Calendar("monthly", "Europe/Moscow").parse("2026-10")
    period, late = periods.Calendar("monthly", "Europe/Moscow").attribute(utc(2026, 10, 31, 20, 59), october)
    assert (period.id, late) == ("2026-11", True)


def test_late_weekly_transaction_moves_across_the_year_boundary():
    # 2026-W53 closed: a transaction of 30 December 2026 lands in 2027-W01, late.
    week_53 = periods.Calendar("weekly", "UTC").parse("2026-W53")
    period, late = periods.Calendar("weekly", "UTC").attribute(utc(2026, 12, 30), week_53)
    assert (period.id, late) == ("2027-W01", True)


# A period closed under zone rules the zone database has since changed keeps the bounds it
# closed with (docs/decisions.md, "Periods follow one another by their ids"). Etc/GMT-6 is
# +06:00 and Etc/GMT-5 +05:00 for all time: the rules at the close, then today's.


# 2026-W53 closed at +06:00: it ends Monday 4 January 2027 00:00 +06:00 = 3 January 18:00
# UTC. At +05:00 that instant is 3 January 23:00, still W53, which today's rules end at
# 19:00 UTC; 2027-W01 runs from then to 10 January 19:00 UTC, and a posting at 18:30 UTC
# (23:30 local, W53 closed) is late there, not in the closed week.
WEEK_CLOSED_AT_PLUS_6 = (
    "weekly", "Etc/GMT-6", "2026-W53", utc(2027, 1, 3, 18), "Etc/GMT-5",
    ("2027-W01", utc(2027, 1, 3, 19), utc(2027, 1, 10, 19)),
    [(utc(2027, 1, 3, 18, 30), True)],
)
# 1 January 2027 closed at +05:00 ends 1 January 19:00 UTC; at +06:00 2 January starts at
# 18:00 UTC. A posting at 18:30 UTC is 00:30 on 2 January: its own day, open, not late;
# one at 17:59 UTC is 23:59 on 1 January, closed: late.
DAY_CLOSED_AT_PLUS_5 = (
    "daily", "Etc/GMT-5", "2027-01-01", utc(2027, 1, 1, 19), "Etc/GMT-6",
    ("2027-01-02", utc(2027, 1, 1, 18), utc(2027, 1, 2, 18)),
    [(utc(2027, 1, 1, 18, 30), False), (utc(2027, 1, 1, 17, 59), True)],
)


@pytest.mark.parametrize(
    "kind, zone_then, closed_id, closed_end, zone_now, following_bounds, postings",
    [WEEK_CLOSED_AT_PLUS_6, DAY_CLOSED_AT_PLUS_5],
    ids=["a week at +6 followed across the year at +5", "a day at +5 followed at +6, an hour earlier"],
)
def test_a_period_closed_under_other_rules_is_followed_by_the_next_under_todays(
    kind, zone_then, closed_id, closed_end, zone_now, following_bounds, postings
):
    closed = periods.Calendar(kind, zone_then).parse(closed_id)
    assert closed.end == closed_end
    today = periods.Calendar(kind, zone_now)
    following = today.following(closed)
    assert (following.id, following.start, following.end) == following_bounds
    for instant, late in postings:
        period, was_late = today.attribute(instant, closed)
        assert (period.id, was_late) == (following.id, late)


# between


def test_between_lists_every_period_inclusive():
    first = periods.Calendar("monthly", "UTC").parse("2026-11")
    last = periods.Calendar("monthly", "UTC").parse("2027-02")
    ids = [period.id for period in periods.Calendar("monthly", "UTC").between(first, last)]
    assert ids == ["2026-11", "2026-12", "2027-01", "2027-02"]


def test_consecutive_periods_touch_without_gap():
    # Each period ends where the next begins, across the Berlin DST change.
    first = periods.Calendar("daily", "Europe/Berlin").parse("2026-10-24")
    last = periods.Calendar("daily", "Europe/Berlin").parse("2026-10-27")
    days = periods.Calendar("daily", "Europe/Berlin").between(first, last)
    assert all(a.end == b.start for a, b in zip(days, days[1:]))
    assert len(days) == 4


def test_the_earlier_of_two_periods_is_the_one_that_starts_first():
    # A close or a listing starts at the earlier of two periods (services.calendar.first_open
    # takes min() of them): 2026-09 starts on 1 September, before 2026-10 on 1 October.
    september = periods.Calendar("monthly", "UTC").parse("2026-09")
    october = periods.Calendar("monthly", "UTC").parse("2026-10")
    assert september < october
    assert min(october, september) == september


def test_a_listed_period_is_open_until_it_has_a_closing_time():
    # GET /periods (SPEC §7): a period with no closed_at is open; one closed at an instant is closed
    october = periods.Calendar("monthly", "UTC").parse("2026-10")
    listed = periods.ListedPeriod(october.start, october.end, october.id)
    closed = periods.ListedPeriod(october.start, october.end, october.id, utc(2026, 11, 4))
    assert (listed.closed, listed.status) == (False, "open")
    assert (closed.closed, closed.status) == (True, "closed")


# When a transaction may be dated (SPEC §5): up to 5 minutes ahead, max_backdate_days back.

NOW = utc(2026, 12, 1, 12, 0)


@pytest.mark.parametrize("occurred_at", [NOW + timedelta(minutes=5), NOW - timedelta(days=90), NOW])
def test_a_transaction_may_be_dated_5_minutes_ahead_or_90_days_back(occurred_at):
    periods.check_occurred_at(occurred_at, NOW, 90)


@pytest.mark.parametrize(("occurred_at", "reason"), [
    (NOW + timedelta(minutes=5, microseconds=1), "occurred_in_future"),
    (NOW - timedelta(days=90, microseconds=1), "too_old"),
])
def test_a_transaction_dated_further_is_refused_naming_occurred_at(occurred_at, reason):
    with pytest.raises(Invalid) as refused:
        periods.check_occurred_at(occurred_at, NOW, 90)
    assert (refused.value.reason, refused.value.field) == (reason, "occurred_at")


def test_a_transaction_dated_ahead_is_told_the_tolerance_and_the_services_clock():
    # "occurred_at is in the future" left a till whose clock ran 6 minutes ahead to wonder how
    with pytest.raises(Invalid) as refused:
        periods.check_occurred_at(NOW + timedelta(minutes=6), NOW + timedelta(microseconds=250), 90)
    assert refused.value.message == (
        "occurred_at is more than 5 minutes ahead of the service's clock (2026-12-01T12:00:00+00:00)")


@pytest.mark.parametrize(("max_backdate_days", "message"), [
    (1, "occurred_at is more than 1 day ago"),
    (90, "occurred_at is more than 90 days ago"),
])
def test_a_transaction_dated_too_far_back_is_told_the_limit_in_days(max_backdate_days, message):
    # "last day's sales only" is max_backdate_days 1 (docs/decisions.md): not "1 days"
    with pytest.raises(Invalid) as refused:
        periods.check_occurred_at(NOW - timedelta(days=91), NOW, max_backdate_days)
    assert refused.value.message == message
