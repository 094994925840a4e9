"""Settlement arithmetic on its own (SPEC §7): fee lines and a statement's counterparties,
from aggregates built by hand, with no database."""

from decimal import Decimal

import pytest

from coalition.domain.settlement import (
    FeeLine,
    IssuedPoints,
    PairLine,
    Position,
    RedeemedPoints,
    Unbalanced,
    convert,
    counterparties,
    fee_lines,
    fees,
    liability_value,
    netting,
    pair_lines,
    positions,
    took_part,
)
from coalition.domain.totals import PartnerActivity


def test_fee_lines_sum_each_partners_points_by_fee_rate_and_leave_out_what_nets_to_zero():
    issued = [
        IssuedPoints("aroma", Decimal("0.002"), 55),  # listed by rate, lowest first, whatever came first
        IssuedPoints("aroma", Decimal("0.001"), 100),
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
    lines = [  # as pair_lines sorts them, by issuer: sky's in-line comes after aroma's out-lines
        PairLine("aroma", "aroma", 50, Decimal("0.00")),  # own redemption: no counterparty
        PairLine("aroma", "sky", 7, Decimal("0.07")),  # aroma's points spent at sky: out
        PairLine("aroma", "zeta", 2, Decimal("0.02")),
        PairLine("gym", "aroma", 30, Decimal("0.30")),  # gym's points spent at aroma: in
        PairLine("gym", "sky", 5, Decimal("0.05")),  # not aroma's
        PairLine("sky", "aroma", 10, Decimal("0.12")),
    ]
    assert [
        (side.partner_id, side.points_in, str(side.value_in), side.points_out, str(side.value_out),
         str(side.net))
        for side in counterparties(lines, "aroma", "EUR")
    ] == [("gym", 30, "0.30", 0, "0.00", "0.30"), ("sky", 10, "0.12", 7, "0.07", "0.05"),
          ("zeta", 0, "0.00", 2, "0.02", "-0.02")]  # by counterparty id


def test_own_redemption_keeps_its_points_and_is_worth_nothing():
    # aroma's points redeemed at aroma: 700 − 100 reversed = 600 points, and no money
    redeemed = [RedeemedPoints("aroma", "aroma", Decimal("0.01"), 700),
                RedeemedPoints("aroma", "aroma", Decimal("0.02"), -100)]
    (line,) = pair_lines(redeemed, "EUR")
    assert (line.own, line.points, str(line.value)) == (True, 600, "0.00")


def test_a_pair_line_sums_points_times_rate_with_reversals_negative_then_rounds_once():
    # skyair → aroma: 9000 × 0.01 = 90.00, 1000 reversed at the burn's 0.012 = −12.00,
    # 1 × 0.004 = 0.004 and 1 × 0.0042 = 0.0042 (each alone would round to 0.00):
    # 90.00 − 12.00 + 0.004 + 0.0042 = 78.0082 → 78.01, of 9000 − 1000 + 1 + 1 = 8002 points
    # aroma → gym: 250 × 0.02 = 5.00; lines come by issuer, then redeemer
    redeemed = [
        RedeemedPoints("skyair", "aroma", Decimal("0.01"), 9000),
        RedeemedPoints("aroma", "gym", Decimal("0.02"), 250),
        RedeemedPoints("skyair", "aroma", Decimal("0.012"), -1000),
        RedeemedPoints("skyair", "aroma", Decimal("0.004"), 1),
        RedeemedPoints("skyair", "aroma", Decimal("0.0042"), 1),
    ]
    assert [
        (line.issuer_id, line.redeemer_id, line.points, str(line.value))
        for line in pair_lines(redeemed, "EUR")
    ] == [("aroma", "gym", 250, "5.00"), ("skyair", "aroma", 8002, "78.01")]


def period_lines():
    """A period's pair lines, already rounded (I → R: I's points redeemed at R)."""
    return [
        PairLine("aroma", "skyair", 4000, Decimal("40.00")),
        PairLine("skyair", "aroma", 5000, Decimal("50.00")),
        PairLine("skyair", "gym", 3000, Decimal("30.00")),
        PairLine("gym", "aroma", 3000, Decimal("30.00")),
        PairLine("aroma", "aroma", 700, Decimal("0.00")),  # own redemption: no money
        PairLine("cafe", "gym", 1, Decimal("0.00")),  # a line worth less than half a cent
    ]


def as_figures(by_partner):
    return {partner: (str(p.receivable), str(p.payable), str(p.fees), str(p.net))
            for partner, p in by_partner.items()}


def test_net_is_receivable_less_payable_less_fees():
    # SPEC §7's example: 120.40 − 35.10 − 2.05 = 83.25
    position = Position("aroma", Decimal("120.40"), Decimal("35.10"), Decimal("2.05"))
    assert position.net == Decimal("83.25")


def test_a_partner_receives_its_lines_as_redeemer_and_pays_its_lines_as_issuer():
    # aroma: receivable 50.00 (skyair's points) + 30.00 (gym's) = 80.00, payable 40.00 (at skyair),
    #        fees 2.00 → net 80.00 − 40.00 − 2.00 = 38.00; its own redemption moves no money
    # skyair: receivable 40.00, payable 50.00 + 30.00 = 80.00 → net −40.00
    # gym: receivable 30.00 (skyair's points) + 0.00 (cafe's), payable 30.00 → net 0.00
    # cafe: receivable 0.00, payable 0.00, no fee rate → 0.00 fees
    found = positions(["aroma", "skyair", "gym", "cafe"], period_lines(), {"aroma": Decimal("2.00")}, "EUR")
    assert as_figures(found) == {
        "aroma": ("80.00", "40.00", "2.00", "38.00"),
        "skyair": ("40.00", "80.00", "0.00", "-40.00"),
        "gym": ("30.00", "30.00", "0.00", "0.00"),
        "cafe": ("0.00", "0.00", "0.00", "0.00"),
    }


def test_pair_lines_of_a_partner_left_out_of_the_settlement_fail_it_loudly():
    # skyair's points redeemed at aroma, but skyair is not settled: Σ(receivable − payable)
    # over the partners settled is 90.00, not 0, and nothing may be closed.
    with pytest.raises(Unbalanced) as caught:
        positions(["aroma"], [PairLine("skyair", "aroma", 9000, Decimal("90.00"))], {}, "EUR")
    assert caught.value.reason == "unbalanced"


def test_a_zero_valued_line_of_a_partner_left_out_still_fails_the_settlement():
    # Σ(receivable − payable) is 0.00 here, but skyair's redeemed points would be on no statement.
    with pytest.raises(Unbalanced):
        positions(["aroma"], [PairLine("skyair", "aroma", 1, Decimal("0.00"))], {}, "EUR")


def test_netting_sums_gross_lines_bilateral_and_multilateral_nets_and_payments_saved():
    # nets (above): aroma 38.00, skyair −40.00, gym 0.00, cafe 0.00
    # gross: 40.00 + 50.00 + 30.00 + 30.00 = 150.00 (own redemption and the 0.00 line left out)
    # bilateral: aroma↔skyair |40.00 − 50.00| = 10.00, skyair↔gym 30.00, gym↔aroma 30.00 → 70.00
    # multilateral: |38.00| + |−40.00| + 0 + 0 = 78.00 (fees included)
    # ratio: 1 − 78.00 ÷ 150.00 = 0.48; payments: 4 lines with money, 2 partners with a net → 2 saved
    lines = period_lines()
    found = positions(["aroma", "skyair", "gym", "cafe"], lines, {"aroma": Decimal("2.00")}, "EUR")
    summary = netting(lines, found, "EUR")
    assert (str(summary.gross), str(summary.bilateral_net), str(summary.multilateral_net),
            str(summary.netting_ratio)) == ("150.00", "70.00", "78.00", "0.4800")
    assert (summary.payments_gross, summary.payments_net, summary.payments_saved) == (4, 2, 2)


def test_one_pair_line_nets_to_a_ratio_of_minus_one_as_the_spec_defines_it():
    # decisions.md's case: A → B 10.00, no fees. Gross 10.00; nets −10.00 and +10.00, so
    # Σ |net| = 20.00 counts the one euro flow at payer and payee: 1 − 20 ÷ 10 = −1.
    # One payment gross, two net (A pays the operator, the operator pays B).
    lines = [PairLine("a", "b", 1000, Decimal("10.00"))]
    summary = netting(lines, positions(["a", "b"], lines, {}, "EUR"), "EUR")
    assert (str(summary.gross), str(summary.multilateral_net), str(summary.netting_ratio)) == (
        "10.00", "20.00", "-1.0000")
    assert (summary.payments_gross, summary.payments_net, summary.payments_saved) == (1, 2, -1)


def test_a_negative_pair_line_counts_by_its_size_in_the_gross():
    # skyair gave back 2000 more of aroma's points than it redeemed this period (burn
    # reversals of an earlier period's burns): |50.00| + |−20.00| = 70.00, not 30.00
    lines = [PairLine("skyair", "aroma", 5000, Decimal("50.00")),
             PairLine("aroma", "skyair", -2000, Decimal("-20.00"))]
    found = positions(["aroma", "skyair"], lines, {}, "EUR")
    assert str(netting(lines, found, "EUR").gross) == "70.00"


def _position(receivable="0.00", payable="0.00", fees="0.00") -> Position:
    return Position("gym", Decimal(receivable), Decimal(payable), Decimal(fees))


def test_a_partner_with_nothing_in_the_period_took_no_part():
    assert not took_part("gym", _position(), PartnerActivity(), [])


@pytest.mark.parametrize(("position", "activity", "lines"), [
    (_position(receivable="0.01"), PartnerActivity(), []),
    (_position(fees="0.01"), PartnerActivity(), []),
    (_position(), PartnerActivity(points_issued=40), []),  # nets 0 with no fee rate, yet issued
    (_position(), PartnerActivity(points_expired=5), []),
    (_position(), PartnerActivity(late_count=1), []),
    (_position(), PartnerActivity(), [PairLine("gym", "gym", 10, Decimal("0.00"))]),
    (_position(), PartnerActivity(), [PairLine("gym", "aroma", 10, Decimal("0.00"))]),
])
def test_money_points_or_a_pair_line_of_its_own_is_taking_part(position, activity, lines):
    assert took_part("gym", position, activity, lines)


def test_another_partners_pair_line_is_not_taking_part():
    line = PairLine("skyair", "aroma", 10, Decimal("0.10"))
    assert not took_part("gym", _position(), PartnerActivity(), [line])


def test_a_net_converts_into_the_partners_currency_rounded_half_to_even():
    # SPEC §7's example: 83.25 EUR at 0.0110 EUR per RUB = 7568.1818… RUB → 7568.18
    assert str(convert(Decimal("83.25"), Decimal("0.0110"), "RUB")) == "7568.18"
    # a partner that pays: −40.00 EUR ÷ 0.0110 = −3636.3636… RUB → −3636.36
    assert str(convert(Decimal("-40.00"), Decimal("0.0110"), "RUB")) == "-3636.36"
    # 0.25 EUR at 0.0050 EUR per JPY = 50 JPY; 0.0125 EUR ÷ 0.0050 = 2.5 JPY, a tie → 2 (even)
    assert str(convert(Decimal("0.25"), Decimal("0.0050"), "JPY")) == "50"
    assert str(convert(Decimal("0.0125"), Decimal("0.0050"), "JPY")) == "2"


def test_a_net_of_zero_needs_no_fx_rate_and_any_other_net_does():
    # nothing is 0 in any currency, written at its minor unit
    assert str(convert(Decimal("0.00"), None, "RUB")) == "0.00"
    assert str(convert(Decimal("0.00"), None, "KWD")) == "0.000"
    assert convert(Decimal("0.01"), None, "RUB") is None
    assert convert(Decimal("-0.01"), None, "RUB") is None


def test_outstanding_points_are_worth_the_redemption_rate_rounded_once():
    # 1234 points × 0.0125 EUR = 15.425, halfway between 15.42 and 15.43: 2 is even → 15.42
    assert str(liability_value(1234, Decimal("0.0125"), "EUR")) == "15.42"
    # 40 points × 0.01 = 0.40 EUR; in JPY, 40 × 0.5 = 20
    assert str(liability_value(40, Decimal("0.01"), "EUR")) == "0.40"
    assert str(liability_value(40, Decimal("0.5"), "JPY")) == "20"


def test_outstanding_points_without_a_redemption_rate_are_of_unknown_value():
    assert liability_value(40, None, "EUR") is None


def test_no_outstanding_points_are_worth_nothing_with_or_without_a_rate():
    assert str(liability_value(0, None, "EUR")) == "0.00"
    assert str(liability_value(0, None, "JPY")) == "0"
    assert str(liability_value(0, Decimal("0.01"), "EUR")) == "0.00"
