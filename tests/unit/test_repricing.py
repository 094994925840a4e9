"""Which postings a rate added late can re-price, and how (coalition.domain.repricing)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coalition.domain.rates import Rate
from coalition.domain.repricing import Window, issued, redeemed, stretches, windows, within
from coalition.domain.settlement import IssuedPoints, RedeemedPoints

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return OCT + timedelta(days=n - 1)


def rate(id, kind, value, effective_from, *, added=None, last=0, partner_id=None, effective_to=None):
    return Rate(id=id, kind=kind, value=Decimal(value), effective_from=effective_from,
                effective_to=effective_to, partner_id=partner_id,
                created_at=added or effective_from, last_transaction_id=last)


def test_a_rate_in_force_before_anything_was_posted_has_no_window():
    assert windows([rate(1, "redemption", "0.01", day(1) - timedelta(days=200))], "redemption", NOV) == []


def test_a_rate_added_after_postings_and_dated_back_reaches_what_was_dated_until_it_was_added():
    """Added on day 20 at noon, dated day 10: postings up to id 41 dated from day 10 until
    day 20 12:05 (a posting may be dated five minutes ahead of when it was posted)."""
    added = day(20) + timedelta(hours=12)
    late = rate(2, "redemption", "0.02", day(10), added=added, last=41)
    assert windows([late], "redemption", NOV) == [Window(day(10), added + timedelta(minutes=5), 41)]


def test_a_window_ends_at_the_rates_end_or_the_periods_whichever_comes_first():
    added = NOV + timedelta(days=3)
    ending = rate(3, "fee", "0.002", day(10), added=added, last=7, effective_to=day(12))
    open_ended = rate(4, "fee", "0.003", day(15), added=added, last=7)
    assert windows([ending, open_ended], "fee", NOV) == [Window(day(10), day(12), 7), Window(day(15), NOV, 7)]


def test_a_rate_dated_ahead_of_when_it_was_added_and_other_kinds_have_no_window():
    ahead = rate(5, "redemption", "0.02", day(10) + timedelta(minutes=6), added=day(10), last=9)
    fee = rate(6, "fee", "0.002", day(1), added=day(10), last=9)
    assert windows([ahead, fee], "redemption", NOV) == []


def test_a_rate_dated_exactly_five_minutes_after_it_was_added_has_no_window():
    """Postings dated up to five minutes after it was added, and from its start: none."""
    edge = rate(5, "redemption", "0.02", day(10) + timedelta(minutes=5), added=day(10), last=9)
    assert windows([edge], "redemption", NOV) == []


def test_within_keeps_the_parts_of_windows_inside_the_period():
    straddling = [Window(OCT - timedelta(days=5), day(10), 41), Window(day(20), NOV + timedelta(days=3), 7, "aroma")]
    assert within(straddling, OCT, NOV) == [Window(OCT, day(10), 41), Window(day(20), NOV, 7, "aroma")]


def test_within_drops_windows_that_end_where_the_period_begins_or_begin_where_it_ends():
    outside = [Window(OCT - timedelta(days=5), OCT, 41), Window(NOV, NOV + timedelta(days=3), 7)]
    assert within(outside, OCT, NOV) == []


def test_stretches_begin_where_any_rate_of_the_kind_begins_or_ends_inside_the_windows():
    late = rate(2, "redemption", "0.02", day(10), added=day(20), last=41, partner_id="aroma")
    others = [rate(1, "redemption", "0.01", day(1) - timedelta(days=200)),
              rate(7, "redemption", "0.015", day(14), effective_to=day(16)),
              rate(8, "redemption", "0.03", day(25)),  # begins after the window
              rate(9, "fee", "0.001", day(12))]  # another kind
    found = windows([late], "redemption", NOV)
    assert stretches([late, *others], "redemption", found) == [day(10), day(14), day(16)]


def test_stretches_of_several_windows_begin_at_the_earliest_and_run_to_the_latest_end():
    ending = rate(3, "redemption", "0.02", day(10), effective_to=day(12))
    later = rate(4, "redemption", "0.03", day(15))
    found = [Window(day(10), day(12), 7), Window(day(15), NOV, 7)]
    # from day 10 (the earliest start) to November (the latest end): day 12 ends one rate, day 15 begins one
    assert stretches([ending, later], "redemption", found) == [day(10), day(12), day(15)]


def test_redeemed_points_move_from_the_rate_recorded_to_the_rate_in_force():
    """aroma's own 0.02 from day 10 beats the coalition-wide 0.01 that was recorded; at
    skyair the recorded 0.01 is still the one in force, so nothing moves."""
    candidates = [rate(1, "redemption", "0.01", day(1)),
                  rate(2, "redemption", "0.02", day(10), partner_id="aroma")]
    recorded = [("skyair", "aroma", Decimal("0.01"), 1, 30), ("aroma", "skyair", Decimal("0.01"), 1, 12)]
    assert redeemed(candidates, [day(1), day(10)], recorded) == [
        RedeemedPoints("skyair", "aroma", Decimal("0.01"), -30),
        RedeemedPoints("skyair", "aroma", Decimal("0.02"), 30),
    ]


def test_issued_points_bear_the_fee_in_force_and_the_operator_none():
    """No fee was recorded for skyair's 300 points; 0.002 is in force now. The operator's
    own bonuses never bear one."""
    candidates = [rate(3, "fee", "0.002", day(1), added=day(20), last=5)]
    recorded = [("skyair", None, 0, 300), ("coalition", None, 0, 40)]
    assert issued(candidates, [day(1)], recorded) == [IssuedPoints("skyair", Decimal("0.002"), 300)]


def test_redeemed_points_where_no_rate_is_in_force_now_stay_at_the_rate_recorded():
    """Only aroma has a redemption rate; skyair's burn recorded at 0.01 has none to move to."""
    candidates = [rate(2, "redemption", "0.02", day(1), partner_id="aroma")]
    assert redeemed(candidates, [day(1)], [("aroma", "skyair", Decimal("0.01"), 0, 30)]) == []


def test_issued_points_move_from_the_fee_recorded_to_the_fee_in_force():
    """skyair's 300 points were recorded at the coalition-wide 0.001; its own 0.002 from
    day 10, added on day 20, is in force now."""
    candidates = [rate(1, "fee", "0.001", day(1)),
                  rate(3, "fee", "0.002", day(10), added=day(20), last=5, partner_id="skyair")]
    recorded = [("skyair", Decimal("0.001"), 1, 300)]
    assert issued(candidates, [day(1), day(10)], recorded) == [
        IssuedPoints("skyair", Decimal("0.001"), -300),
        IssuedPoints("skyair", Decimal("0.002"), 300),
    ]


def test_issued_points_recorded_at_the_fee_still_in_force_do_not_move():
    candidates = [rate(1, "fee", "0.001", day(1)),
                  rate(3, "fee", "0.002", day(10), added=day(20), last=5, partner_id="skyair")]
    # fitgym has no fee of its own: the coalition-wide 0.001 it recorded is still in force
    assert issued(candidates, [day(1), day(10)], [("fitgym", Decimal("0.001"), 1, 300)]) == []
