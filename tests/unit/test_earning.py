"""Points for a purchase (SPEC §6 earn): floor(amount × earn × promo) + threshold."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from coalition.domain import earning
from coalition.domain.errors import Invalid, NoRate
from coalition.domain.rates import Rate

SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
OCT_3 = datetime(2026, 10, 3, 7, 15, tzinfo=UTC)  # 10:15 in Moscow


def earn(id, value, category=None, partner_id="aroma"):
    return Rate(id=id, kind="earn", value=Decimal(value), effective_from=SEP,
                partner_id=partner_id, category=category)


def promo(id, value, category=None, effective_from=OCT_1, effective_to=NOV_1):
    return Rate(id=id, kind="promo", value=Decimal(value), effective_from=effective_from,
                effective_to=effective_to, partner_id="aroma", category=category)


def threshold(id, min_amount, points):
    return Rate(id=id, kind="threshold", value=Decimal(points), effective_from=SEP,
                partner_id="aroma", min_amount=Decimal(min_amount))


def test_earn_rate_alone():
    # 350.00 RUB × 0.1 pt/RUB = 35
    result = earning.points_for_purchase([earn(1, "0.1")], "aroma", None, Decimal("350.00"), OCT_3)
    assert result.points == 35


def test_promo_multiplies_and_threshold_adds():
    # 350.00 RUB × 0.1 pt/RUB × promo 2 = 70, + threshold 50 (350 ≥ 300) = 120
    all_rates = [earn(1, "0.1"), promo(2, "2"), threshold(3, "300.00", "50")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("350.00"), OCT_3)
    assert result.points == 120


def test_threshold_is_not_multiplied_by_the_promo():
    # 100.00 × 0.1 × promo 3 = 30, + threshold 50 = 80 (not (10 + 50) × 3 = 180)
    all_rates = [earn(1, "0.1"), promo(2, "3"), threshold(3, "100.00", "50")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("100.00"), OCT_3)
    assert result.points == 80


def test_fractional_product_is_floored():
    # 333.33 × 0.1 = 33.333 → 33
    result = earning.points_for_purchase([earn(1, "0.1")], "aroma", None, Decimal("333.33"), OCT_3)
    assert result.points == 33


def test_product_is_floored_once_not_before_the_promo():
    # 99.99 × 0.1 × promo 3 = 29.997 → 29.
    # Flooring 9.999 first would give 9 × 3 = 27; rounding it to 10.00 would give 30.
    all_rates = [earn(1, "0.1"), promo(2, "3")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("99.99"), OCT_3)
    assert result.points == 29


def test_fractional_promo_multiplier():
    # 250.00 × 0.1 × promo 1.5 = 37.5 → 37
    all_rates = [earn(1, "0.1"), promo(2, "1.5")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("250.00"), OCT_3)
    assert result.points == 37


def test_threshold_below_amount_not_reached_adds_nothing():
    # 299.99 < 300.00: 299.99 × 0.1 = 29.999 → 29, no threshold
    all_rates = [earn(1, "0.1"), threshold(3, "300.00", "50")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("299.99"), OCT_3)
    assert result.points == 29


def test_only_the_highest_threshold_reached_is_added():
    # 1200.00 × 0.1 = 120, + 50 for the 1000 threshold (not + 20 for 500 as well) = 170
    all_rates = [earn(1, "0.1"), threshold(3, "500.00", "20"), threshold(4, "1000.00", "50")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("1200.00"), OCT_3)
    assert result.points == 170


def test_a_threshold_of_zero_withdraws_the_one_at_its_min_amount():
    # 50 points from 300.00 entered by mistake, then 0 at 300.00 from the same instant (a later
    # id wins): 350.00 × 0.1 = 35, + 0 (not + 50); the 0 version is named as the one reached
    all_rates = [earn(1, "0.1"), threshold(3, "300.00", "50"), threshold(4, "300.00", "0")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("350.00"), OCT_3)
    assert (result.points, result.rate_ids) == (35, (1, 4))


def test_a_threshold_of_zero_gives_no_bonus_from_its_min_amount_up():
    # the highest min_amount reached wins, a 0 too: 1200.00 × 0.1 = 120, + 0 for the 1000
    # threshold, not + 20 for the 500 one it outranks; 800.00 × 0.1 = 80, + 20
    all_rates = [earn(1, "0.1"), threshold(3, "500.00", "20"), threshold(4, "1000.00", "0")]
    large = earning.points_for_purchase(all_rates, "aroma", None, Decimal("1200.00"), OCT_3)
    small = earning.points_for_purchase(all_rates, "aroma", None, Decimal("800.00"), OCT_3)
    assert (large.points, small.points) == (120, 100)


def test_promo_outside_its_window_does_not_apply():
    # Promo runs in October only; on 15 November: 350.00 × 0.1 = 35, no × 2
    on_nov_15 = datetime(2026, 11, 15, tzinfo=UTC)
    all_rates = [earn(1, "0.1"), promo(2, "2")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("350.00"), on_nov_15)
    assert result.points == 35


def test_category_earn_rate_applies_to_its_category():
    # coffee earns 0.2 pt/RUB: 350.00 × 0.2 = 70
    all_rates = [earn(1, "0.1"), earn(2, "0.2", category="coffee")]
    result = earning.points_for_purchase(all_rates, "aroma", "coffee", Decimal("350.00"), OCT_3)
    assert result.points == 70


def test_category_promo_does_not_apply_to_another_category():
    # The ×2 promo is for coffee; cake: 350.00 × 0.1 = 35
    all_rates = [earn(1, "0.1"), promo(2, "2", category="coffee")]
    result = earning.points_for_purchase(all_rates, "aroma", "cake", Decimal("350.00"), OCT_3)
    assert result.points == 35


def test_rate_ids_name_earn_promo_and_threshold_used():
    all_rates = [earn(11, "0.1"), promo(12, "2"), threshold(13, "300.00", "50")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("350.00"), OCT_3)
    assert result.rate_ids == (11, 12, 13)


def test_rate_ids_leave_out_rates_not_used():
    # No promo in force, threshold not reached: only the earn rate decided.
    all_rates = [earn(11, "0.1"), threshold(13, "1000.00", "50")]
    result = earning.points_for_purchase(all_rates, "aroma", None, Decimal("350.00"), OCT_3)
    assert result.rate_ids == (11,)


def test_purchase_earning_zero_points_is_invalid():
    # 9.99 × 0.1 = 0.999 → 0 points
    with pytest.raises(Invalid) as caught:
        earning.points_for_purchase([earn(1, "0.1")], "aroma", None, Decimal("9.99"), OCT_3)
    assert caught.value.reason == "zero_points"


def test_missing_earn_rate_is_no_rate():
    with pytest.raises(NoRate) as caught:
        earning.points_for_purchase([], "aroma", None, Decimal("350.00"), OCT_3)
    assert caught.value.reason == "no_rate"


def test_another_partners_earn_rate_is_no_rate():
    with pytest.raises(NoRate):
        earning.points_for_purchase(
            [earn(1, "0.1", partner_id="skyair")], "aroma", None, Decimal("350.00"), OCT_3
        )


def test_promo_and_threshold_without_earn_rate_is_no_rate():
    # A promo multiplies earned points and a threshold tops them up; neither earns alone.
    all_rates = [promo(2, "2"), threshold(3, "100.00", "50")]
    with pytest.raises(NoRate):
        earning.points_for_purchase(all_rates, "aroma", None, Decimal("350.00"), OCT_3)


def test_purchase_earning_more_than_a_trillion_points_is_invalid():
    # 10^12 + 1 RUB × 1 pt/RUB = 10^12 + 1 points, one over the cap of 10^12
    with pytest.raises(Invalid):
        earning.points_for_purchase(
            [earn(1, "1")], "aroma", None, Decimal(10**12 + 1), OCT_3
        )


def test_purchase_earning_exactly_a_trillion_points_is_allowed():
    # 10^12 RUB × 1 pt/RUB = 10^12 points: the cap itself is still within it
    result = earning.points_for_purchase([earn(1, "1")], "aroma", None, Decimal(10**12), OCT_3)
    assert result.points == 10**12


def test_purchase_earning_a_single_point_is_valid():
    # 10.00 × 0.1 = 1.000 → 1 point, the least a purchase may earn
    result = earning.points_for_purchase([earn(1, "0.1")], "aroma", None, Decimal("10.00"), OCT_3)
    assert result.points == 1


def test_a_promo_for_a_category_multiplies_a_purchase_in_it_written_in_any_case():
    # 350.00 RUB × 0.1 = 35, doubled for coffee: 70; a cake is not coffee: 35
    all_rates = [earn(1, "0.1"), promo(2, "2", category="coffee")]
    coffee = earning.points_for_purchase(all_rates, "aroma", "Coffee", Decimal("350.00"), OCT_3)
    cake = earning.points_for_purchase(all_rates, "aroma", "cake", Decimal("350.00"), OCT_3)
    assert (coffee.points, coffee.rate_ids) == (70, (1, 2))
    assert (cake.points, cake.rate_ids) == (35, (1,))

