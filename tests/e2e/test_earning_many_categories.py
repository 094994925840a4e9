"""Earning at a partner with a rate per category (SPEC §5, §6): a supermarket's aisles.

``market`` (EUR) earns 1 point per EUR without a category, and each of its 300 aisles
its own rate: 2 points per EUR for an even aisle, 3 for an odd one. Aisle 0007 has a
newer version (5, from 20 days ago) and aisle 0009 a correction of the same start
(4, added later, spelled "AISLE 0009"); aisle 0217 has a promo ×2 in force, aisle 0218
one that ended 50 days ago; a purchase of 100 EUR or more adds a threshold's 40 points.
``corner`` has an aisle 0217 of its own at 10, which is not market's. Every rate is
effective from 200 days ago unless said; purchases are 3 days ago.

A purchase is looked up among its own aisle's versions and the category-less ones
(Catalog.rates_for_purchase): a category written another way, or with no rate of its
own, must still find what the rules choose among all of them.
"""

import pytest

from tests.conftest import days_ago
from tests.e2e.helpers import add_partner, add_rate, expect, post

AISLES = 300


@pytest.fixture
def market(operator):
    add_partner(operator, "market", "EUR", "shop")
    add_partner(operator, "corner", "EUR", "shop")
    add_rate(operator, "earn", "1", partner_id="market")
    for number in range(AISLES):
        add_rate(operator, "earn", "3" if number % 2 else "2", partner_id="market",
                 category=f"Aisle {number:04d}")
    add_rate(operator, "earn", "5", partner_id="market", category="Aisle 0007",
             effective_from=days_ago(20))
    add_rate(operator, "earn", "4", partner_id="market", category="AISLE 0009")
    add_rate(operator, "promo", "2", partner_id="market", category="Aisle 0217",
             effective_from=days_ago(10), effective_to=days_ago(-10))
    add_rate(operator, "promo", "2", partner_id="market", category="Aisle 0218",
             effective_from=days_ago(100), effective_to=days_ago(50))
    add_rate(operator, "threshold", "40", partner_id="market", min_amount="100")
    add_rate(operator, "earn", "10", partner_id="corner", category="Aisle 0217")
    return operator


# (category as the till sends it, amount, points worked out by hand)
PURCHASES = [
    ("aisle 0217", "10.00", 60),  # odd aisle 3 × 10 EUR × promo 2
    ("\uff21\uff29\uff33\uff2c\uff25\u3000\uff10\uff12\uff11\uff18", "10.00", 20),  # fullwidth "AISLE 0218": 2 × 10, promo over
    ("Aisle 0007", "10.00", 50),  # the newer version: 5 × 10
    (" aisle 0009 ", "10.00", 40),  # the correction added later: 4 × 10
    ("Aisle 0150", "10.00", 20),  # even aisle: 2 × 10
    ("Aisle 0299", "100.00", 340),  # odd aisle 3 × 100, and the threshold's 40
    ("Bakery", "10.00", 10),  # no rate of its own: the category-less 1 × 10
    (None, "25.00", 25),  # no category: 1 × 25
]


def _buy(till, external_id: str, amount: str, category: str | None) -> int:
    """The points an earn of ``amount`` EUR at market in ``category`` is credited."""
    body = {"external_id": external_id, "type": "earn", "member_id": "m1", "partner_id": "market",
            "occurred_at": days_ago(3), "amount": amount, "currency": "EUR"}
    if category is not None:
        body["category"] = category
    return expect(post(till, **body))["points"]


def test_a_purchase_earns_its_own_aisle_s_rate_however_the_till_writes_it(market):
    earned = [_buy(market, f"till-{number}", amount, category)
              for number, (category, amount, _) in enumerate(PURCHASES)]
    assert earned == [points for _, _, points in PURCHASES]


def test_each_aisle_earns_its_own_rate_in_turn(market):
    # every seventh aisle from 0 to 294: even 2 × 10 EUR = 20 points, odd 3 × 10 = 30;
    # 0007 its newer version's 5 × 10 = 50, 0217 with its promo 3 × 10 × 2 = 60
    earned = {number: _buy(market, f"till-{number}", "10.00", f"aisle {number:04d}")
              for number in range(0, AISLES, 7)}
    special = {7: 50, 217: 60}
    assert earned == {number: special.get(number, 30 if number % 2 else 20)
                      for number in range(0, AISLES, 7)}
