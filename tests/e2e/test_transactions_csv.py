"""GET /api/v1/transactions/csv: the listing's transactions as a file, a row per points movement.

The ledger of :func:`ledger` is worked by hand (rates of tests/e2e/helpers.py: aroma 0.1
point per RUB, skyair 2 points per EUR; hold 0 days; both lots of m1 expire 365 days after
they were earned, so a burn takes the older first):

| # | posting                                  | rows: lot of, points                  |
|---|------------------------------------------|---------------------------------------|
| 1 | e1 aroma earn m1 1000.00 RUB             | aroma +100 (× 0.1)                    |
| 2 | e2 skyair earn m1 25.00 EUR              | skyair +50 (× 2)                      |
| 3 | b1 aroma burn m1 120                     | aroma −100, skyair −20                |
| 4 | r1 aroma burn_reversal of b1, 30 points  | skyair +20, aroma +10 (newest first)  |
| 5 | x1 skyair earn_reversal of e2, 10.00 EUR | skyair −20 (50 × 10 / 25)             |
| 6 | g1 coalition bonus m2, 7 points          | coalition +7                          |

m1 ends with 100 + 50 − 120 + 30 − 20 = 40 points, and the file's rows of m1 add up to that.
"""

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from coalition.api import transactions
from coalition.db import Unavailable
from coalition.services import queries
from tests.conftest import days_ago
from tests.e2e.helpers import (
    add_partner,
    add_rate,
    balance,
    bonus,
    burn,
    burn_reversal,
    earn,
    earn_reversal,
    expect,
)

EXPORT = "/api/v1/transactions/csv"
HEADER = [
    "transaction_id", "external_id", "type", "partner_id", "member_id", "occurred_at",
    "recorded_at", "period_id", "late", "amount", "currency", "category", "reason",
    "original_id", "rate_ids", "lot_id", "issuer_id", "points", "shortfall_points",
    "available_at", "expires_at", "key_id",
]
WORKED = [  # (external_id, type, partner, issuer of the lot moved, points)
    ("e1", "earn", "aroma", "aroma", 100),
    ("e2", "earn", "skyair", "skyair", 50),
    ("b1", "burn", "aroma", "aroma", -100),
    ("b1", "burn", "aroma", "skyair", -20),
    ("r1", "burn_reversal", "aroma", "skyair", 20),
    ("r1", "burn_reversal", "aroma", "aroma", 10),
    ("x1", "earn_reversal", "skyair", "skyair", -20),
    ("g1", "bonus", "coalition", "coalition", 7),
]


@pytest.fixture
def ledger(coalition):
    """The postings of the module's table, by external id."""
    posted = {
        "e1": earn(coalition, "e1", "m1", "1000.00", occurred_at=days_ago(5)),
        "e2": earn(coalition, "e2", "m1", "25.00", partner_id="skyair", occurred_at=days_ago(4)),
        "b1": burn(coalition, "b1", "m1", 120, occurred_at=days_ago(3)),
        "r1": burn_reversal(coalition, "r1", "b1", occurred_at=days_ago(2), points=30),
        "x1": earn_reversal(coalition, "x1", "e2", partner_id="skyair", occurred_at=days_ago(2),
                            amount="10.00"),
        "g1": bonus(coalition, "g1", "m2", 7),
    }
    return {external_id: expect(response) for external_id, response in posted.items()}


def rows(response) -> list[dict]:
    """The file's rows by column, after checking it is a CSV download with the header."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in table[1:]]


def moved(found: list[dict]) -> list[tuple]:
    return [(r["external_id"], r["type"], r["partner_id"], r["issuer_id"], int(r["points"])) for r in found]


def test_a_row_per_points_movement_in_posting_order(coalition, ledger):
    found = rows(coalition.get(EXPORT))
    assert moved(found) == WORKED
    by_lot = {row["issuer_id"]: row["lot_id"] for row in found if row["type"] == "earn"}
    assert [row["lot_id"] for row in found if row["external_id"] in ("b1", "r1", "x1")] == [
        by_lot["aroma"], by_lot["skyair"], by_lot["skyair"], by_lot["aroma"], by_lot["skyair"]
    ]
    assert [row["transaction_id"] for row in found] == [
        str(ledger[external_id]["id"]) for external_id, *_ in WORKED
    ]


def test_each_row_shows_its_transaction_as_the_api_does(coalition, ledger):
    found = {row["external_id"]: row for row in rows(coalition.get(EXPORT))}
    earned, returned = found["e1"], found["x1"]
    shown = ledger["e1"]
    assert earned["amount"] == "1000.00" and earned["currency"] == "RUB"
    assert earned["occurred_at"] == shown["occurred_at"]
    assert earned["expires_at"] == shown["expires_at"] and earned["available_at"] == shown["available_at"]
    assert earned["rate_ids"] == " ".join(map(str, shown["rate_ids"])) != ""
    assert earned["late"] == "false" and earned["period_id"] == shown["period_id"]
    assert returned["original_id"] == str(ledger["e2"]["id"]) and returned["amount"] == "10.00"
    assert found["g1"]["reason"] == "referral" and found["g1"]["amount"] == ""


def test_a_members_rows_add_up_to_the_balance(coalition, ledger):
    found = rows(coalition.get(EXPORT, query_string={"member_id": "m1"}))
    assert {row["member_id"] for row in found} == {"m1"}
    assert sum(int(row["points"]) for row in found) == 40 == balance(coalition, "m1")["available"]


def test_a_periods_burn_rows_by_issuer_and_redeemer_are_its_pair_lines_points(coalition, ledger):
    period = ledger["b1"]["period_id"]
    found = rows(coalition.get(EXPORT, query_string={"period_id": period}))
    summed = defaultdict(int)
    for row in found:
        if row["type"] in ("burn", "burn_reversal"):
            summed[row["issuer_id"], row["partner_id"]] -= int(row["points"])
    draft = expect(coalition.get(f"/api/v1/settlements/{period}"), 200)
    lines = {(line["issuer_id"], line["redeemer_id"]): line["points"] for line in draft["pair_lines"]}
    # the burn of 120 less its reversal of 30: aroma's own 100 − 10, skyair's 20 − 20
    assert dict(summed) == {("aroma", "aroma"): 90, ("skyair", "aroma"): 0} == lines


def test_a_return_that_finds_its_lot_spent_is_one_row_of_no_points(coalition):
    expect(earn(coalition, "e9", "m9", "500.00", occurred_at=days_ago(4)))  # 50 points
    expect(burn(coalition, "b9", "m9", 50, partner_id="skyair", occurred_at=days_ago(3)))
    expect(earn_reversal(coalition, "x9", "e9", amount="500.00"))
    [returned] = rows(coalition.get(EXPORT, query_string={"type": "earn_reversal"}))
    assert returned["lot_id"] == "" and returned["points"] == "0"
    assert returned["shortfall_points"] == "50"


def test_a_late_posting_is_shown_late_in_the_period_it_landed_in(coalition):
    add_rate(coalition, "fx", "0.0125", currency="RUB")
    noon = (datetime.now(UTC) - timedelta(days=40)).replace(hour=12, minute=0, second=0, microsecond=0)
    closed = expect(earn(coalition, "e-old", "m7", "100.00", occurred_at=noon.isoformat()))["period_id"]
    expect(coalition.post(f"/api/v1/settlements/{closed}/close"), 200)
    later = (noon + timedelta(hours=1)).isoformat()  # the same day: in the period just closed
    expect(earn(coalition, "e-late", "m7", "200.00", occurred_at=later))
    found = {row["external_id"]: row for row in rows(coalition.get(EXPORT, query_string={"member_id": "m7"}))}
    assert (found["e-old"]["period_id"], found["e-old"]["late"]) == (closed, "false")
    assert found["e-late"]["period_id"] != closed and found["e-late"]["late"] == "true"
    assert found["e-late"]["points"] == "20"  # 200.00 RUB × 0.1


def test_a_partner_key_gets_its_own_transactions_only(coalition, ledger, make_key):
    till = make_key("partner", "aroma")
    assert moved(rows(till.get(EXPORT))) == [row for row in WORKED if row[2] == "aroma"]
    refused = till.get(EXPORT, query_string={"partner_id": "skyair"})
    assert refused.status_code == 403 and refused.get_json()["code"] == 403


def test_finance_bound_to_a_partner_gets_that_partners_and_finance_everyones(coalition, ledger, make_key):
    assert moved(rows(make_key("finance", "skyair").get(EXPORT))) == [
        row for row in WORKED if row[2] == "skyair"
    ]
    assert moved(rows(make_key("finance").get(EXPORT))) == WORKED


def test_the_file_is_the_same_read_a_page_at_a_time(coalition, ledger, monkeypatch):
    whole = coalition.get(EXPORT).get_data()
    monkeypatch.setattr(transactions, "EXPORT_PAGE", 2)
    assert coalition.get(EXPORT).get_data() == whole
    assert whole.count(b"transaction_id") == 1


@pytest.mark.parametrize("page, in_memory", [(2, transactions.SPOOLED_IN_MEMORY), (1000, 100)])
def test_over_http_1_0_the_file_is_sent_whole_with_its_length(coalition, ledger, monkeypatch, page, in_memory):
    """HTTP/1.0 has no chunks: a body without a length ends with its connection, so one
    cut short would look whole. The file is kept in memory, or past ``in_memory`` bytes
    in a temporary file."""
    streamed = coalition.get(EXPORT)
    assert "Content-Length" not in streamed.headers  # HTTP/1.1: chunked, as it is read
    monkeypatch.setattr(transactions, "EXPORT_PAGE", page)
    monkeypatch.setattr(transactions, "SPOOLED_IN_MEMORY", in_memory)
    with coalition.get(EXPORT, environ_overrides={"SERVER_PROTOCOL": "HTTP/1.0"}) as whole:
        assert whole.status_code == 200 and whole.get_data() == streamed.get_data()
        assert whole.headers["Content-Length"] == str(len(whole.get_data()))
        assert whole.headers["Content-Disposition"] == streamed.headers["Content-Disposition"]


def test_over_http_1_0_a_database_gone_before_the_last_page_is_a_503_and_no_file(coalition, ledger,
                                                                               monkeypatch, caplog):
    monkeypatch.setattr(transactions, "EXPORT_PAGE", 2)
    listed = queries.list_transactions

    def gone_after_the_first_page(session, principal, filters, paging):
        if paging.cursor is not None:
            raise Unavailable("the database cannot be reached (a test)")
        return listed(session, principal, filters, paging)

    monkeypatch.setattr(queries, "list_transactions", gone_after_the_first_page)
    refused = coalition.get(EXPORT, environ_overrides={"SERVER_PROTOCOL": "HTTP/1.0"})
    assert refused.status_code == 503 and refused.is_json
    assert refused.get_json()["reason"] == "database_unavailable"
    assert "stopped a transactions export short" not in caplog.text  # nothing was sent


def test_its_name_says_what_it_holds(coalition, ledger, make_key):
    period = ledger["b1"]["period_id"]
    named = coalition.get(EXPORT, query_string={"period_id": period, "partner_id": "skyair"})
    assert named.headers["Content-Disposition"] == (
        f'attachment; filename="coalition-transactions-{period}-skyair.csv"'
    )
    assert make_key("partner", "aroma").get(EXPORT).headers["Content-Disposition"] == (
        'attachment; filename="coalition-transactions-aroma.csv"'
    )


def test_nothing_selected_is_the_header_alone(coalition, ledger):
    assert rows(coalition.get(EXPORT, query_string={"member_id": "nobody"})) == []


@pytest.mark.parametrize(
    "query, field",
    [({"type": "refund"}, "type"), ({"from": "yesterday"}, "from"), ({"period_id": "2026-13"}, "period_id"),
     ({"limit": "10"}, "limit"), ({"cursor": "5"}, "cursor"), ({"order": "newest"}, "order")],
)
def test_a_filter_refused_is_a_json_error_not_a_file(coalition, query, field):
    refused = coalition.get(EXPORT, query_string=query)
    assert refused.status_code == 422 and refused.is_json
    assert field in str(refused.get_json())


def test_cells_a_spreadsheet_would_run_are_kept_as_text(coalition):
    add_partner(coalition, "hotel", "EUR", "travel")
    add_rate(coalition, "earn", "1", partner_id="hotel")
    expect(earn(coalition, '=HYPERLINK("x")', "+447700900123", "5.00", partner_id="hotel"))
    [row] = rows(coalition.get(EXPORT, query_string={"partner_id": "hotel"}))
    assert row["external_id"] == "'=HYPERLINK(\"x\")" and row["member_id"] == "'+447700900123"
    assert row["points"] == "5" and row["amount"] == "5.00"
