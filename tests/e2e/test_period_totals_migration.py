"""Migration 0004 counts a ledger written before it into the period totals.

The small month of ``settlement_world`` (figures worked out in its docstring)
is posted through the API. Its period totals are then emptied, which the
draft settlement must show, and counted again by the migration's own
statements, as an upgrade over an existing ledger would: the draft must come
back with the hand-worked figures.
"""

from sqlalchemy import delete, text

from coalition.db import models
from tests.e2e.settlement_world import expect, small_month
from tests.migrations import migration


def _figures(operator, period_id):
    draft = expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)
    lines = {(line["issuer_id"], line["redeemer_id"]): (line["points"], line["value"]) for line in draft["pair_lines"]}
    partners = {entry["partner_id"]: (entry["points_issued"], entry["fees"], entry["net"]) for entry in draft["partners"]}
    return lines, partners


def test_the_migration_counts_a_ledger_written_before_it(operator, database):
    period_id = small_month(operator)
    hand_worked = (
        {("skyair", "aroma"): (2345, "23.45"), ("aroma", "skyair"): (67, "0.67")},
        {"aroma": (100, "0.10", "22.68"), "skyair": (2468, "2.47", "-25.25"), "coalition": (0, "0.00", "0.00")},
    )
    assert _figures(operator, period_id) == hand_worked

    with database.transaction() as session:
        session.execute(delete(models.PairTotal))
        session.execute(delete(models.PartnerTotal))
    emptied_lines, emptied_partners = _figures(operator, period_id)
    assert emptied_lines == {}
    assert {issued for issued, _, _ in emptied_partners.values()} == {0}

    counts = migration("0004_period_totals.py")
    with database.transaction() as session:
        session.execute(text(counts.COUNT_PAIRS))
        session.execute(text(counts.COUNT_PARTNERS))
    assert _figures(operator, period_id) == hand_worked
