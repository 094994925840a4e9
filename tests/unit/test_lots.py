"""The points ledger over lot values (SPEC §6): FIFO burns, holds, expiry, reversals."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from coalition.domain import lots
from coalition.domain.errors import InsufficientPoints, Invalid
from coalition.domain.lots import Allocation, BurnAllocation, Lot

NOW = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def lot(id, remaining, *, points=None, issuer="aroma", earned_days_ago=30, hold_days=0,
        expires_in_days=300):
    """A lot earned ``earned_days_ago`` before NOW, spendable after its hold, until it expires."""
    earned_at = NOW - earned_days_ago * DAY
    return Lot(
        id=id,
        issuer_id=issuer,
        points=remaining if points is None else points,
        remaining=remaining,
        earned_at=earned_at,
        available_at=earned_at + hold_days * DAY,
        expires_at=NOW + expires_in_days * DAY,
    )


# allocate: the lot expiring first, then the oldest, then the lowest id.


def test_burn_takes_lot_expiring_first():
    later = lot(1, 100, issuer="aroma", expires_in_days=200)
    sooner = lot(2, 100, issuer="skyair", expires_in_days=100)
    assert lots.allocate([later, sooner], 40, NOW) == [Allocation(2, "skyair", 40)]


def test_burn_takes_oldest_lot_among_same_expiry():
    # Same expiry; lot 1 earned 10 days ago, lot 2 earned 20 days ago → lot 2 is older.
    newer = lot(1, 100, earned_days_ago=10, expires_in_days=100)
    older = lot(2, 100, earned_days_ago=20, expires_in_days=100)
    assert lots.allocate([newer, older], 40, NOW) == [Allocation(2, "aroma", 40)]


def test_burn_takes_lowest_id_among_same_expiry_and_age():
    first = lot(3, 100, earned_days_ago=20, expires_in_days=100)
    second = lot(4, 100, earned_days_ago=20, expires_in_days=100)
    assert lots.allocate([second, first], 40, NOW) == [Allocation(3, "aroma", 40)]


def test_burn_goes_through_three_lots_in_fifo_order():
    # Expiries in 100, 200, 300 days (given out of order). Burn 250:
    # lot 7 (expires in 100) gives all 100, lot 5 (200) all 80,
    # lot 6 (300) the rest: 250 − 100 − 80 = 70.
    a = lot(5, 80, issuer="skyair", expires_in_days=200)
    b = lot(6, 500, issuer="gym-one", expires_in_days=300)
    c = lot(7, 100, issuer="aroma", expires_in_days=100)
    assert lots.allocate([a, b, c], 250, NOW) == [
        Allocation(7, "aroma", 100),
        Allocation(5, "skyair", 80),
        Allocation(6, "gym-one", 70),
    ]


def test_burn_does_not_touch_a_lot_it_does_not_need():
    # 100 from the first lot is enough; the second gets no zero-point allocation.
    first = lot(1, 100, expires_in_days=100)
    second = lot(2, 100, expires_in_days=200)
    assert lots.allocate([first, second], 100, NOW) == [Allocation(1, "aroma", 100)]


def test_burn_skips_an_empty_lot():
    empty = lot(1, 0, points=100, expires_in_days=50)
    full = lot(2, 100, expires_in_days=100)
    assert lots.allocate([empty, full], 30, NOW) == [Allocation(2, "aroma", 30)]


def test_burn_uses_remaining_not_original_points():
    # Lot 1 was created with 100 but holds 30: a burn of 50 takes 30 there, 20 from lot 2.
    half_spent = lot(1, 30, points=100, expires_in_days=100)
    other = lot(2, 100, expires_in_days=200)
    assert lots.allocate([half_spent, other], 50, NOW) == [
        Allocation(1, "aroma", 30),
        Allocation(2, "aroma", 20),
    ]


def test_burn_of_more_than_available_raises_insufficient_points():
    # 100 + 50 = 150 available, 151 wanted.
    with pytest.raises(InsufficientPoints) as caught:
        lots.allocate([lot(1, 100), lot(2, 50)], 151, NOW)
    assert caught.value.reason == "insufficient_points"


def test_burn_of_exactly_the_balance_succeeds():
    # 100 + 50 = 150 available, 150 wanted.
    allocations = lots.allocate([lot(1, 100, expires_in_days=10), lot(2, 50)], 150, NOW)
    assert allocations == [Allocation(1, "aroma", 100), Allocation(2, "aroma", 50)]


def test_insufficient_burn_decides_nothing():
    # All or nothing: the 150 available points are not spent towards a burn of 151,
    # and the lots given are left as they were.
    given = [lot(1, 100), lot(2, 50)]
    before = list(given)
    with pytest.raises(InsufficientPoints):
        lots.allocate(given, 151, NOW)
    assert given == before


# Holds: a lot is spendable from available_at (inclusive).


def test_pending_lot_is_not_burnable():
    # Earned 2 days ago with a 14-day hold: available in 12 days.
    pending = lot(1, 100, earned_days_ago=2, hold_days=14)
    with pytest.raises(InsufficientPoints):
        lots.allocate([pending], 10, NOW)


def test_a_burn_refused_for_points_on_hold_says_how_many_and_from_when():
    # 30 available; 100 + 20 on hold, the first from 2026-10-20 12:00 (earned 10-13, 7-day hold);
    # an empty lot, an expired one and one whose hold ends after it expires are no one's pending points
    given = [lot(1, 30), lot(2, 100, earned_days_ago=2, hold_days=14), lot(3, 20, earned_days_ago=2, hold_days=7),
             lot(4, 0, points=50, earned_days_ago=1, hold_days=5), lot(5, 9, hold_days=60, expires_in_days=0),
             lot(6, 7, earned_days_ago=1, hold_days=400, expires_in_days=364)]  # its hold outlives it
    with pytest.raises(InsufficientPoints) as caught:
        lots.allocate(given, 40, NOW)
    assert caught.value.message == (
        "burn of 40 points but only 30 are available; 120 more are pending,"
        " the first of them spendable from 2026-10-20T12:00:00+00:00")


def test_a_backdated_burn_is_told_only_of_the_points_on_hold_at_its_date():
    # A burn dated 2 days ago (10-13 12:00): lot 2, earned 10-12 with a 2-day hold, was on hold
    # then, spendable from 10-14 12:00; lot 3, earned 10-14, was not earned yet, though it is
    # on hold now and the balance counts it pending.
    given = [lot(2, 10, earned_days_ago=3, hold_days=2), lot(3, 25, earned_days_ago=1, hold_days=2)]
    with pytest.raises(InsufficientPoints) as caught:
        lots.allocate(given, 1, NOW - 2 * DAY)
    assert caught.value.message == (
        "burn of 1 point but only 0 are available; 10 more are pending,"
        " the first of them spendable from 2026-10-14T12:00:00+00:00")


def test_a_single_point_on_hold_is_named_as_pending():
    # 30 available; lot 2 holds 1 point, on hold until 2026-10-27 12:00 (earned 10-13, 14-day hold).
    given = [lot(1, 30), lot(2, 1, points=80, earned_days_ago=2, hold_days=14)]
    with pytest.raises(InsufficientPoints) as caught:
        lots.allocate(given, 40, NOW)
    assert caught.value.message == (
        "burn of 40 points but only 30 are available; 1 more is pending,"
        " spendable from 2026-10-27T12:00:00+00:00")


def test_a_refusal_of_one_point_with_one_available_reads_in_the_singular():
    # 1 available (lot 1) cannot cover a burn of 2; a burn of 1 from an empty ledger: 0 are
    with pytest.raises(InsufficientPoints) as two:
        lots.allocate([lot(1, 1)], 2, NOW)
    with pytest.raises(InsufficientPoints) as one:
        lots.allocate([], 1, NOW)
    assert (two.value.message, one.value.message) == (
        "burn of 2 points but only 1 is available", "burn of 1 point but only 0 are available")


def test_a_refusal_does_not_promise_points_whose_hold_ends_as_the_lot_expires():
    # Earned 10 days ago with a 40-day hold and expiring in 30 days: available_at = NOW + 30 days
    # = expires_at, so available_at ≤ t < expires_at never holds: the 60 points will never be
    # spendable, and the refusal names only the 30 of lot 1 (nor does the balance count
    # them as pending: test_balance_leaves_out_a_lot_whose_hold_outlasts_it_before_it_expires).
    given = [lot(1, 30), lot(2, 60, earned_days_ago=10, hold_days=40, expires_in_days=30)]
    with pytest.raises(InsufficientPoints) as caught:
        lots.allocate(given, 40, NOW)
    assert caught.value.message == "burn of 40 points but only 30 are available"


def test_a_burn_refused_with_nothing_on_hold_says_only_what_is_available():
    with pytest.raises(InsufficientPoints) as caught:
        lots.allocate([lot(1, 30)], 40, NOW)
    assert caught.value.message == "burn of 40 points but only 30 are available"


def test_burn_skips_pending_lot_for_an_available_one():
    # The pending lot expires first but is not yet spendable.
    pending = lot(1, 100, earned_days_ago=2, hold_days=14, expires_in_days=50)
    available = lot(2, 100, expires_in_days=200)
    assert lots.allocate([pending, available], 10, NOW) == [Allocation(2, "aroma", 10)]


def test_lot_becomes_burnable_when_its_hold_ends():
    pending = lot(1, 100, earned_days_ago=2, hold_days=14)
    hold_ends = pending.available_at
    assert lots.allocate([pending], 10, hold_ends) == [Allocation(1, "aroma", 10)]


def test_lot_is_not_burnable_one_second_before_its_hold_ends():
    pending = lot(1, 100, earned_days_ago=2, hold_days=14)
    with pytest.raises(InsufficientPoints):
        lots.allocate([pending], 10, pending.available_at - timedelta(seconds=1))


def test_balance_counts_pending_lot_as_pending():
    # 100 available, 40 on hold.
    available = lot(1, 100)
    pending = lot(2, 40, earned_days_ago=2, hold_days=14)
    balance = lots.balance([available, pending], NOW)
    assert (balance.available, balance.pending) == (100, 40)


def test_balance_counts_lot_as_available_once_its_hold_ends():
    pending = lot(2, 40, earned_days_ago=2, hold_days=14)
    balance = lots.balance([pending], pending.available_at)
    assert (balance.available, balance.pending) == (40, 0)


# Expiry: a lot at or past expires_at is dead even before the expiry job ran.


def test_expired_lot_is_not_burnable_though_it_still_has_remaining():
    # Expired yesterday; the expiry job has not run, so remaining is still 100.
    stale = lot(1, 100, expires_in_days=-1)
    with pytest.raises(InsufficientPoints):
        lots.allocate([stale], 10, NOW)


def test_burn_skips_expired_lot_for_a_live_one():
    stale = lot(1, 100, expires_in_days=-1)
    live = lot(2, 100, expires_in_days=100)
    assert lots.allocate([stale, live], 10, NOW) == [Allocation(2, "aroma", 10)]


def test_lot_is_not_burnable_at_its_expiry_instant():
    # expires_at is exclusive: available_at ≤ t < expires_at.
    ending = lot(1, 100, expires_in_days=10)
    with pytest.raises(InsufficientPoints):
        lots.allocate([ending], 10, ending.expires_at)


def test_lot_is_burnable_one_second_before_it_expires():
    ending = lot(1, 100, expires_in_days=10)
    at = ending.expires_at - timedelta(seconds=1)
    assert lots.allocate([ending], 10, at) == [Allocation(1, "aroma", 10)]


def test_balance_ignores_expired_lot_with_remaining():
    # 100 live + 70 expired yesterday (not yet removed by the job) → 100.
    live = lot(1, 100)
    stale = lot(2, 70, expires_in_days=-1)
    balance = lots.balance([live, stale], NOW)
    assert (balance.available, balance.pending) == (100, 0)


def test_balance_does_not_list_expired_lot_as_expiring():
    # Expired yesterday with 70 left (job not run): nothing is "expiring" any more.
    stale = lot(1, 70, expires_in_days=-1)
    assert lots.balance([stale], NOW).expiring == []


def test_balance_does_not_count_pending_lot_that_expired():
    # A 400-day hold outlasts the lot's life: it is never pending after it expired.
    never_spendable = lot(1, 50, earned_days_ago=30, hold_days=400, expires_in_days=-1)
    balance = lots.balance([never_spendable], NOW)
    assert (balance.available, balance.pending) == (0, 0)


def test_balance_leaves_out_a_lot_whose_hold_outlasts_it_before_it_expires():
    # Earned 5 days ago, held 14 days, expiring in 5: it could never be spent.
    outlasted = lot(1, 200, earned_days_ago=5, hold_days=14, expires_in_days=5)
    held = lot(2, 40, earned_days_ago=5, hold_days=7, expires_in_days=5)
    balance = lots.balance([outlasted, held], NOW)
    assert (balance.available, balance.pending) == (0, 40)
    assert balance.expiring == [lots.Expiring(40, NOW + 5 * DAY)]


def test_expired_lists_lot_past_expiry_with_remaining():
    stale = lot(2, 70, expires_in_days=-1)
    assert lots.expired([lot(1, 100), stale], NOW) == [stale]


def test_expired_lists_lot_at_its_expiry_instant():
    ending = lot(1, 70, expires_in_days=10)
    assert lots.expired([ending], ending.expires_at) == [ending]


def test_expired_lists_a_lot_with_a_single_point_left():
    # 1 point is still a point to remove: the lot is due for its expiry transaction.
    stale = lot(1, 1, points=70, expires_in_days=-1)
    assert lots.expired([stale], NOW) == [stale]


def test_expired_leaves_out_a_spent_lot():
    # Nothing left to remove: no expiry transaction for an empty lot.
    spent = lot(1, 0, points=70, expires_in_days=-1)
    assert lots.expired([spent], NOW) == []


def test_what_an_expired_lot_held_expires_with_it():
    stale = lot(1, 65, expires_in_days=-10)
    assert lots.expiries(stale, {}) == [(stale.expires_at, 65)]


def test_points_put_back_after_the_lot_expired_expire_when_they_came_back():
    # 65 were in the lot when it expired; reversals put back 20 (3 days ago) and 5 (1 day ago)
    stale = lot(1, 90, expires_in_days=-10)
    back = {NOW - 3 * DAY: 20, NOW - DAY: 5}
    assert lots.expiries(stale, back) == [
        (stale.expires_at, 65), (NOW - 3 * DAY, 20), (NOW - DAY, 5)]


def test_a_single_point_put_back_after_the_lot_expired_expires_when_it_came_back():
    # 65 were in the lot when it expired; a reversal put back 1 point yesterday: 65 + 1 = 66
    stale = lot(1, 66, expires_in_days=-10)
    assert lots.expiries(stale, {NOW - DAY: 1}) == [(stale.expires_at, 65), (NOW - DAY, 1)]


def test_once_the_lot_itself_has_expired_only_what_came_back_is_left_to_expire():
    emptied_then_refilled = lot(1, 20, expires_in_days=-10)
    assert lots.expiries(emptied_then_refilled, {NOW - DAY: 20}) == [(NOW - DAY, 20)]


def test_put_back_points_a_later_posted_burn_took_again_are_the_earliest_gone():
    # 25 were put back, but a burn dated before the expiry took 15 of the lot since; the
    # database reads what was put back grouped, in no order: here the latest first
    stale = lot(1, 10, expires_in_days=-10)
    assert lots.expiries(stale, {NOW - DAY: 5, NOW - 3 * DAY: 20}) == [
        (NOW - 3 * DAY, 5), (NOW - DAY, 5)]


def test_a_lot_expiring_with_a_single_point_left_expires_that_point():
    # remaining 1 at expiry: one expiry of 1 point at expires_at
    stale = lot(1, 1, points=100, expires_in_days=-10)
    assert lots.expiries(stale, {}) == [(stale.expires_at, 1)]


def test_put_back_points_a_later_posted_burn_took_entirely_expire_nowhere():
    # 20 + 5 = 25 put back, the lot holds 5: 25 − 5 = 20 are gone, the earliest first,
    # so the 20 put back 3 days ago are all gone (no expiry of 0 points for them) and
    # the 5 put back yesterday expire then; nothing is left to expire at expires_at (5 − 5 = 0).
    stale = lot(1, 5, expires_in_days=-10)
    assert lots.expiries(stale, {NOW - 3 * DAY: 20, NOW - DAY: 5}) == [(NOW - DAY, 5)]


# Balance: what expires in the next 90 days.


def test_balance_lists_points_expiring_within_90_days_by_date():
    # 30 days: 20 + 10 (two lots, same instant) = 30; 60 days: 40; 120 days: beyond the horizon.
    soon_a = lot(1, 20, expires_in_days=30)
    soon_b = lot(2, 10, expires_in_days=30)
    later = lot(3, 40, expires_in_days=60)
    far = lot(4, 500, expires_in_days=120)
    balance = lots.balance([far, later, soon_b, soon_a], NOW)
    assert balance.expiring == [(30, NOW + 30 * DAY), (40, NOW + 60 * DAY)]
    assert balance.available == 20 + 10 + 40 + 500


def test_balance_lists_points_expiring_exactly_90_days_ahead():
    edge = lot(1, 20, expires_in_days=90)
    assert lots.balance([edge], NOW).expiring == [(20, NOW + 90 * DAY)]


def test_balance_does_not_list_points_expiring_just_after_90_days():
    # 90 days and 1 second ahead is beyond the horizon: available, but not yet "expiring"
    beyond = lot(1, 20, expires_in_days=90)
    beyond = replace(beyond, expires_at=beyond.expires_at + timedelta(seconds=1))
    balance = lots.balance([beyond], NOW)
    assert (balance.available, balance.expiring) == (20, [])


def test_balance_does_not_list_a_spent_lot_as_expiring():
    # lot 1 expires in 30 days but holds nothing: only lot 2's 20 points are expiring (no "0 points")
    spent = lot(1, 0, points=70, expires_in_days=30)
    held = lot(2, 20, expires_in_days=60)
    assert lots.balance([spent, held], NOW).expiring == [(20, NOW + 60 * DAY)]


def test_balance_counts_and_lists_a_lot_with_a_single_point_left():
    # 1 point available, expiring in 30 days; 1 more on hold (earned 2 days ago, 14-day hold)
    last = lot(1, 1, points=70, expires_in_days=30)
    held = lot(2, 1, points=5, earned_days_ago=2, hold_days=14, expires_in_days=200)
    balance = lots.balance([last, held], NOW)
    assert (balance.available, balance.pending, balance.expiring) == (1, 1, [(1, NOW + 30 * DAY)])


def test_balance_of_no_lots_is_zero():
    balance = lots.balance([], NOW)
    assert (balance.available, balance.pending, balance.expiring) == (0, 0, [])


# reverse_earn: a return takes points back from the original lot only.


def test_earn_reversal_by_amount_takes_the_proportional_points():
    # 120 points for 350.00; return 100.00 → floor(120 × 100 / 350) = floor(34.28…) = 34
    original = lot(1, 120)
    decision = lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=0,
                                 reversed_amount=Decimal("0"), amount=Decimal("100.00"))
    assert (decision.points, decision.taken, decision.shortfall) == (34, 34, 0)


def test_earn_reversal_by_amount_uses_original_points_not_remaining():
    # 120 points for 350.00, 100 already burned (20 left). Return 175.00 →
    # floor(120 × 175 / 350) = 60 (not floor(20 × 175 / 350) = 10).
    original = lot(1, 20, points=120)
    decision = lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=0,
                                 reversed_amount=Decimal("0"), amount=Decimal("175.00"))
    assert decision.points == 60


def test_earn_reversal_after_partial_burn_records_shortfall():
    # 120 points for 350.00, 100 burned, 20 left. Return 100.00 → 34 points;
    # the lot gives its 20, the other 34 − 20 = 14 are a shortfall for the issuer.
    original = lot(1, 20, points=120)
    decision = lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=0,
                                 reversed_amount=Decimal("0"), amount=Decimal("100.00"))
    assert (decision.points, decision.taken, decision.shortfall) == (34, 20, 14)


def test_earn_reversal_of_fully_burned_lot_is_all_shortfall():
    # 120 points all burned; return by 30 points → taken 0, shortfall 30.
    spent = lot(1, 0, points=120)
    decision = lots.reverse_earn(spent, at=NOW, original_amount=Decimal("350.00"), reversed_points=0,
                                 reversed_amount=Decimal("0"), points=30)
    assert (decision.points, decision.taken, decision.shortfall) == (30, 0, 30)


def test_earn_reversal_by_points_takes_those_points():
    original = lot(1, 120)
    decision = lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=0,
                                 reversed_amount=Decimal("0"), points=45)
    assert (decision.points, decision.taken, decision.shortfall) == (45, 45, 0)


def test_earn_reversal_beyond_original_points_is_over_reversal():
    # 120 earned, 100 already reversed; 100 + 30 = 130 > 120.
    original = lot(1, 20, points=120)
    with pytest.raises(Invalid) as caught:
        lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=100,
                          reversed_amount=Decimal("0"), points=30)
    assert caught.value.reason == "over_reversal"


def test_earn_reversal_up_to_original_points_is_allowed():
    # 120 earned, 100 already reversed; 100 + 20 = 120 is the whole lot, not more.
    original = lot(1, 20, points=120)
    decision = lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=100,
                                 reversed_amount=Decimal("0"), points=20)
    assert decision.points == 20


def test_earn_reversal_beyond_original_amount_is_over_reversal():
    # Purchase 350.00, 300.00 already returned; 300.00 + 50.01 = 350.01 > 350.00.
    original = lot(1, 120)
    with pytest.raises(Invalid) as caught:
        lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=102,
                          reversed_amount=Decimal("300.00"), amount=Decimal("50.01"))
    assert caught.value.reason == "over_reversal"


def test_earn_reversal_up_to_original_amount_is_allowed():
    # Purchase 350.00 for 120 points, 300.00 (102 points) returned; the last 50.00
    # takes floor(120 × 50.00 / 350.00) = floor(17.142…) = 17 (SPEC §6, this return alone).
    original = lot(1, 18, points=120)
    decision = lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=102,
                                 reversed_amount=Decimal("300.00"), amount=Decimal("50.00"))
    assert (decision.points, decision.taken) == (17, 17)


def test_each_return_takes_the_specs_share_of_its_own_amount():
    # 33.33 EUR at 1.5 points per EUR earned floor(49.995) = 49 points. Each return of
    # 10.00 takes floor(49 × 10.00 / 33.33) = floor(14.70…) = 14, the second as the first;
    # counted on the running total the second would take floor(29.40…) − 14 = 15.
    taken, returned = 0, Decimal("0")
    for _ in range(2):
        decision = lots.reverse_earn(lot(1, 49 - taken, points=49), at=NOW, original_amount=Decimal("33.33"),
                                     reversed_points=taken, reversed_amount=returned, amount=Decimal("10.00"))
        assert decision.points == 14
        taken += decision.points
        returned += Decimal("10.00")


def test_a_purchase_returned_in_pieces_may_leave_the_member_a_point():
    # 49 points for 33.33 returned as 16.66 + 16.67: floor(49 × 16.66 / 33.33) = floor(24.49…)
    # = 24 and floor(49 × 16.67 / 33.33) = floor(24.50…) = 24, so 48 of the 49 come back:
    # the issuer posting the pieces bears the point, as it would by returning in one piece less.
    first = lots.reverse_earn(lot(1, 49), at=NOW, original_amount=Decimal("33.33"), reversed_points=0,
                              reversed_amount=Decimal("0"), amount=Decimal("16.66"))
    second = lots.reverse_earn(lot(1, 25, points=49), at=NOW, original_amount=Decimal("33.33"),
                               reversed_points=24, reversed_amount=Decimal("16.66"), amount=Decimal("16.67"))
    assert (first.points, second.points) == (24, 24)


@pytest.mark.parametrize(("reversed_amount", "this_return", "message"), [
    # by points: 100 already returned + 30 = 130 of the 120 earned
    (Decimal(0), {"points": 30}, "returns would total 130 points, more than the 120 earned: 20 points can still be returned"),
    # by amount: 300.00 already returned + 50.01 = 350.01 of a 350.00 purchase
    (Decimal("300.00"), {"amount": Decimal("50.01")},
     "returns would total 350.01, more than the purchase amount 350.00: 20 points can still be returned"),
], ids=["by points", "by amount"])
def test_an_over_reversal_says_what_the_returns_would_total(reversed_amount, this_return, message):
    with pytest.raises(Invalid) as caught:
        lots.reverse_earn(
            lot(1, 20, points=120),
            at=NOW,
            original_amount=Decimal("350.00"),
            reversed_points=100,
            reversed_amount=reversed_amount,
            **this_return,
        )
    assert caught.value.message == message


def test_an_over_return_by_amount_after_returns_by_points_says_what_is_left_in_points():
    # 120 points for 350.00; 119 returned by points, which returned no amount: 350.00 is
    # not what is left to return, 1 point is; returned to the last point, nothing is
    refusals = []
    for returned in (119, 120):
        with pytest.raises(Invalid) as caught:
            lots.reverse_earn(lot(1, 0, points=120), at=NOW, original_amount=Decimal("350.00"),
                              reversed_points=returned, reversed_amount=Decimal(0),
                              amount=Decimal("350.01"))
        refusals.append(caught.value.message)
    assert refusals == [
        "returns would total 350.01, more than the purchase amount 350.00: 1 point can still be returned",
        "returns would total 350.01, more than the purchase amount 350.00: nothing is left to return",
    ]


def test_earn_reversal_by_amount_past_points_cap_is_over_reversal():
    # 120 points for 350.00; 110 points already taken back by points, none by amount.
    # Returning 100.00 would take 34 more: 110 + 34 = 144 > 120.
    original = lot(1, 10, points=120)
    with pytest.raises(Invalid) as caught:
        lots.reverse_earn(original, at=NOW, original_amount=Decimal("350.00"), reversed_points=110,
                          reversed_amount=Decimal("0"), amount=Decimal("100.00"))
    assert caught.value.reason == "over_reversal"


def test_bonus_cannot_be_reversed_by_amount():
    # A bonus has no purchase amount to be proportional to.
    bonus = lot(1, 500, issuer="coalition")
    with pytest.raises(Invalid):
        lots.reverse_earn(bonus, at=NOW, original_amount=None, reversed_points=0,
                          reversed_amount=Decimal("0"), amount=Decimal("10.00"))


def test_bonus_can_be_reversed_by_points():
    bonus = lot(1, 500, issuer="coalition")
    decision = lots.reverse_earn(bonus, at=NOW, original_amount=None, reversed_points=0,
                                 reversed_amount=Decimal("0"), points=200)
    assert (decision.points, decision.taken) == (200, 200)


def test_earn_reversal_at_or_after_expiry_takes_nothing_from_the_lot():
    # 100 points still in the lot, but it expired at NOW + 1 day: a return dated
    # then or later finds breakage, not points; all 10 are a shortfall.
    ended = lot(1, 100, expires_in_days=1)
    for at in (ended.expires_at, ended.expires_at + DAY):
        decision = lots.reverse_earn(ended, at=at, original_amount=None, reversed_points=0,
                                     reversed_amount=Decimal("0"), points=10)
        assert (decision.points, decision.taken, decision.shortfall) == (10, 0, 10)


def test_earn_reversal_just_before_expiry_takes_from_the_lot():
    ended = lot(1, 100, expires_in_days=1)
    decision = lots.reverse_earn(ended, at=ended.expires_at - timedelta(microseconds=1),
                                 original_amount=None, reversed_points=0,
                                 reversed_amount=Decimal("0"), points=10)
    assert (decision.taken, decision.shortfall) == (10, 0)


# restore: a burn reversal puts points back, newest allocation first.


def burn_of_150():
    """A burn of 150: 100 from lot 10 (allocation 1), then 50 from lot 20 (allocation 2)."""
    return [
        BurnAllocation(id=1, lot_id=10, issuer_id="aroma", points=100, restored=0),
        BurnAllocation(id=2, lot_id=20, issuer_id="skyair", points=50, restored=0),
    ]


def as_lot_points(decisions):
    return [(allocation.lot_id, points) for allocation, points in decisions]


def test_partial_burn_reversal_restores_newest_allocation_first():
    # 70 back: allocation 2 (lot 20) gets all its 50, allocation 1 (lot 10) the other 20.
    assert as_lot_points(lots.restore(burn_of_150(), 70)) == [(20, 50), (10, 20)]


def test_small_burn_reversal_touches_only_newest_allocation():
    # 30 back ≤ 50 in allocation 2: lot 20 only.
    assert as_lot_points(lots.restore(burn_of_150(), 30)) == [(20, 30)]


def test_burn_reversal_of_one_point_more_than_the_newest_allocation_reaches_the_next():
    # 51 back: allocation 2 (lot 20) gives its 50, the 1 point left comes from allocation 1 (lot 10)
    assert as_lot_points(lots.restore(burn_of_150(), 51)) == [(20, 50), (10, 1)]


def test_burn_reversal_of_a_single_point_restores_it():
    assert as_lot_points(lots.restore(burn_of_150(), 1)) == [(20, 1)]


def test_full_burn_reversal_restores_every_allocation():
    # points=None: everything not yet reversed, 50 + 100 = 150.
    assert as_lot_points(lots.restore(burn_of_150(), None)) == [(20, 50), (10, 100)]


def test_full_burn_reversal_after_partial_restores_only_the_rest():
    # 70 already back (50 into allocation 2, 20 into allocation 1): the rest is 100 − 20 = 80.
    burn = [
        BurnAllocation(id=1, lot_id=10, issuer_id="aroma", points=100, restored=20),
        BurnAllocation(id=2, lot_id=20, issuer_id="skyair", points=50, restored=50),
    ]
    assert as_lot_points(lots.restore(burn, None)) == [(10, 80)]


def test_burn_reversal_order_follows_allocation_id_not_list_order():
    # The same burn given oldest-last still restores allocation 2 first.
    assert as_lot_points(lots.restore(list(reversed(burn_of_150())), 70)) == [(20, 50), (10, 20)]


@pytest.mark.parametrize("points", [1, None])
def test_burn_reversal_of_a_burn_reversed_in_full_says_none_is_left(points):
    # 150 burned and 150 put back already: 1 more point, or "all the rest", is nothing left.
    burn = [BurnAllocation(id=1, lot_id=10, issuer_id="aroma", points=150, restored=150)]
    with pytest.raises(Invalid) as caught:
        lots.restore(burn, points)
    assert caught.value.reason == "over_reversal"
    assert caught.value.message == (
        "the burn is reversed in full already: no points are left to put back"
    )


@pytest.mark.parametrize("points", [0, -5])
def test_burn_reversal_of_no_points_or_fewer_is_over_reversal(points):
    # 150 could still come back, but a reversal must put back at least 1 point
    with pytest.raises(Invalid) as caught:
        lots.restore(burn_of_150(), points)
    assert caught.value.reason == "over_reversal"


def test_burn_reversal_of_more_than_burned_is_over_reversal():
    # 150 burned; 151 cannot come back.
    with pytest.raises(Invalid) as caught:
        lots.restore(burn_of_150(), 151)
    assert caught.value.reason == "over_reversal"


def test_burn_reversal_of_more_than_not_yet_reversed_is_over_reversal():
    # 150 burned, 120 already back: 31 > 30 left.
    burn = [replace(a, restored=a.points) for a in burn_of_150()]
    burn[0] = replace(burn[0], restored=70)
    with pytest.raises(Invalid) as caught:
        lots.restore(burn, 31)
    assert caught.value.reason == "over_reversal"


def test_full_burn_reversal_of_fully_reversed_burn_is_over_reversal():
    burn = [replace(a, restored=a.points) for a in burn_of_150()]
    with pytest.raises(Invalid) as caught:
        lots.restore(burn, None)
    assert caught.value.reason == "over_reversal"


def test_burn_takes_the_lot_expiring_first_even_when_it_was_earned_later():
    # points_ttl_days cut between two earns: lot 1, earned 60 days ago, expires in 305 days;
    # lot 2, earned 10 days ago, in 20. Expiry comes before age: lot 2 gives the 40.
    older = lot(1, 100, earned_days_ago=60, expires_in_days=305)
    newer_expiring_sooner = lot(2, 100, earned_days_ago=10, expires_in_days=20, issuer="skyair")
    assert lots.allocate([older, newer_expiring_sooner], 40, NOW) == [Allocation(2, "skyair", 40)]


def test_a_burn_dated_at_the_instant_of_an_earn_on_hold_names_its_points_pending():
    # earned 2 days before NOW with a 3-day hold; the burn is dated at that very instant
    on_hold = lot(2, 10, earned_days_ago=2, hold_days=3)
    with pytest.raises(InsufficientPoints) as refused:
        lots.allocate([on_hold], 1, NOW - 2 * DAY)
    assert refused.value.message == (
        "burn of 1 point but only 0 are available; 10 more are pending,"
        " the first of them spendable from 2026-10-16T12:00:00+00:00")
