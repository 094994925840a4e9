"""A month of a five-partner coalition settled through the HTTP API, checked by hand (SPEC §7).

Everything is posted into the previous calendar month (monthly periods, UTC)
and that month is closed with ``POST /api/v1/settlements/{id}/close``. Every
expected figure below is worked out by hand from the SPEC rules and the
decisions recorded for the project:

* a pair line I → R is Σ points × v(t), burn reversals negative at the
  original burn's rate, rounded half-to-even to the cent once, after summing;
  own redemptions (I = R) are listed with value 0.00 and carry no money;
* fees = round_half_even(Σ points × fee rate of the issuing transaction), earn
  reversals reducing it by the points they recovered; ``coalition`` pays none;
* net = receivable − payable − fees; fx and liability use the rates in force
  at the last instant of the period; net_in_currency = round_half_even(net / fx).

Day ``dN hh:mm`` below means the first of the previous month (00:00 UTC) plus
N days and hh:mm; the month has at least 28 days, the latest day used is d27.

Partners (``coalition`` is seeded, EUR):

| id      | name               | currency | hold | earn                 |
|---------|--------------------|----------|------|----------------------|
| aroma   | Кофейня Арома      | RUB      | 0    | 0.1 pt/RUB, promo ×2 on "coffee" in [d0, d10) |
| skyair  | SkyAir             | EUR      | 0    | 2 pt/EUR, thresholds ≥500.00 → +100, ≥1000.00 → +500 |
| ironfit | IronFit Gym        | EUR      | 0    | 1 pt/EUR             |
| hotel   | Grand Hotel Praha  | CZK      | 7    | 0.2 pt/CZK           |
| sushi   | Sushi Kaito        | JPY      | 0    | 0.05 pt/JPY          |

Redemption: coalition-wide 0.01 EUR/pt, a new version 0.012 from d20;
skyair-specific 0.0125, a new version 0.0135 from d18. Fee: coalition-wide 0.0005 EUR/pt, hotel
0.001. FX: RUB 0.0110, a new version 0.016 from d15 and 0.02 from the first
instant of the current month (after the period: must not be used); CZK 0.04;
JPY 0.008.

Lots (member: transaction → points):

* anna  d1 09:00 aroma earn 5060.00 RUB coffee: floor(5060.00 × 0.1 × 2) = 1012 (LA)
* boris d2 09:00 aroma earn 1234.50 RUB food:   floor(123.45) = 123 (LB, no promo: food)
* chen  d2 12:00 skyair earn 1000.00 EUR: 1000 × 2 = 2000 + highest threshold 500 = 2500 (LC)
* dora  d3 09:00 hotel earn 25750.00 CZK: 25750 × 0.2 = 5150 (LD, available d10)
* fedor d4 09:00 ironfit earn 89.90 EUR: floor(89.90) = 89 (LF)
* fedor d4 10:00 coalition bonus 500 (LFB)
* vera  d7 09:00 aroma earn 200.00 RUB food: 20 (LV)
* gala  d10 08:00 sushi earn 3000 JPY: 150, posted with points_ttl_days 5 → expires d15 08:00 (LG)
* hana  d16 09:00 sushi earn 11000 JPY: 550 (LH)
* emil  d27 12:00 hotel earn 75.00 CZK: 15 (LE, available d34: still pending at period end)

Movements:

* anna  d3 10:00 burn 1010 at skyair: LA 1010 → aroma→skyair @0.0125
* anna  d4 11:00 burn 2 at skyair:    LA 2    → aroma→skyair @0.0125 (LA now 0)
* boris d5 10:00 burn 100 at ironfit: LB 100  → aroma→ironfit @0.01 (LB 23 left)
* boris d6 10:00 return 617.25 of 1234.50 RUB: floor(123 × 617.25 / 1234.50) = floor(61.5) = 61,
  LB holds 23 → 23 recovered, shortfall 38
* vera  d8 09:00 return 20.00 of 200.00 RUB: floor(20 × 20 / 200) = 2 recovered (LV 18 left)
* chen  d8 10:00 burn 500 at aroma: LC → skyair→aroma @0.01
* fedor d9 10:00 burn 550 at ironfit: LF (expires first) 89 own, LFB 461 → coalition→ironfit @0.01
* dora  d12 10:00 burn 1040 at skyair: LD → hotel→skyair @0.0125
* gala  d12 11:00 burn 60 at aroma: LG → sushi→aroma @0.01 (LG 90 left)
* dora  d13 10:00 skyair reverses 10 of that burn: hotel→skyair −10 @0.0125
* dora  d14 10:00 burn 2000 at ironfit: hotel→ironfit @0.01
* dora  d15 10:00 burn 120 at hotel: own redemption (LD 5150 − 1040 + 10 − 2000 − 120 = 2000 left)
* gala's LG expires d15 08:00 with 90 points (expiry job)
* hana  d17 10:00 burn 402 at skyair: LH → sushi→skyair @0.0125 (LH 148 left)
* dora  d18 10:00 burn 10 at skyair: LD → hotel→skyair @0.0135 (LD 1990 left)
* vera  d21 10:00 burn 10 at sushi: LV → aroma→sushi @0.012 (LV 8 left)
* chen  d22 10:00 burn 333 at aroma: skyair→aroma @0.012
* chen  d23 10:00 burn 400 at hotel: skyair→hotel @0.012
* chen  d24 10:00 hotel reverses 150 of that burn: skyair→hotel −150 @0.012 (LC 2500 − 1233 + 150 = 1417)
* fedor d25 10:00 burn 39 at sushi: LFB → coalition→sushi @0.012 (LFB 0 left)
"""

from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from coalition import auth, create_app, database_of
from coalition.api.settlements import NettingOut, PairLine, PartnerEntry, SettlementOut
from coalition.db import models
from coalition.services import expiry
from tests.conftest import Caller, copy_of
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    earn,
    expect,
    partner_entry,
    post,
    previous_month,
    statement_of,
)

PARTNERS = ("aroma", "coalition", "hotel", "ironfit", "skyair", "sushi")

# Pair lines, issuer → redeemer: (points, value in EUR).
PAIR_LINES = {
    # 1010 × 0.0125 = 12.625 and 2 × 0.0125 = 0.025; summed 12.650 → 12.65.
    # (Rounding each burn first would give 12.62 + 0.02 = 12.64: rounding is once per line.)
    ("aroma", "skyair"): (1012, "12.65"),
    # 100 × 0.01 = 1.00
    ("aroma", "ironfit"): (100, "1.00"),
    # 10 × 0.012 = 0.120 (d21: the 0.012 version is in force)
    ("aroma", "sushi"): (10, "0.12"),
    # 461 × 0.01 = 4.61
    ("coalition", "ironfit"): (461, "4.61"),
    # 39 × 0.012 = 0.468 → 0.47
    ("coalition", "sushi"): (39, "0.47"),
    # own redemption: 120 points, no money
    ("hotel", "hotel"): (120, "0.00"),
    # 2000 × 0.01 = 20.00
    ("hotel", "ironfit"): (2000, "20.00"),
    # 1040 × 0.0125 = 13.000, −10 × 0.0125 = −0.125 (reversal at the burn's rate),
    # 10 × 0.0135 = 0.135 (d18 version): 13.010 → 13.01.
    # (Rounding per rate, 12.875 → 12.88 and 0.135 → 0.14, would give 13.02.)
    ("hotel", "skyair"): (1040, "13.01"),
    # own redemption: 89 points, no money
    ("ironfit", "ironfit"): (89, "0.00"),
    # 500 × 0.01 = 5.000 (d8) + 333 × 0.012 = 3.996 (d22) = 8.996 → 9.00
    ("skyair", "aroma"): (833, "9.00"),
    # 400 × 0.012 = 4.80, −150 × 0.012 = −1.80 (reversal at the burn's rate): 3.00
    ("skyair", "hotel"): (250, "3.00"),
    # 60 × 0.01 = 0.60
    ("sushi", "aroma"): (60, "0.60"),
    # 402 × 0.0125 = 5.025 → half-even → 5.02 (2 is even: down; half-up would give 5.03)
    ("sushi", "skyair"): (402, "5.02"),
}

# receivable = Σ non-own lines where the partner redeems:
#   aroma   9.00 + 0.60                 = 9.60
#   coalition                            = 0.00
#   hotel   3.00                         = 3.00
#   ironfit 1.00 + 4.61 + 20.00          = 25.61
#   skyair  12.65 + 13.01 + 5.02         = 30.68
#   sushi   0.12 + 0.47                  = 0.59      Σ = 69.48
# payable = Σ non-own lines where the partner issued:
#   aroma   12.65 + 1.00 + 0.12          = 13.77
#   coalition 4.61 + 0.47                = 5.08
#   hotel   20.00 + 13.01                = 33.01
#   ironfit                              = 0.00
#   skyair  9.00 + 3.00                  = 12.00
#   sushi   0.60 + 5.02                  = 5.62      Σ = 69.48
# fees = round_half_even(Σ points × fee rate):
#   aroma   (1012 + 123 + 20 − 23 − 2) = 1130 × 0.0005 = 0.5650 → 0.56 (6 even: down)
#   coalition pays no fee                                = 0.00
#   hotel   (5150 + 15) = 5165 × 0.001 = 5.165 → 5.16 (6 even: down; half-up: 5.17)
#   ironfit 89 × 0.0005 = 0.0445 → 0.04
#   skyair  2500 × 0.0005 = 1.25
#   sushi   (150 + 550) = 700 × 0.0005 = 0.35
# net = receivable − payable − fees:
#   aroma   9.60 − 13.77 − 0.56  = −4.73
#   coalition 0.00 − 5.08 − 0.00 = −5.08
#   hotel   3.00 − 33.01 − 5.16  = −35.17
#   ironfit 25.61 − 0.00 − 0.04  = 25.57
#   skyair  30.68 − 12.00 − 1.25 = 17.43
#   sushi   0.59 − 5.62 − 0.35   = −5.38
#   Σ net = 43.00 − 50.36 = −7.36 = −Σ fees (0.56 + 5.16 + 0.04 + 1.25 + 0.35 = 7.36)
# net_in_currency = round_half_even(net / fx at the last instant of the period):
#   aroma   −4.73 / 0.016 = −295.625 → −295.62 (2 even); the 0.0110 version was replaced on
#           d15, the 0.02 version starts at the period end and is not in force at its last instant
#   hotel   −35.17 / 0.04 = −879.25
#   sushi   −5.38 / 0.008 = −672.5 → −672 (JPY has no minor unit; 672 even; half-up: −673)
#   EUR partners: fx 1, net unchanged.
# liability = points of the partner's lots live at the period end (available or pending,
# not expired) × coalition-wide redemption rate at the last instant (0.012):
#   aroma   LA 0 + LB 0 + LV 8 = 8         × 0.012 = 0.096  → 0.10
#   coalition LFB 0                        = 0.00
#   hotel   LD 1990 + LE 15 (pending) = 2005 × 0.012 = 24.06
#   ironfit LF 0                           = 0.00
#   skyair  LC 1417                        × 0.012 = 17.004 → 17.00
#   sushi   LG expired (not live) + LH 148 × 0.012 = 1.776  → 1.78
EXPECTED = {
    "aroma": {
        "currency": "RUB", "receivable": "9.60", "payable": "13.77", "fees": "0.56",
        "net": "-4.73", "fx_rate": "0.016", "net_in_currency": "-295.62",
        # issued 1012 + 123 + 20; redeemed there: skyair 833 + sushi 60;
        # reversed (recovered by returns) 23 + 2; shortfall 61 − 23 = 38
        "points_issued": 1155, "points_redeemed": 893, "points_reversed": 25,
        "shortfall_points": 38, "points_expired": 0, "late_count": 0,
        "liability_points": 8, "liability": "0.10",
    },
    "coalition": {
        "currency": "EUR", "receivable": "0.00", "payable": "5.08", "fees": "0.00",
        "net": "-5.08", "fx_rate": "1", "net_in_currency": "-5.08",
        "points_issued": 500, "points_redeemed": 0, "points_reversed": 0,
        "shortfall_points": 0, "points_expired": 0, "late_count": 0,
        "liability_points": 0, "liability": "0.00",
    },
    "hotel": {
        "currency": "CZK", "receivable": "3.00", "payable": "33.01", "fees": "5.16",
        "net": "-35.17", "fx_rate": "0.04", "net_in_currency": "-879.25",
        # issued 5150 + 15; redeemed there: skyair 250 + own 120
        "points_issued": 5165, "points_redeemed": 370, "points_reversed": 0,
        "shortfall_points": 0, "points_expired": 0, "late_count": 0,
        "liability_points": 2005, "liability": "24.06",
    },
    "ironfit": {
        "currency": "EUR", "receivable": "25.61", "payable": "0.00", "fees": "0.04",
        "net": "25.57", "fx_rate": "1", "net_in_currency": "25.57",
        # redeemed there: aroma 100 + coalition 461 + hotel 2000 + own 89
        "points_issued": 89, "points_redeemed": 2650, "points_reversed": 0,
        "shortfall_points": 0, "points_expired": 0, "late_count": 0,
        "liability_points": 0, "liability": "0.00",
    },
    "skyair": {
        "currency": "EUR", "receivable": "30.68", "payable": "12.00", "fees": "1.25",
        "net": "17.43", "fx_rate": "1", "net_in_currency": "17.43",
        # redeemed there: aroma 1012 + hotel 1040 + sushi 402
        "points_issued": 2500, "points_redeemed": 2454, "points_reversed": 0,
        "shortfall_points": 0, "points_expired": 0, "late_count": 0,
        "liability_points": 1417, "liability": "17.00",
    },
    "sushi": {
        "currency": "JPY", "receivable": "0.59", "payable": "5.62", "fees": "0.35",
        "net": "-5.38", "fx_rate": "0.008", "net_in_currency": "-672",
        # issued 150 + 550; redeemed there: aroma 10 + coalition 39; expired: gala's 90
        "points_issued": 700, "points_redeemed": 49, "points_reversed": 0,
        "shortfall_points": 0, "points_expired": 90, "late_count": 0,
        "liability_points": 148, "liability": "1.78",
    },
}

# Netting summary:
#   gross = Σ |value| of the 11 money-carrying lines = receivable total = 69.48
#   bilateral net = Σ over partner pairs of |I→R − R→I|:
#     aroma/ironfit 1.00; aroma/skyair |12.65 − 9.00| = 3.65; aroma/sushi |0.12 − 0.60| = 0.48;
#     coalition/ironfit 4.61; coalition/sushi 0.47; hotel/ironfit 20.00;
#     hotel/skyair |13.01 − 3.00| = 10.01; skyair/sushi 5.02
#     → 1.00 + 3.65 + 0.48 + 4.61 + 0.47 + 20.00 + 10.01 + 5.02 = 45.24
#   multilateral net = Σ |net| = 4.73 + 5.08 + 35.17 + 25.57 + 17.43 + 5.38 = 93.36
#   payments gross = 11 non-own lines with money; payments net = 6 partners with net ≠ 0
#   netting ratio = 1 − 93.36 / 69.48 = −0.34369… (fees make Σ|net| exceed the gross)
NETTING = {"gross": "69.48", "bilateral_net": "45.24", "multilateral_net": "93.36",
           "payments_gross": 11, "payments_net": 6}


def _post_month(operator, database, run_expiry_job: bool = True) -> str:
    """Set up the coalition, post the month's ledger, run the expiry job (unless told
    not to); returns the period id."""
    start, end, period_id = previous_month()
    assert expect(operator.get("/api/v1/settings"), 200)["period"] == "monthly"

    add_partner(operator, "aroma", "Кофейня Арома", "cafe", "RUB")
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_partner(operator, "ironfit", "IronFit Gym", "gym", "EUR")
    add_partner(operator, "hotel", "Grand Hotel Praha", "travel", "CZK", hold_days=7)
    add_partner(operator, "sushi", "Sushi Kaito", "cafe", "JPY")

    add_rate(operator, "earn", "0.1", partner_id="aroma")
    add_rate(operator, "promo", "2", partner_id="aroma", category="coffee",
             effective_from=at(start, 0, 0), effective_to=at(start, 10, 0))
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "threshold", "100", partner_id="skyair", min_amount="500.00")
    add_rate(operator, "threshold", "500", partner_id="skyair", min_amount="1000.00")
    add_rate(operator, "earn", "1", partner_id="ironfit")
    add_rate(operator, "earn", "0.2", partner_id="hotel")
    add_rate(operator, "earn", "0.05", partner_id="sushi")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "redemption", "0.012", effective_from=at(start, 20, 0))
    add_rate(operator, "redemption", "0.0125", partner_id="skyair")
    add_rate(operator, "redemption", "0.0135", partner_id="skyair", effective_from=at(start, 18, 0))
    add_rate(operator, "fee", "0.0005")
    add_rate(operator, "fee", "0.001", partner_id="hotel")
    add_rate(operator, "fx", "0.0110", currency="RUB")
    add_rate(operator, "fx", "0.016", currency="RUB", effective_from=at(start, 15, 0))
    add_rate(operator, "fx", "0.02", currency="RUB", effective_from=end.isoformat())
    add_rate(operator, "fx", "0.04", currency="CZK")
    add_rate(operator, "fx", "0.008", currency="JPY")

    def d(day, hour=9, minute=0):
        return at(start, day, hour, minute)

    assert earn(operator, "anna-1", "aroma", "anna", d(1), "5060.00", "RUB", category="coffee")["points"] == 1012
    assert earn(operator, "boris-1", "aroma", "boris", d(2), "1234.50", "RUB", category="food")["points"] == 123
    assert earn(operator, "chen-1", "skyair", "chen", d(2, 12), "1000.00", "EUR")["points"] == 2500
    assert earn(operator, "dora-1", "hotel", "dora", d(3), "25750.00", "CZK")["points"] == 5150
    burn(operator, "anna-b1", "skyair", "anna", d(3, 10), 1010)
    assert earn(operator, "fedor-1", "ironfit", "fedor", d(4), "89.90", "EUR")["points"] == 89
    post(operator, external_id="fedor-bonus", type="bonus", partner_id="coalition", member_id="fedor",
         occurred_at=d(4, 10), points=500, reason="referral")
    burn(operator, "anna-b2", "skyair", "anna", d(4, 11), 2)
    burn(operator, "boris-b1", "ironfit", "boris", d(5, 10), 100)
    boris_return = post(operator, external_id="boris-r1", type="earn_reversal", partner_id="aroma",
                        original_external_id="boris-1", occurred_at=d(6, 10), amount="617.25",
                        currency="RUB")
    assert (boris_return["points"], boris_return["shortfall_points"]) == (-23, 38)
    assert earn(operator, "vera-1", "aroma", "vera", d(7), "200.00", "RUB", category="food")["points"] == 20
    vera_return = post(operator, external_id="vera-r1", type="earn_reversal", partner_id="aroma",
                       original_external_id="vera-1", occurred_at=d(8), amount="20.00", currency="RUB")
    assert (vera_return["points"], vera_return["shortfall_points"]) == (-2, 0)
    burn(operator, "chen-b1", "aroma", "chen", d(8, 10), 500)
    burn(operator, "fedor-b1", "ironfit", "fedor", d(9, 10), 550)

    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 5}), 200)
    gala = earn(operator, "gala-1", "sushi", "gala", d(10, 8), "3000", "JPY")
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 365}), 200)
    assert gala["points"] == 150

    burn(operator, "dora-b1", "skyair", "dora", d(12, 10), 1040)
    burn(operator, "gala-b1", "aroma", "gala", d(12, 11), 60)
    post(operator, external_id="dora-rb1", type="burn_reversal", partner_id="skyair",
         original_external_id="dora-b1", occurred_at=d(13, 10), points=10)
    burn(operator, "dora-b2", "ironfit", "dora", d(14, 10), 2000)
    burn(operator, "dora-b3", "hotel", "dora", d(15, 10), 120)
    assert earn(operator, "hana-1", "sushi", "hana", d(16), "11000", "JPY")["points"] == 550
    burn(operator, "hana-b1", "skyair", "hana", d(17, 10), 402)
    burn(operator, "dora-b4", "skyair", "dora", d(18, 10), 10)
    burn(operator, "vera-b1", "sushi", "vera", d(21, 10), 10)
    burn(operator, "chen-b2", "aroma", "chen", d(22, 10), 333)
    burn(operator, "chen-b3", "hotel", "chen", d(23, 10), 400)
    post(operator, external_id="chen-rb1", type="burn_reversal", partner_id="hotel",
         original_external_id="chen-b3", occurred_at=d(24, 10), points=150)
    burn(operator, "fedor-b2", "sushi", "fedor", d(25, 10), 39)
    assert earn(operator, "emil-1", "hotel", "emil", d(27, 12), "75.00", "CZK")["points"] == 15

    # Only gala's lot (expires d15 08:00) is due; it still holds 150 − 60 = 90 points.
    if run_expiry_job:
        assert expiry.expire_all(database, datetime.now(UTC)) == 1
    return period_id


@pytest.fixture(scope="module")
def world(template, tmp_path_factory):
    """The month posted once, its draft read, then closed: every test here reads this one world."""
    with _service(template, tmp_path_factory.mktemp("scenario")) as (operator, database):
        month = _post_month(operator, database)
        draft = operator.get(f"/api/v1/settlements/{month}")
        closed = operator.post(f"/api/v1/settlements/{month}/close")
        yield SimpleNamespace(operator=operator, database=database, month=month, draft=expect(draft, 200),
                              draft_bytes=draft.data, settled=expect(closed, 200), closed_bytes=closed.data)


@contextmanager
def _service(template, directory):
    """An operator's client and the database of a fresh copy of the migrated template."""
    with copy_of(template, directory) as url:
        app = create_app({"DATABASE_URL": url, "TESTING": True})
        database = database_of(app)
        _, key = database.run(lambda session: auth.create_key(session, "operator"))
        try:
            yield Caller(app.test_client(), key), database
        finally:
            database.dispose()


@pytest.fixture(scope="module")
def operator(world):
    return world.operator


@pytest.fixture(scope="module")
def database(world):
    return world.database


@pytest.fixture(scope="module")
def month(world) -> str:
    return world.month


@pytest.fixture(scope="module")
def settled(world) -> dict:
    return world.settled


def test_close_answers_a_final_settlement_of_the_previous_month_in_eur(settled, month):
    assert (settled["period_id"], settled["status"], settled["base_currency"]) == (month, "final", "EUR")


def test_every_partner_including_coalition_is_settled(settled):
    assert sorted(e["partner_id"] for e in settled["partners"]) == list(PARTNERS)


def test_pair_lines_are_summed_then_rounded_half_even_once(settled):
    lines = {(line["issuer_id"], line["redeemer_id"]): (line["points"], line["value"])
             for line in settled["pair_lines"]}
    assert lines == PAIR_LINES


def test_pair_lines_are_listed_once_per_pair(settled):
    pairs = [(line["issuer_id"], line["redeemer_id"]) for line in settled["pair_lines"]]
    assert len(pairs) == len(set(pairs)) == len(PAIR_LINES)


def test_own_redemptions_are_flagged_and_carry_no_money(settled):
    own = [(line["issuer_id"], line["points"], line["value"]) for line in settled["pair_lines"]
           if line["own_redemption"]]
    assert sorted(own) == [("hotel", 120, "0.00"), ("ironfit", 89, "0.00")]
    assert all(not line["own_redemption"] for line in settled["pair_lines"]
               if line["issuer_id"] != line["redeemer_id"])


MONEY = ("currency", "receivable", "payable", "fees", "net", "net_in_currency")
POINTS = ("points_issued", "points_redeemed", "points_reversed", "shortfall_points",
          "points_expired", "late_count")


def _figures(entry: dict, fields: tuple[str, ...]) -> dict:
    return {field: entry[field] for field in fields}


@pytest.mark.parametrize("partner_id", PARTNERS)
def test_partner_money_figures_match_hand_computation(settled, partner_id):
    assert _figures(partner_entry(settled, partner_id), MONEY) == _figures(EXPECTED[partner_id], MONEY)


@pytest.mark.parametrize("partner_id", PARTNERS)
def test_fx_rate_is_the_one_in_force_at_the_last_instant_of_the_period(settled, partner_id):
    assert Decimal(partner_entry(settled, partner_id)["fx_rate"]) == Decimal(EXPECTED[partner_id]["fx_rate"])


@pytest.mark.parametrize("partner_id", PARTNERS)
def test_partner_point_figures_match_hand_computation(settled, partner_id):
    assert _figures(partner_entry(settled, partner_id), POINTS) == _figures(EXPECTED[partner_id], POINTS)


@pytest.mark.parametrize("partner_id", PARTNERS)
def test_outstanding_liability_counts_available_and_pending_points_at_period_end(settled, partner_id):
    entry = partner_entry(settled, partner_id)
    expected = EXPECTED[partner_id]
    assert (entry["liability_points"], entry["liability"]) == (
        expected["liability_points"], expected["liability"])


@pytest.mark.parametrize("partner_id", PARTNERS)
def test_liability_rolls_forward_from_the_periods_points(settled, partner_id):
    # docs/reconciling.md: nothing was outstanding before this first month, so what is
    # outstanding at its end is what was issued, less returned, spent (own included), expired;
    # aroma: 1155 − 25 − (1012 + 100 + 10) − 0 = 8, vera's LV
    entry = partner_entry(settled, partner_id)
    spent = sum(line["points"] for line in settled["pair_lines"] if line["issuer_id"] == partner_id)
    assert entry["liability_points"] == (
        entry["points_issued"] - entry["points_reversed"] - spent - entry["points_expired"])


def test_receivables_and_payables_sum_to_zero(settled):
    total = sum(Decimal(e["receivable"]) - Decimal(e["payable"]) for e in settled["partners"])
    assert total == 0


def test_sum_of_nets_is_minus_sum_of_fees(settled):
    # −7.36 = −(0.56 + 0.00 + 5.16 + 0.04 + 1.25 + 0.35)
    assert sum(Decimal(e["net"]) for e in settled["partners"]) == Decimal("-7.36")
    assert sum(Decimal(e["fees"]) for e in settled["partners"]) == Decimal("7.36")


def test_netting_summary_matches_hand_computation(settled):
    assert {field: settled["netting"][field] for field in NETTING} == NETTING


def test_netting_ratio_is_one_minus_multilateral_over_gross(settled):
    # 1 − 93.36 / 69.48 = −0.343696…
    ratio = Decimal(settled["netting"]["netting_ratio"])
    assert abs(ratio - (1 - Decimal("93.36") / Decimal("69.48"))) < Decimal("0.0001")


def test_draft_before_close_shows_the_same_figures(world):
    assert (world.draft["status"], world.draft["missing_fx"]) == ("draft", [])
    draft = {key: value for key, value in world.draft.items() if key != "missing_fx"}
    assert {**draft, "status": "final"} == world.settled


def test_a_closed_settlement_is_answered_as_stored_by_its_close_a_read_and_a_close_again(world, month):
    """SPEC §7: a closed period's settlement is stored once and never changes. The close, a read
    and a second close answer the stored bytes (canonical JSON: keys sorted, no spaces, names as
    UTF-8), which the answer's schema would dump unchanged: every field it declares, at every
    level, with the same value and type (a draft's missing_fx aside)."""
    stored = world.database.run_reading(lambda session: session.get(models.Period, month).settlement)
    read = world.operator.get(f"/api/v1/settlements/{month}")
    again = world.operator.post(f"/api/v1/settlements/{month}/close")
    assert world.closed_bytes == read.data == again.data == stored.encode()
    assert [answer.headers.getlist("Content-Type") for answer in (read, again)] == [["application/json"]] * 2
    assert read.headers["Cache-Control"] == "no-store"  # a settlement is kept by no cache, as before
    assert "Кофейня Арома".encode() in read.data
    document = read.get_json()
    assert document == SettlementOut().dump(document) == world.settled
    assert sorted(document) == sorted(set(SettlementOut().fields) - {"missing_fx"})
    assert {tuple(sorted(entry)) for entry in document["partners"]} == {tuple(sorted(PartnerEntry().fields))}
    assert {tuple(sorted(line)) for line in document["pair_lines"]} == {tuple(sorted(PairLine().fields))}
    assert sorted(document["netting"]) == sorted(NettingOut().fields)
    # hotel's own fee rate on dora's 5150 and emil's 15 points: 5165 × 0.001 = 5.165
    assert partner_entry(document, "hotel")["fee_lines"] == [
        {"fee_rate": "0.001", "points": 5165, "exact_fees": "5.165"}]


def test_a_draft_is_still_written_by_its_schema(world):
    """A draft is computed for each read and dumped through the answer's schema, as before: its
    fields in the schema's order, missing_fx last, characters outside ASCII as \\u escapes."""
    assert list(world.draft) == list(SettlementOut().fields)
    assert list(world.draft["partners"][0]) == list(PartnerEntry().fields)
    assert "Кофейня Арома".encode() not in world.draft_bytes
    assert b"\\u041a\\u043e\\u0444" in world.draft_bytes  # Коф


def test_the_close_expires_what_the_job_has_not_yet_and_settles_the_same(
        world, template, tmp_path_factory):
    """The same month closed without the expiry job having run: gala's 90 points
    still count as sushi's breakage in it (SPEC §7), every figure is as worked
    out above, and the expiry lands in the month itself, not late."""
    with _service(template, tmp_path_factory.mktemp("no-expiry-job")) as (operator, database):
        month = _post_month(operator, database, run_expiry_job=False)
        assert partner_entry(close(operator, month), "sushi")["points_expired"] == 90
        assert expect(operator.get(f"/api/v1/settlements/{month}"), 200) == world.settled
        items = expect(operator.get("/api/v1/transactions", query_string={"type": "expiry"}),
                       200)["items"]
        assert [(t["member_id"], t["points"], t["period_id"], t["late"]) for t in items] == [
            ("gala", -90, month, False)]
        # recorded as the close is dated, not later: the close's record holds all it wrote
        (closed,) = [p for p in expect(operator.get("/api/v1/periods"), 200) if p["id"] == month]
        assert items[0]["recorded_at"] == closed["closed_at"]
        assert expiry.expire_all(database, datetime.now(UTC)) == 0


def test_expired_points_are_written_once_by_the_expiry_job(operator, database, month):
    assert expiry.expire_all(database, datetime.now(UTC)) == 0
    items = expect(operator.get("/api/v1/transactions", query_string={"type": "expiry"}), 200)["items"]
    assert [(t["partner_id"], t["member_id"], t["points"], t["period_id"]) for t in items] == [
        ("sushi", "gala", -90, month)]


def test_statements_are_numbered_in_partner_id_order(operator, settled, month):
    numbers = {statement_of(operator, partner_id, month)["number"]: partner_id for partner_id in PARTNERS}
    assert numbers == {f"{month}-{index:04d}": partner_id
                       for index, partner_id in enumerate(PARTNERS, start=1)}


@pytest.mark.parametrize("partner_id", PARTNERS)
def test_statement_summary_is_the_partners_settlement_entry(operator, settled, month, partner_id):
    statement = statement_of(operator, partner_id, month)
    assert statement["summary"] == partner_entry(settled, partner_id)
    assert (statement["currency"], statement["base_currency"], statement["status"]) == (
        EXPECTED[partner_id]["currency"], "EUR", "final")


def test_aroma_statement_lists_its_counterparties_each_way(operator, settled, month):
    statement = statement_of(operator, "aroma", month)
    assert statement["partner_name"] == "Кофейня Арома"
    assert statement["counterparties"] == [
        # aroma → ironfit 100 pts 1.00; nothing back
        {"partner_id": "ironfit", "name": "IronFit Gym", "points_in": 0, "value_in": "0.00",
         "points_out": 100, "value_out": "1.00", "net": "-1.00"},
        # skyair → aroma 833 pts 9.00; aroma → skyair 1012 pts 12.65; 9.00 − 12.65 = −3.65
        {"partner_id": "skyair", "name": "SkyAir", "points_in": 833, "value_in": "9.00",
         "points_out": 1012, "value_out": "12.65", "net": "-3.65"},
        # sushi → aroma 60 pts 0.60; aroma → sushi 10 pts 0.12; 0.60 − 0.12 = 0.48
        {"partner_id": "sushi", "name": "Sushi Kaito", "points_in": 60, "value_in": "0.60",
         "points_out": 10, "value_out": "0.12", "net": "0.48"},
    ]


def test_counterparties_exclude_own_redemptions(operator, settled, month):
    statement = statement_of(operator, "hotel", month)
    assert statement["counterparties"] == [
        # hotel → ironfit 2000 pts 20.00
        {"partner_id": "ironfit", "name": "IronFit Gym", "points_in": 0, "value_in": "0.00",
         "points_out": 2000, "value_out": "20.00", "net": "-20.00"},
        # skyair → hotel 250 pts 3.00; hotel → skyair 1040 pts 13.01; 3.00 − 13.01 = −10.01
        {"partner_id": "skyair", "name": "SkyAir", "points_in": 250, "value_in": "3.00",
         "points_out": 1040, "value_out": "13.01", "net": "-10.01"},
    ]


def test_closed_month_has_no_late_items(operator, settled, month):
    assert all(statement_of(operator, p, month)["late_items"] == [] for p in PARTNERS)
