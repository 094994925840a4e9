"""Programme KPI formulas (coalition.domain.kpis), every figure worked out by hand."""

from decimal import Decimal

from coalition.domain import kpis, money, settlement

# --- ratios -------------------------------------------------------------------------------


def test_ratio_has_four_places():
    # 1 ÷ 3 = 0.33333… → 0.3333
    assert money.ratio(1, 3) == Decimal("0.3333")


def test_ratio_rounds_half_to_even():
    # 1 ÷ 20000 = 0.00005 → the tie goes to the even 0.0000; 3 ÷ 20000 = 0.00015 → 0.0002
    assert money.ratio(1, 20000) == Decimal("0.0000")
    assert money.ratio(3, 20000) == Decimal("0.0002")


def test_ratio_of_nothing_is_none():
    assert money.ratio(5, 0) is None


def test_purchase_frequency_is_purchases_per_purchaser_to_two_places():
    # 7 purchases by 3 members: 2.333… → 2.33
    assert kpis.purchase_frequency(7, 3) == Decimal("2.33")


def test_purchase_frequency_without_purchasers_is_none():
    assert kpis.purchase_frequency(0, 0) is None


def test_earn_and_burn_shares_split_the_visits():
    # 3 earns and 1 burn: 3 ÷ 4 = 0.75 and 1 ÷ 4 = 0.25
    assert kpis.earn_share(3, 1) == Decimal("0.7500")
    assert kpis.burn_share(3, 1) == Decimal("0.2500")


def test_shares_without_visits_are_none():
    assert kpis.earn_share(0, 0) is None
    assert kpis.burn_share(0, 0) is None


def test_redemption_rate_counts_issued_points_net_of_returns():
    # 1000 issued, 100 recovered by returns: 300 ÷ 900 = 0.3333…
    assert kpis.redemption_rate(300, 1000, 100) == Decimal("0.3333")


def test_breakage_rate_is_expired_over_issued_net_of_returns():
    # 45 ÷ (1000 − 100) = 0.05
    assert kpis.breakage_rate(45, 1000, 100) == Decimal("0.0500")


def test_rates_when_returns_exceed_what_the_period_issued_are_none():
    # 5 issued, 20 recovered by returns of earlier points: −15 stayed issued, no share of it
    assert kpis.redemption_rate(70, 5, 20) is None
    assert kpis.breakage_rate(0, 5, 20) is None


def test_a_ratio_that_rounds_to_zero_from_below_is_a_plain_zero():
    # −1 ÷ 100000 = −0.00001 → 0.0000, not "-0.0000"
    assert str(money.ratio(-1, 100000)) == "0.0000"
    assert str(kpis.redemption_rate(-1, 100000, 0)) == "0.0000"


def test_rates_of_points_all_returned_are_none():
    assert kpis.redemption_rate(0, 100, 100) is None
    assert kpis.breakage_rate(0, 100, 100) is None


# --- money --------------------------------------------------------------------------------


def test_average_purchase_rounds_once_at_the_minor_unit():
    # (100.00 + 50.00 + 0.01) ÷ 3 = 50.00333… RUB → 50.00
    assert kpis.average(Decimal("150.01"), 3, "RUB") == Decimal("50.00")


def test_average_purchase_in_yen_has_no_decimals_and_ties_go_even():
    # 1001 ÷ 2 = 500.5 JPY → 500 (the even neighbour)
    assert kpis.average(Decimal(1001), 2, "JPY") == Decimal(500)


def test_average_purchase_in_dinar_has_three_decimals():
    # 2.001 ÷ 2 = 1.0005 KWD → 1.000 (half to even)
    assert kpis.average(Decimal("2.001"), 2, "KWD") == Decimal("1.000")


def test_average_of_no_purchase_is_none():
    assert kpis.average(Decimal(0), 0, "EUR") is None


def test_liability_value_is_points_times_redemption_rate_rounded_once():
    # 12345 points × 0.01 EUR = 123.45 EUR
    assert settlement.liability_value(12345, Decimal("0.01"), "EUR") == Decimal("123.45")


def test_liability_value_rounds_half_to_even():
    # 1 × 0.005 = 0.005 → 0.00; 3 × 0.005 = 0.015 → 0.02
    assert settlement.liability_value(1, Decimal("0.005"), "EUR") == Decimal("0.00")
    assert settlement.liability_value(3, Decimal("0.005"), "EUR") == Decimal("0.02")


def test_liability_without_a_redemption_rate_is_none():
    assert settlement.liability_value(100, None, "EUR") is None


def test_no_outstanding_points_are_worth_nothing_without_a_rate_too():
    # 0 points × any rate = 0, written at the base currency's minor unit
    assert settlement.liability_value(0, None, "EUR") == Decimal("0.00")
    assert str(settlement.liability_value(0, None, "JPY")) == "0"


def test_purchases_convert_into_the_base_currency_unrounded():
    # 1000.00 RUB and 500.00 RUB at 0.011 EUR per RUB: 11.000 and 5.500 EUR, not yet rounded
    rub = kpis.Purchases(count=2, amount=Decimal("1000.00"), count_with_points=1, amount_with_points=Decimal("500.00"))
    eur = rub.converted(Decimal("0.011"))
    assert (eur.count, eur.amount, eur.count_with_points, eur.amount_with_points) == (
        2, Decimal("11.00000"), 1, Decimal("5.50000"))


def test_purchases_add_up():
    total = kpis.Purchases(1, Decimal("10.00"), 2, Decimal("3.00")) + kpis.Purchases(3, Decimal("0.50"), 0, Decimal(0))
    assert (total.total_count, total.total_amount) == (6, Decimal("13.50"))


def test_purchases_add_up_field_by_field():
    total = kpis.Purchases(1, Decimal("10.00"), 2, Decimal("3.00")) + kpis.Purchases(3, Decimal("0.50"), 4, Decimal("1.25"))
    # 1 + 3 = 4 without points for 10.00 + 0.50; 2 + 4 = 6 with points for 3.00 + 1.25
    assert (total.count, total.amount, total.count_with_points, total.amount_with_points) == (
        4, Decimal("10.50"), 6, Decimal("4.25"))


def test_rates_of_a_single_point_that_stayed_issued_are_shares_of_it():
    # 2 issued − 1 returned = 1 point: 1 ÷ 1 redeemed, 0 ÷ 1 expired
    assert kpis.redemption_rate(1, 2, 1) == Decimal("1.0000")
    assert kpis.breakage_rate(0, 2, 1) == Decimal("0.0000")


# --- one scope's figures --------------------------------------------------------------------


def _shop() -> kpis.Activity:
    """4 members active; 5 purchases by 3 purchasers: 2 by members who burned (300.00 + 500.00 RUB),
    3 by members who did not (100.00 + 200.00 + 301.00 RUB); 2 burns; 1000 points issued, 100 returned,
    270 redeemed, 90 expired; 640 outstanding."""
    return kpis.Activity(
        active_members=4,
        new_members=1,
        purchasers=3,
        redemptions=2,
        purchases=kpis.Purchases(3, Decimal("601.00"), 2, Decimal("800.00")),
        points_issued=1000,
        points_reversed=100,
        points_redeemed=270,
        points_redeemed_here=150,
        points_expired=90,
        liability_points=640,
    )


def test_figures_of_a_partner():
    figures = kpis.figures(_shop(), "RUB", Decimal("0.01"), "EUR")
    assert figures == {
        "currency": "RUB",
        "active_members": 4,
        "new_members": 1,
        "purchases": 5,
        "purchasers": 3,
        "purchase_frequency": "1.67",  # 5 ÷ 3 = 1.666…
        "sales": "1401.00",  # 601.00 + 800.00
        "average_purchase": "280.20",  # 1401.00 ÷ 5
        "purchases_with_points": 2,
        "average_purchase_with_points": "400.00",  # 800.00 ÷ 2
        "average_purchase_without_points": "200.33",  # 601.00 ÷ 3 = 200.333…
        "redemptions": 2,
        "earn_share": "0.7143",  # 5 ÷ 7 = 0.714285…
        "burn_share": "0.2857",  # 2 ÷ 7 = 0.285714…
        "points_issued": 1000,
        "points_reversed": 100,
        "points_redeemed": 270,
        "points_redeemed_here": 150,
        "points_expired": 90,
        "redemption_rate": "0.3000",  # 270 ÷ 900
        "breakage_rate": "0.1000",  # 90 ÷ 900
        "liability_points": 640,
        "liability": "6.40",  # 640 × 0.01 EUR
    }


def test_figures_without_an_fx_rate_hide_the_money_but_keep_the_counts():
    activity = kpis.Activity(purchasers=3, redemptions=2, purchases=kpis.Purchases(3, Decimal("601.00")),
                             amounts_known=False, liability_points=40)
    figures = kpis.figures(activity, "EUR", None, "EUR")
    assert [figures[name] for name in ("sales", "average_purchase", "average_purchase_with_points",
                                       "average_purchase_without_points", "liability")] == [None] * 5
    assert (figures["purchases"], figures["earn_share"], figures["purchase_frequency"]) == (3, "0.6000", "1.00")


def test_figures_of_a_quiet_partner_have_no_ratios():
    figures = kpis.figures(kpis.Activity(), "EUR", Decimal("0.01"), "EUR")
    assert figures["sales"] == "0.00"
    assert [figures[name] for name in ("purchase_frequency", "average_purchase", "earn_share",
                                       "redemption_rate", "breakage_rate")] == [None] * 5
    assert figures["liability"] == "0.00"


def test_netting_ratio_is_one_minus_multilateral_over_gross_to_four_places_never_minus_zero():
    def ratio(gross: str, multilateral: str):
        return settlement.Netting(gross=Decimal(gross), bilateral_net=Decimal(gross),
                                  multilateral_net=Decimal(multilateral), payments_gross=2,
                                  payments_net=2).netting_ratio

    # one pair line A→B of 100.00: A −100.00, B +100.00, Σ|net| = 200.00 → 1 − 2 = −100 %
    assert ratio("100.00", "200.00") == Decimal("-1.0000")
    # 1 − 10.00 ÷ 120.00 = 0.91666… → 0.9167
    assert ratio("120.00", "10.00") == Decimal("0.9167")
    # 1 − 100000.01 ÷ 100000.00 = −0.0000001 → 0.0000 (it printed "-0.0000")
    assert str(ratio("100000.00", "100000.01")) == "0.0000"
    assert ratio("0.00", "0.00") is None
