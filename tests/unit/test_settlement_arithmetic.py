"""Settlement arithmetic on its own (SPEC §7): fee lines and a statement's counterparties,
from aggregates built by hand, with no database."""

from decimal import Decimal

from coalition.domain.settlement import (
    FeeLine,
    IssuedPoints,
    PairLine,
    counterparties,
    fee_lines,
    fees,
)


def test_fee_lines_sum_each_partners_points_by_fee_rate_and_leave_out_what_nets_to_zero():
    issued = [
        IssuedPoints("aroma", Decimal("0.001"), 100),
        IssuedPoints("aroma", Decimal("0.002"), 55),
        IssuedPoints("aroma", Decimal("0.001"), -30),  # a return at the earn's rate
        IssuedPoints("gym", Decimal("0.001"), 5),
        IssuedPoints("gym", Decimal("0.001"), -5),  # all of it returned
    ]
    lines = fee_lines(issued)
    assert lines == {"aroma": [FeeLine(Decimal("0.001"), 70), FeeLine(Decimal("0.002"), 55)]}
    # 70 × 0.001 = 0.070 and 55 × 0.002 = 0.110: 0.180, rounded once
    assert [str(line.exact) for line in lines["aroma"]] == ["0.070", "0.110"]
    assert {partner: str(fee) for partner, fee in fees(lines, "EUR").items()} == {"aroma": "0.18"}


def test_a_fee_rate_of_zero_charges_nothing_and_makes_no_line():
    # a return at a zero rate would otherwise show -30 × 0 = "-0"
    issued = [IssuedPoints("aroma", Decimal("0"), -30), IssuedPoints("aroma", Decimal("0.001"), 10)]
    assert fee_lines(issued) == {"aroma": [FeeLine(Decimal("0.001"), 10)]}
    assert fee_lines([IssuedPoints("aroma", Decimal("0.000"), 500)]) == {}


def test_a_fee_rate_is_kept_by_its_value_however_it_was_written_or_stored():
    # PostgreSQL's counters hand rates back with twelve decimals
    issued = [IssuedPoints("aroma", Decimal("0.001000000000"), 100), IssuedPoints("aroma", Decimal("0.0010"), 1)]
    (line,) = fee_lines(issued)["aroma"]
    assert (str(line.rate), line.points, str(line.exact)) == ("0.001", 101, "0.101")


def test_fees_round_the_sum_of_the_lines_once_half_to_even():
    # 3 × 0.001 = 0.003 and 2 × 0.0015 = 0.003: each would round to 0.00, their sum 0.006 → 0.01
    lines = {"aroma": [FeeLine(Decimal("0.001"), 3), FeeLine(Decimal("0.0015"), 2)]}
    assert str(fees(lines, "EUR")["aroma"]) == "0.01"
    # ties go to the even cent: 0.005 → 0.00, 0.015 → 0.02
    assert str(fees({"aroma": [FeeLine(Decimal("0.001"), 5)]}, "EUR")["aroma"]) == "0.00"
    assert str(fees({"aroma": [FeeLine(Decimal("0.001"), 15)]}, "EUR")["aroma"]) == "0.02"
    assert str(fees({"aroma": [FeeLine(Decimal("0.001"), 15)]}, "JPY")["aroma"]) == "0"


def test_a_partners_counterparties_are_its_pair_lines_both_ways_without_own_redemption():
    lines = [
        PairLine("aroma", "gym", 100, Decimal("1.00")),  # aroma's points spent at gym: out
        PairLine("gym", "aroma", 30, Decimal("0.30")),  # gym's points spent at aroma: in
        PairLine("aroma", "aroma", 50, Decimal("0.00")),  # own redemption: no counterparty
        PairLine("sky", "aroma", 10, Decimal("0.12")),
        PairLine("gym", "sky", 5, Decimal("0.05")),  # not aroma's
    ]
    assert [
        (side.partner_id, side.points_in, str(side.value_in), side.points_out, str(side.value_out),
         str(side.net))
        for side in counterparties(lines, "aroma", "EUR")
    ] == [("gym", 30, "0.30", 100, "1.00", "-0.70"), ("sky", 10, "0.12", 0, "0.00", "0.12")]
