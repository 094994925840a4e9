"""What ledger rows add to their period's totals, worked by hand."""

from decimal import Decimal
from types import SimpleNamespace

from coalition.db import period_totals
from coalition.domain import totals

P = "2026-10"
FEE = Decimal("0.001")
RATE = Decimal("0.01")


def transaction(type, partner_id, points, fee_rate=None, shortfall_points=0, late=False):
    return SimpleNamespace(type=type, partner_id=partner_id, points=points, fee_rate=fee_rate,
                           shortfall_points=shortfall_points, late=late, period_id=P)


def allocation(type, issuer_id, redeemer_id, points, value_rate=RATE):
    return SimpleNamespace(type=type, issuer_id=issuer_id, redeemer_id=redeemer_id, points=points,
                           value_rate=value_rate, period_id=P)


def test_a_mixed_chunk_adds_up_as_by_hand():
    redeemed, activity = totals.added(
        [
            transaction("earn", "alpha", 100, FEE),
            transaction("bonus", "coalition", 50),
            transaction("earn_reversal", "alpha", -30, FEE, shortfall_points=5, late=True),
            transaction("expiry", "alpha", -20),
            transaction("burn", "beta", -40),
            transaction("burn_reversal", "beta", 10),
        ],
        [
            allocation("burn", "alpha", "beta", -25),
            allocation("burn", "coalition", "beta", -15),
            allocation("burn_reversal", "alpha", "beta", 10),
            allocation("expiry", "alpha", "alpha", -20, value_rate=None),
            allocation("earn_reversal", "alpha", "alpha", -30, value_rate=None),
        ],
    )
    # 25 − 10 alpha points net redeemed at beta; the bonus's 15; expiries and returns redeem nothing
    assert redeemed == {(P, "alpha", "beta", RATE): 15, (P, "coalition", "beta", RATE): 15}
    # (issued, reversed, shortfall, expired, late) by partner and fee rate
    assert activity == {
        (P, "alpha", FEE): (100, 30, 5, 0, 1),
        (P, "coalition", None): (50, 0, 0, 0, 0),
        (P, "alpha", None): (0, 0, 0, 20, 0),
    }  # beta's burn and its reversal add no activity


def test_rows_of_one_key_are_summed_and_periods_kept_apart():
    later = transaction("earn", "alpha", 7, FEE)
    later.period_id = "2026-11"
    _, activity = totals.added(
        [transaction("earn", "alpha", 100, FEE), transaction("earn", "alpha", 1, FEE), later], []
    )
    assert activity == {(P, "alpha", FEE): (101, 0, 0, 0, 0), ("2026-11", "alpha", FEE): (7, 0, 0, 0, 0)}


def test_the_fee_is_due_on_points_issued_less_points_returned():
    assert totals.PartnerActivity(100, 30, 5, 0, 1).fee_base == 70


class _Queued:
    """Stands in for :class:`coalition.db.writes.Writes`: the rows queued, table by table."""

    def __init__(self):
        self.rows = {}

    def insert(self, table, columns, conflict):
        self.rows[table.name] = list(zip(*columns.values()))


def test_the_totals_rows_are_queued_in_the_order_of_their_keys():
    # two units of work that add to the same counters in different orders could each hold a
    # row the other waits for (period_totals: rows are added in key order); these rows come
    # in the reverse of it. Pairs by (period, issuer, redeemer, rate); partners by (period,
    # partner, then no fee rate first, as the unique index's coalesce(fee_rate, -1) sorts,
    # then rates ascending)
    writes = _Queued()
    period_totals.add(
        writes,
        [
            transaction("earn", "zeta", 5, FEE),
            transaction("earn", "alpha", 7, Decimal("0.002")),
            transaction("earn", "alpha", 3, FEE),
            transaction("bonus", "alpha", 2),
        ],
        [allocation("burn", "zeta", "alpha", -4), allocation("burn", "alpha", "zeta", -6)],
    )
    pairs = [row[1:3] for row in writes.rows["pair_totals"]]
    assert pairs == [("alpha", "zeta"), ("zeta", "alpha")]
    partners = [row[1:3] for row in writes.rows["partner_totals"]]
    assert partners == [("alpha", None), ("alpha", FEE), ("alpha", Decimal("0.002")), ("zeta", FEE)]
