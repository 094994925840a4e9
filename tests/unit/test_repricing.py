"""Which postings a rate added late can re-price, and how (coalition.domain.repricing)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coalition.domain import rates
from coalition.domain.rates import Rate
from coalition.domain.periods import Period
from coalition.domain.repricing import Reach, issued, reach, redeemed
from coalition.domain.settlement import IssuedPoints, RedeemedPoints

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
OCTOBER = Period(OCT, NOV, "2026-10")
NOVEMBER = Period(NOV, NOV + timedelta(days=30), "2026-11")


def day(n: int) -> datetime:
    return OCT + timedelta(days=n - 1)


def rate(id, kind, value, effective_from, *, added=None, last=0, partner_id=None, effective_to=None):
    return Rate(id=id, kind=kind, value=Decimal(value), effective_from=effective_from,
                effective_to=effective_to, partner_id=partner_id,
                created_at=added or effective_from, last_transaction_id=last)


def redemption_rate(candidates):
    return lambda redeemer, at: rates.redemption_rate(candidates, redeemer, at)


def fee_rate(candidates):
    return lambda issuer, at: rates.fee_rate(candidates, issuer, at)


def test_a_rate_in_force_before_anything_was_posted_reaches_nothing():
    assert reach([rate(1, "redemption", "0.01", day(1) - timedelta(days=200))], "redemption", OCTOBER) is None


def test_a_rate_added_after_postings_and_dated_back_reaches_the_last_posted_before_it():
    """Added on day 20 at noon when the ledger's last transaction was 41, dated day 10:
    October's postings from day 10, up to 41."""
    late = rate(2, "redemption", "0.02", day(10), added=day(20) + timedelta(hours=12), last=41)
    assert reach([late], "redemption", OCTOBER) == Reach(day(10), 41)


def test_the_reach_of_several_rates_is_the_furthest():
    earlier = rate(2, "fee", "0.002", day(10), added=day(12), last=41)
    later = rate(3, "fee", "0.003", day(15), added=day(20), last=97, partner_id="aroma")
    assert reach([later, earlier], "fee", OCTOBER) == Reach(day(10), 97)


def test_a_period_s_own_postings_are_reached_from_the_first_instant_of_it_a_window_holds():
    """Dated back to October 31st 23:00, to 23:30, added November 2nd at 41: of October's
    postings, those up to 41 dated from 23:00 on the 31st, not the month's. A rate added
    late in September (dated back to September 10th, added on the 20th) re-prices
    September's postings only: it keeps the reach up to its 9 (a reversal in October may
    be of one of them), and does not widen October's dates."""
    last_half_hour = rate(2, "fee", "0.004", day(31) + timedelta(hours=23), added=NOV + timedelta(days=1),
                          last=41, partner_id="aroma", effective_to=day(31) + timedelta(hours=23, minutes=30))
    september = rate(3, "fee", "0.002", OCT - timedelta(days=21), added=OCT - timedelta(days=11), last=9)
    assert reach([september, last_half_hour], "fee", OCTOBER) == Reach(
        day(31) + timedelta(hours=23), 41, frozenset({"aroma"}))
    assert reach([september], "fee", OCTOBER) == Reach(NOV, 9, frozenset())  # none of October's own


def test_a_period_s_own_postings_are_reached_of_the_partners_whose_rates_windows_are_in_it():
    """aroma's and skyair's rates dated back into October reach their own postings there;
    a coalition-wide one reaches every partner's."""
    aroma = rate(2, "redemption", "0.02", day(10), added=day(20), last=41, partner_id="aroma")
    skyair = rate(3, "redemption", "0.03", day(12), added=day(20), last=41, partner_id="skyair")
    everyone = rate(4, "redemption", "0.015", day(25), added=day(26), last=60)
    assert reach([aroma, skyair], "redemption", OCTOBER) == Reach(day(10), 41, frozenset({"aroma", "skyair"}))
    assert reach([aroma, skyair, everyone], "redemption", OCTOBER) == Reach(day(10), 60, None)


def test_a_rate_dated_ahead_of_when_it_was_added_and_other_kinds_reach_nothing():
    """Postings are dated at most five minutes after they were posted: none posted before
    the redemption rate is dated six minutes after it was added."""
    ahead = rate(5, "redemption", "0.02", day(10) + timedelta(minutes=6), added=day(10), last=9)
    fee = rate(6, "fee", "0.002", day(1), added=day(10), last=9)
    assert reach([ahead, fee], "redemption", OCTOBER) is None


def test_a_rate_dated_exactly_five_minutes_after_it_was_added_reaches_nothing():
    edge = rate(5, "redemption", "0.02", day(10) + timedelta(minutes=5), added=day(10), last=9)
    assert reach([edge], "redemption", OCTOBER) is None
    just_inside = rate(6, "redemption", "0.02", day(10) + timedelta(minutes=4, seconds=59), added=day(10), last=9)
    assert reach([just_inside], "redemption", OCTOBER) == Reach(just_inside.effective_from, 9)


def test_a_rate_that_begins_where_the_period_ends_reaches_nothing_in_it():
    """Added in November when the last transaction was 7 and dated back to November 1st:
    nothing of October's is in its window."""
    november = rate(3, "fee", "0.002", NOV, added=NOV + timedelta(days=3), last=7)
    assert reach([november], "fee", OCTOBER) is None
    assert reach([november], "fee", NOVEMBER) == Reach(NOV, 7)


def test_redeemed_points_move_from_the_rate_recorded_to_the_rate_in_force():
    """aroma's own 0.02 from day 10 beats the coalition-wide 0.01 that was recorded; at
    skyair the recorded 0.01 is still the one in force, so nothing moves."""
    candidates = [rate(1, "redemption", "0.01", day(1)),
                  rate(2, "redemption", "0.02", day(10), partner_id="aroma")]
    recorded = [("skyair", "aroma", Decimal("0.01"), day(10), 30), ("aroma", "skyair", Decimal("0.01"), day(10), 12)]
    assert redeemed(redemption_rate(candidates), recorded) == [
        RedeemedPoints("skyair", "aroma", Decimal("0.01"), -30),
        RedeemedPoints("skyair", "aroma", Decimal("0.02"), 30),
    ]


def test_issued_points_bear_the_fee_in_force_and_the_operator_none():
    """No fee was recorded for skyair's 300 points; 0.002 is in force now. The operator's
    own bonuses never bear one."""
    candidates = [rate(3, "fee", "0.002", day(1), added=day(20), last=5)]
    recorded = [("skyair", None, day(1), 300), ("coalition", None, day(1), 40)]
    assert issued(fee_rate(candidates), recorded) == [IssuedPoints("skyair", Decimal("0.002"), 300)]


def test_redeemed_points_where_no_rate_is_in_force_now_stay_at_the_rate_recorded():
    """Only aroma has a redemption rate; skyair's burn recorded at 0.01 has none to move to."""
    candidates = [rate(2, "redemption", "0.02", day(1), partner_id="aroma")]
    assert redeemed(redemption_rate(candidates), [("aroma", "skyair", Decimal("0.01"), day(1), 30)]) == []


def test_issued_points_move_from_the_fee_recorded_to_the_fee_in_force():
    """skyair's 300 points were recorded at the coalition-wide 0.001; its own 0.002 from
    day 10, added on day 20, is in force now."""
    candidates = [rate(1, "fee", "0.001", day(1)),
                  rate(3, "fee", "0.002", day(10), added=day(20), last=5, partner_id="skyair")]
    recorded = [("skyair", Decimal("0.001"), day(10), 300)]
    assert issued(fee_rate(candidates), recorded) == [
        IssuedPoints("skyair", Decimal("0.001"), -300),
        IssuedPoints("skyair", Decimal("0.002"), 300),
    ]


def test_issued_points_recorded_at_the_fee_still_in_force_do_not_move():
    candidates = [rate(1, "fee", "0.001", day(1)),
                  rate(3, "fee", "0.002", day(10), added=day(20), last=5, partner_id="skyair")]
    # fitgym has no fee of its own: the coalition-wide 0.001 it recorded is still in force
    assert issued(fee_rate(candidates), [("fitgym", Decimal("0.001"), day(10), 300)]) == []
