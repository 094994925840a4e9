"""The rate in force (SPEC §5): most specific scope first, then the latest version."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from coalition.domain import rates
from coalition.domain.errors import Invalid, InvalidFields
from coalition.domain.rates import Rate

JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
JUN = datetime(2026, 6, 1, tzinfo=UTC)
APR_15 = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)


def rate(id, kind="redemption", value="0.01", effective_from=JAN, **scope):
    return Rate(id=id, kind=kind, value=Decimal(value), effective_from=effective_from, **scope)


def test_partner_rate_beats_coalition_wide_rate():
    coalition_wide = rate(1, value="0.01")
    aroma = rate(2, value="0.02", partner_id="aroma")
    chosen = rates.in_force([aroma, coalition_wide], "redemption", APR_15, partner_id="aroma")
    assert chosen == aroma


def test_partner_rate_beats_coalition_wide_rate_that_is_newer():
    # Specificity decides before the version date: the coalition-wide rate of
    # March does not override aroma's own rate of January.
    aroma = rate(1, value="0.02", partner_id="aroma", effective_from=JAN)
    coalition_wide = rate(2, value="0.01", effective_from=MAR)
    chosen = rates.in_force([aroma, coalition_wide], "redemption", APR_15, partner_id="aroma")
    assert chosen == aroma


def test_other_partners_rate_is_not_used():
    coalition_wide = rate(1, value="0.01")
    skyair = rate(2, value="0.02", partner_id="skyair")
    chosen = rates.in_force([coalition_wide, skyair], "redemption", APR_15, partner_id="aroma")
    assert chosen == coalition_wide


def test_coalition_wide_query_ignores_partner_rates():
    coalition_wide = rate(1, value="0.01")
    aroma = rate(2, value="0.02", partner_id="aroma")
    assert rates.in_force([coalition_wide, aroma], "redemption", APR_15) == coalition_wide


@pytest.mark.parametrize("written", ["coffee", "COFFEE", " Coffee ", "\uff23\uff4f\uff46\uff46\uff45\uff45"])
def test_a_category_is_matched_whatever_its_case_width_or_surrounding_spaces(written):
    # a till sending "coffee" for the operator's "Coffee" quietly earned the category-less rate
    plain = rate(1, kind="earn", value="100", partner_id="aroma")
    coffee = rate(2, kind="earn", value="3", partner_id="aroma", category="Coffee")
    chosen = rates.in_force([plain, coffee], "earn", APR_15, partner_id="aroma", category=written)
    assert chosen == coffee


def test_a_category_is_matched_composed_or_decomposed():
    cafe = rate(1, kind="earn", value="3", partner_id="aroma", category="Caf\u00e9")  # é as one character
    chosen = rates.in_force([cafe], "earn", APR_15, partner_id="aroma", category="cafe\u0301")  # e, then its accent
    assert chosen == cafe
    assert rates.in_force([cafe], "earn", APR_15, partner_id="aroma", category="cafe") is None  # another word


def test_a_category_written_another_way_is_a_newer_version_of_the_same_rate():
    coffee = rate(1, kind="earn", value="3", partner_id="aroma", category="Coffee", effective_from=JAN)
    newer = rate(2, kind="earn", value="4", partner_id="aroma", category="coffee", effective_from=MAR)
    assert rates.in_force([newer, coffee], "earn", APR_15, partner_id="aroma", category="COFFEE") == newer
    assert rates.versions_in_force([coffee, newer], APR_15) == [newer]


def test_partner_rate_beats_coalition_wide_category_rate():
    # Partner is compared first (SPEC §5 lists it first): aroma's own category-less
    # rate beats a coalition-wide rate for the coffee category.
    coalition_coffee = rate(1, kind="earn", value="0.3", category="coffee")
    aroma = rate(2, kind="earn", value="0.1", partner_id="aroma")
    chosen = rates.in_force([coalition_coffee, aroma], "earn", APR_15, partner_id="aroma",
                            category="coffee")
    assert chosen == aroma


def test_category_rate_beats_category_less_rate():
    plain = rate(1, kind="earn", value="0.1", partner_id="aroma")
    coffee = rate(2, kind="earn", value="0.2", partner_id="aroma", category="coffee")
    chosen = rates.in_force([coffee, plain], "earn", APR_15, partner_id="aroma", category="coffee")
    assert chosen == coffee


def test_category_rate_does_not_apply_to_another_category():
    plain = rate(1, kind="earn", value="0.1", partner_id="aroma")
    coffee = rate(2, kind="earn", value="0.2", partner_id="aroma", category="coffee")
    chosen = rates.in_force([coffee, plain], "earn", APR_15, partner_id="aroma", category="cake")
    assert chosen == plain


def test_category_rate_does_not_apply_to_purchase_without_category():
    plain = rate(1, kind="earn", value="0.1", partner_id="aroma")
    coffee = rate(2, kind="earn", value="0.2", partner_id="aroma", category="coffee")
    assert rates.in_force([coffee, plain], "earn", APR_15, partner_id="aroma") == plain


def test_latest_effective_from_wins_among_equally_specific_rates():
    # Three versions of aroma's rate; on 15 April the March version is the
    # latest that has started (June has not).
    january = rate(1, value="0.010", partner_id="aroma", effective_from=JAN)
    march = rate(2, value="0.012", partner_id="aroma", effective_from=MAR)
    june = rate(3, value="0.015", partner_id="aroma", effective_from=JUN)
    chosen = rates.in_force([june, january, march], "redemption", APR_15, partner_id="aroma")
    assert chosen == march


def test_rate_starting_exactly_at_t_is_in_force():
    january = rate(1, value="0.010", effective_from=JAN)
    march = rate(2, value="0.012", effective_from=MAR)
    assert rates.in_force([january, march], "redemption", MAR) == march


def test_later_posted_correction_wins_on_the_same_effective_from_in_either_order():
    # Same scope and start: the higher id (posted later) is the correction, however listed.
    first = rate(7, value="0.010", effective_from=MAR)
    correction = rate(8, value="0.011", effective_from=MAR)
    assert rates.in_force([correction, first], "redemption", APR_15) == correction
    assert rates.in_force([first, correction], "redemption", APR_15) == correction


def test_category_rate_beats_a_newer_category_less_rate():
    # Specificity decides before the version date: aroma's coffee rate of January
    # (id 1) is not overridden by its category-less rate of March (id 2).
    coffee = rate(1, kind="earn", value="0.2", partner_id="aroma", category="coffee")
    plain = rate(2, kind="earn", value="0.1", partner_id="aroma", effective_from=MAR)
    chosen = rates.in_force([plain, coffee], "earn", APR_15, partner_id="aroma", category="coffee")
    assert chosen == coffee


def test_latest_effective_from_wins_over_a_version_posted_later_with_an_earlier_start():
    # The March version was posted first (id 1); a January version posted after it
    # (id 2) is older by its effective_from, so on 15 April March's rate is in force.
    march = rate(1, value="0.012", effective_from=MAR)
    january_posted_later = rate(2, value="0.010", effective_from=JAN)
    assert rates.in_force([march, january_posted_later], "redemption", APR_15) == march


def test_effective_to_is_exclusive():
    # A promo from 1 March to 1 June applies on 31 May 23:59:59 but not at 1 June 00:00.
    promo = rate(1, kind="promo", value="2", partner_id="aroma", effective_from=MAR,
                 effective_to=JUN)
    just_before = datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)
    assert rates.in_force([promo], "promo", just_before, partner_id="aroma") == promo
    assert rates.in_force([promo], "promo", JUN, partner_id="aroma") is None


def test_rate_before_its_effective_from_is_not_in_force():
    june = rate(1, value="0.015", effective_from=JUN)
    assert rates.in_force([june], "redemption", APR_15) is None


def test_partner_rate_not_yet_in_force_falls_back_to_coalition_wide_rate():
    coalition_wide = rate(1, value="0.01", effective_from=JAN)
    aroma_from_june = rate(2, value="0.02", partner_id="aroma", effective_from=JUN)
    chosen = rates.in_force([coalition_wide, aroma_from_june], "redemption", APR_15,
                            partner_id="aroma")
    assert chosen == coalition_wide


def test_ended_partner_rate_falls_back_to_coalition_wide_rate():
    coalition_wide = rate(1, value="0.01", effective_from=JAN)
    aroma_until_march = rate(2, value="0.02", partner_id="aroma", effective_from=JAN,
                             effective_to=MAR)
    chosen = rates.in_force([coalition_wide, aroma_until_march], "redemption", APR_15,
                            partner_id="aroma")
    assert chosen == coalition_wide


def test_rate_of_another_kind_is_not_used():
    fee = rate(1, kind="fee", value="0.001")
    assert rates.in_force([fee], "redemption", APR_15) is None


def test_fx_rate_is_chosen_by_currency():
    # The JPY rate is newer and posted later, yet it does not convert roubles.
    rub = rate(1, kind="fx", value="0.0110", currency="RUB", effective_from=JAN)
    jpy = rate(2, kind="fx", value="0.0061", currency="JPY", effective_from=MAR)
    assert rates.in_force([rub, jpy], "fx", APR_15, currency="RUB") == rub


def test_no_rate_in_force_gives_none():
    assert rates.in_force([], "earn", APR_15, partner_id="aroma") is None


# redemption_rate and fee_rate: what a point redeemed, or issued, is worth (SPEC §7).


def test_a_point_redeemed_is_worth_the_redeemers_own_rate_before_the_coalition_wide_one():
    coalition_wide = rate(1, value="0.01")
    aroma = rate(2, value="0.02", partner_id="aroma")
    fee = rate(3, kind="fee", value="0.05", partner_id="gym")
    every = [coalition_wide, aroma, fee]
    assert rates.redemption_rate(every, "aroma", APR_15) == aroma
    assert rates.redemption_rate(every, "gym", APR_15) == coalition_wide  # its fee is no value
    assert rates.redemption_rate(every, "aroma", JAN.replace(year=2025)) is None  # none yet


def test_an_issuer_pays_its_own_fee_rate_before_the_coalition_wide_one():
    coalition_wide = rate(1, kind="fee", value="0.001")
    skyair = rate(2, kind="fee", value="0.002", partner_id="skyair")
    redemption = rate(3, value="0.01", partner_id="aroma")
    every = [coalition_wide, skyair, redemption]
    assert rates.fee_rate(every, "skyair", APR_15) == skyair
    assert rates.fee_rate(every, "aroma", APR_15) == coalition_wide  # its redemption is no fee
    assert rates.fee_rate(every, "aroma", JAN.replace(year=2025)) is None  # none yet


def test_the_operator_pays_no_fee_to_itself():
    # SPEC §7: the coalition partner's bonuses bear no fee, even under a coalition-wide fee
    # rate or one named for it
    every = [
        rate(1, kind="fee", value="0.001"),
        rate(2, kind="fee", value="0.003", partner_id="coalition"),
    ]
    assert rates.fee_rate(every, "coalition", APR_15) is None


# versions_in_force: per scope, the one version in force (GET /rates?at=).


def test_versions_in_force_leave_out_superseded_and_future_versions():
    # Three versions of the coalition-wide redemption rate: on 15 April January's is
    # superseded by March's, and June's has not begun.
    january = rate(1, value="0.010", effective_from=JAN)
    march = rate(2, value="0.012", effective_from=MAR)
    june = rate(3, value="0.015", effective_from=JUN)
    assert rates.versions_in_force([january, march, june], APR_15) == [march]


def test_versions_in_force_keep_the_latest_version_whatever_order_the_rates_come_in():
    # March's version supersedes January's even when listed first; of two versions of
    # March, the correction posted later (id 4) supersedes the first (id 3)
    january = rate(1, value="0.010", effective_from=JAN)
    march = rate(2, value="0.012", effective_from=MAR)
    assert rates.versions_in_force([march, january], APR_15) == [march]
    first = rate(3, value="0.013", effective_from=MAR)
    correction = rate(4, value="0.014", effective_from=MAR)
    assert rates.versions_in_force([correction, first], APR_15) == [correction]


def test_versions_in_force_keep_one_version_per_kind_partner_category_currency_and_threshold():
    # Each pair differs only in one part of the scope, so no rate supersedes another:
    # all nine are listed, by id.
    in_force = [
        rate(1, value="0.01"),
        rate(2, value="0.02", partner_id="aroma"),  # another partner
        rate(3, kind="fee", value="0.001"),  # another kind
        rate(4, kind="earn", value="0.1", partner_id="aroma"),
        rate(5, kind="earn", value="0.2", partner_id="aroma", category="coffee"),  # another category
        rate(6, kind="fx", value="0.0110", currency="RUB"),
        rate(7, kind="fx", value="0.0061", currency="JPY"),  # another currency
        threshold(8, "500.00", "20"),
        threshold(9, "1000.00", "50"),  # another min_amount
    ]
    assert rates.versions_in_force(list(reversed(in_force)), APR_15) == in_force


# threshold_reached: the highest min_amount the purchase reaches.


def threshold(id, min_amount, points, partner_id="aroma", effective_from=JAN, **more):
    return Rate(id=id, kind="threshold", value=Decimal(points), effective_from=effective_from,
                partner_id=partner_id, min_amount=Decimal(min_amount), **more)


def test_threshold_reached_picks_the_highest_min_amount_reached():
    # 1200.00 reaches 500 and 1000 but not 2000 → the 1000 threshold.
    small = threshold(1, "500.00", "20")
    middle = threshold(2, "1000.00", "50")
    large = threshold(3, "2000.00", "150")
    chosen = rates.threshold_reached([small, large, middle], APR_15, "aroma", Decimal("1200.00"))
    assert chosen == middle


def test_threshold_is_reached_at_exactly_min_amount():
    # amount ≥ min_amount: 1000.00 reaches the 1000.00 threshold.
    middle = threshold(1, "1000.00", "50")
    assert rates.threshold_reached([middle], APR_15, "aroma", Decimal("1000.00")) == middle


def test_threshold_not_reached_below_min_amount():
    middle = threshold(1, "1000.00", "50")
    assert rates.threshold_reached([middle], APR_15, "aroma", Decimal("999.99")) is None


def test_threshold_of_another_partner_does_not_apply():
    skyair = threshold(1, "100.00", "50", partner_id="skyair")
    assert rates.threshold_reached([skyair], APR_15, "aroma", Decimal("500.00")) is None


def test_threshold_outside_its_window_does_not_apply():
    # Ended on 1 March, so not in force on 15 April.
    ended = threshold(1, "100.00", "50", effective_to=MAR)
    assert rates.threshold_reached([ended], APR_15, "aroma", Decimal("500.00")) is None


def test_newer_version_of_the_same_threshold_wins():
    # Same min_amount 1000: the March version (80 points) replaces January's (50).
    january = threshold(1, "1000.00", "50", effective_from=JAN)
    march = threshold(2, "1000.00", "80", effective_from=MAR)
    chosen = rates.threshold_reached([march, january], APR_15, "aroma", Decimal("1000.00"))
    assert chosen == march


def test_newer_version_of_the_same_threshold_wins_whatever_order_the_rates_come_in():
    # Same min_amount 1000: March's version (80 points) replaces January's (50) listed after it.
    january = threshold(1, "1000.00", "50", effective_from=JAN)
    march = threshold(2, "1000.00", "80", effective_from=MAR)
    chosen = rates.threshold_reached([january, march], APR_15, "aroma", Decimal("1000.00"))
    assert chosen == march


def test_highest_threshold_reached_beats_a_newer_lower_one():
    # 1200.00 reaches both; the 1000 threshold (from January) is higher than
    # the 500 one added in March, so it applies.
    high = threshold(1, "1000.00", "50", effective_from=JAN)
    low_newer = threshold(2, "500.00", "20", effective_from=MAR)
    chosen = rates.threshold_reached([low_newer, high], APR_15, "aroma", Decimal("1200.00"))
    assert chosen == high


# What each kind of rate may name (SPEC §5's table)


def scope(kind, value="1", **fields):
    return {"kind": kind, "value": Decimal(value), "effective_from": JAN, **fields}


@pytest.mark.parametrize("fields", [
    scope("earn", partner_id="aroma", category="coffee"),
    scope("promo", "2", partner_id="aroma", effective_to=MAR),
    # SPEC §5: a promo, like an earn rate, may be limited to one category
    scope("promo", "2", partner_id="aroma", category="coffee", effective_to=MAR),
    scope("threshold", "50", partner_id="aroma", min_amount=Decimal("100")),
    scope("redemption", "0.01"),
    scope("fee", "0"),
    scope("fx", "0.011", currency="RUB"),
])
def test_a_rate_naming_what_its_kind_has_is_accepted(fields):
    rates.check_scope(fields)


@pytest.mark.parametrize(("fields", "field"), [
    (scope("earn"), "partner_id"),
    # a promo multiplies, and a threshold tops up, one partner's earn (SPEC §5: scope partner_id)
    (scope("promo", "2", effective_to=MAR), "partner_id"),
    (scope("threshold", "50", min_amount=Decimal("100")), "partner_id"),
    (scope("promo", "2", partner_id="aroma"), "effective_to"),
    (scope("threshold", "50", partner_id="aroma"), "min_amount"),
    (scope("threshold", "2.5", partner_id="aroma", min_amount=Decimal("100")), "value"),
    (scope("redemption", "0.01", min_amount=Decimal("1")), "min_amount"),
    (scope("fee", "0.001", category="coffee"), "category"),
    (scope("fx", "0.011"), "currency"),
    (scope("earn", partner_id="aroma", currency="EUR"), "currency"),  # only an fx rate names one
    # a threshold tops up a purchase whatever it was: a category would be ignored, not applied
    (scope("threshold", "50", partner_id="aroma", min_amount=Decimal("100"), category="coffee"), "category"),
    (scope("fx", "0.011", currency="RUB", partner_id="aroma"), "partner_id"),
    (scope("fx", "0.011", currency="XXX"), "currency"),
    (scope("earn", "0", partner_id="aroma"), "value"),
    # a promo of 0 wipes out the earn and an fx rate of 0 leaves no way to convert a net
    # into the partner's currency: each must be positive (a threshold of 0 may be: below)
    (scope("promo", "0", partner_id="aroma", effective_to=MAR), "value"),
    (scope("threshold", "-1", partner_id="aroma", min_amount=Decimal("100")), "value"),
    (scope("fx", "0", currency="RUB"), "value"),
    (scope("fee", "-0.001"), "value"),
    (scope("redemption", "0.01", effective_to=JAN), "effective_to"),
    # the coalition pays no fee to itself (SPEC §7): a fee rate of its own would never be charged
    (scope("fee", "0.001", partner_id="coalition"), "partner_id"),
])
def test_a_rate_naming_what_its_kind_has_not_or_lacking_what_it_needs_is_refused(fields, field):
    with pytest.raises(Invalid) as refused:
        rates.check_scope(fields)
    assert refused.value.field == field


def test_a_threshold_of_zero_points_is_accepted():
    # how a threshold entered wrong is withdrawn: no version can be ended or deleted
    rates.check_scope(scope("threshold", "0", partner_id="aroma", min_amount=Decimal("100")))


def test_a_rate_wrong_in_several_fields_is_refused_naming_each():
    # an operator corrected one field, posted again, and heard of the next
    with pytest.raises(InvalidFields) as refused:
        rates.check_scope(scope("fx", "0", currency="RUB", partner_id="aroma", category="coffee",
                                min_amount=Decimal("1")))
    assert refused.value.by_field() == {
        "min_amount": "only a threshold has a min_amount",
        "category": "an fx rate has no category",
        "partner_id": "an fx rate is coalition-wide",
        "value": "an fx rate must be positive",
    }


def test_a_refusal_names_the_kind_of_rate_with_its_article():
    # "an earn rate", "a fee rate": the message's subject reads as English.
    with pytest.raises(Invalid) as earn_refused:
        rates.check_scope(scope("earn"))
    with pytest.raises(Invalid) as fee_refused:
        rates.check_scope(scope("fee", "0.001", category="coffee"))
    with pytest.raises(Invalid) as fx_refused:
        rates.check_scope(scope("fx", "0", currency="RUB"))
    assert (earn_refused.value.message, fee_refused.value.message, fx_refused.value.message) == (
        "an earn rate needs a partner_id",
        "a fee rate has no category",
        "an fx rate must be positive",
    )


def test_a_currency_lacking_or_out_of_place_is_told_which_it_is():
    # both were "an fx rate, and only an fx rate, names a currency": the operator who left an
    # fx rate's currency out read a rule, not what the rate lacked
    with pytest.raises(Invalid) as lacking:
        rates.check_scope(scope("fx", "0.011"))
    with pytest.raises(Invalid) as out_of_place:
        rates.check_scope(scope("earn", partner_id="aroma", currency="RUB"))
    assert (lacking.value.message, out_of_place.value.message) == (
        "an fx rate needs a currency",
        "only an fx rate has a currency",
    )


def test_a_field_breaking_two_rules_is_named_with_the_first_it_breaks():
    # -1.5 is neither whole nor positive: a threshold's value is first a whole number of points
    with pytest.raises(InvalidFields) as refused:
        rates.check_scope(scope("threshold", "-1.5", partner_id="aroma", min_amount=Decimal("100")))
    assert refused.value.by_field() == {"value": "a threshold's value is a whole number of points"}


@pytest.mark.parametrize(("written", "same_as"), [
    ("Straße", "STRASSE"),  # full case folding: ß is ss, where lower() keeps ß
    ("℃", "°c"),  # a compatibility form (the degree Celsius sign) composed, then folded
    ("  Coffee ", "coffee"),
    ("ｃｏｆｆｅｅ", "coffee"),  # fullwidth letters
])
def test_a_category_is_compared_by_its_caseless_form(written, same_as):
    assert rates.category_key(written) == rates.category_key(same_as) == same_as.casefold().strip()

