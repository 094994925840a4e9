"""SPEC §6: member balances, history and expiry.

Standard coalition (tests/e2e/helpers.py): aroma earns 0.1 point per RUB,
skyair 2 points per EUR, redemption 0.01 EUR per point coalition-wide.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from coalition.db import models
from coalition.services import expiry
from tests.conftest import days_ago
from tests.e2e.helpers import (
    add_partner,
    add_rate,
    at,
    balance,
    bonus,
    burn,
    burn_reversal,
    earn,
    earn_reversal,
    expect,
    history,
    list_all,
    setup_coalition,
    walk_pages,
)


@pytest.fixture
def coalition(operator):
    setup_coalition(operator)
    add_partner(operator, "hotel", "EUR", "travel", hold_days=30)
    add_rate(operator, "earn", "1", partner_id="hotel")
    return operator


@pytest.fixture
def mixed_member(coalition):
    """m1 with one pending, one long-lived and one soon-expiring lot, and a burn.

    1. hotel (hold 30 days) 5 days ago: 50.00 EUR × 1 = 50 points, pending for 25 more days,
       expires in 365 − 5 = 360 days.
    2. aroma 20 days ago: 300.00 RUB × 0.1 = 30 points, expires in 345 days.
    3. points_ttl_days → 60.
    4. aroma 10 days ago: 1000.00 RUB × 0.1 = 100 points, expires in 60 − 10 = 50 days.
    5. burn 30 at aroma 1 day ago: the lot expiring first (4.) gives all 30 → it keeps 70.
    """
    expect(earn(coalition, "h1", "m1", "50.00", partner_id="hotel", occurred_at=days_ago(5)))
    expect(earn(coalition, "a1", "m1", "300.00", occurred_at=days_ago(20)))
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 60}), 200)
    soon = days_ago(10)
    expect(earn(coalition, "a2", "m1", "1000.00", occurred_at=soon))
    expect(burn(coalition, "t1", "m1", 30, occurred_at=days_ago(1)))
    return {"soon_expires_at": at(soon) + timedelta(days=60)}


def test_balance_available_counts_spendable_lots(coalition, mixed_member):
    # lot 2 (30) + lot 4 (100 − 30 = 70) = 100; the hotel lot is still held
    assert balance(coalition, "m1")["available"] == 100


def test_balance_pending_counts_held_lots(coalition, mixed_member):
    # the hotel lot: 50 points, available only 30 days after it was earned 5 days ago
    assert balance(coalition, "m1")["pending"] == 50


def test_balance_expiring_lists_lots_expiring_within_90_days(coalition, mixed_member):
    # only lot 4 (70 left) expires within 90 days (in 50 days); the others in 345 and 360 days
    expiring = balance(coalition, "m1")["expiring"]
    assert [(item["points"], at(item["expires_at"])) for item in expiring] == [(70, mixed_member["soon_expires_at"])]


def test_balance_lifetime_earned_sums_every_issued_point(coalition, mixed_member):
    # 50 + 30 + 100 = 180
    assert balance(coalition, "m1")["lifetime_earned"] == 180


def test_balance_lifetime_burned_sums_burns(coalition, mixed_member):
    assert balance(coalition, "m1")["lifetime_burned"] == 30


def test_balance_names_the_member_and_its_instant(coalition, mixed_member):
    before = datetime.now(UTC) - timedelta(seconds=5)
    body = balance(coalition, "m1")
    assert body["member_id"] == "m1"
    assert before <= at(body["as_of"]) <= datetime.now(UTC) + timedelta(seconds=5)


def test_balance_of_a_bonus_only_member(coalition):
    expect(bonus(coalition, "b1", "m1", 500, occurred_at=days_ago(1)))
    body = balance(coalition, "m1")
    assert (body["available"], body["pending"], body["lifetime_earned"], body["lifetime_burned"]) == (500, 0, 500, 0)


def test_balance_counts_a_burn_reversal_back_in(coalition):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100
    expect(burn(coalition, "t1", "m1", 40, occurred_at=days_ago(3)))
    expect(burn_reversal(coalition, "u1", "t1", points=15, occurred_at=days_ago(1)))
    # 100 − 40 + 15 = 75
    assert balance(coalition, "m1")["available"] == 75


def test_lifetime_figures_are_net_of_returns_and_burn_reversals(coalition):
    expect(earn(coalition, "a1", "m1", "350.00", occurred_at=days_ago(6)))  # 350.00 × 0.1 = 35
    expect(earn(coalition, "a2", "m1", "200.00", occurred_at=days_ago(6)))  # 20
    # a return of 125.00 of 350.00 takes floor(35 × 125 / 350) = floor(12.5) = 12 back
    assert expect(earn_reversal(coalition, "r1", "a1", amount="125.00", occurred_at=days_ago(5)))["points"] == -12
    expect(burn(coalition, "t1", "m1", 40, occurred_at=days_ago(4)))  # 23 of a1, then 17 of a2
    expect(burn_reversal(coalition, "u1", "t1", points=15, occurred_at=days_ago(3)))  # 15 back into a2
    # a2's full return: its lot holds 20 − 17 + 15 = 18, so 18 come back and 2 are short
    returned = expect(earn_reversal(coalition, "r2", "a2", amount="200.00", occurred_at=days_ago(2)))
    assert (returned["points"], returned["shortfall_points"]) == (-18, 2)
    body = balance(coalition, "m1")
    # earned 35 + 20, less the 12 and 18 returns took back; burned 40 less the 15 put back
    assert (body["lifetime_earned"], body["lifetime_burned"]) == (25, 25)
    assert body["available"] == 0  # 25 earned − 25 burned, nothing expired


def test_balance_of_an_unknown_member_is_404(coalition):
    response = coalition.get("/api/v1/members/nobody/balance")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_history_newest_first_is_the_same_movements_the_other_way_round(coalition, mixed_member):
    oldest = [item["transaction_id"] for item in history(coalition, "m1")]
    pages = walk_pages(coalition, "/api/v1/members/m1/history", limit=3, order="newest")
    assert [[item["transaction_id"] for item in page] for page in pages] == [oldest[:0:-1], oldest[:1]]
    assert len(oldest) == 4  # three earns and a burn


def test_history_of_an_unknown_member_is_404(coalition):
    assert coalition.get("/api/v1/members/nobody/history").status_code == 404


def test_balance_is_the_same_for_every_partner_key(coalition, make_key):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100 at aroma
    expect(earn(coalition, "s1", "m1", "10.00", partner_id="skyair", occurred_at=days_ago(5)))  # 20 at skyair
    # a member's points are one currency across the coalition: 100 + 20 = 120 for any partner
    assert balance(make_key("partner", "aroma"), "m1")["available"] == 120
    assert balance(make_key("partner", "skyair"), "m1")["available"] == 120


#: Member ids a partner may send (SPEC §6: opaque): base64 with "/", "+" and "=", what
#: looks like percent-encoding, spaces, non-ASCII, and "/" where a URL would lose it.
OPAQUE_MEMBER_IDS = ["Ab/Cd+Ef==", "100%25 sure", "  spaced  ", "Ёж/🦔", "/lead", "trail/", "a//b", "x/balance", "m" * 128]


@pytest.mark.parametrize("member_id", OPAQUE_MEMBER_IDS)
def test_balance_and_history_answer_for_any_member_id_a_post_accepts(coalition, member_id):
    expect(earn(coalition, "a1", member_id, "1000.00", occurred_at=days_ago(5)))  # 100
    url = f"/api/v1/members/{quote(member_id, safe='')}"
    body = expect(coalition.get(f"{url}/balance"), 200)
    assert (body["member_id"], body["available"]) == (member_id, 100)
    assert [item["points"] for item in expect(coalition.get(f"{url}/history"), 200)["items"]] == [100]


@pytest.mark.parametrize("member_id", ["Ab/Cd+Ef==", "a//b"])
def test_an_unknown_member_id_with_a_slash_is_the_404_of_an_unknown_member(coalition, member_id):
    for what in ("balance", "history"):
        body = expect(coalition.get(f"/api/v1/members/{quote(member_id, safe='')}/{what}"), 404)
        assert (body["reason"], body["message"]) == ("not_found", f"no member {member_id!r}")


def test_the_openapi_document_says_what_a_balance_counts(client):
    """SPEC §6: a till checks a balance before a redemption; the document says which
    points a burn may spend now (available), which wait for a hold (pending) and what
    expiring lists. They had no description (an integrator's probe)."""
    balance = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]["BalanceOut"]["properties"]
    assert "hold_days" in balance["pending"]["description"]
    assert "burn" in balance["available"]["description"]
    assert "90 days" in balance["expiring"]["description"]


def test_the_openapi_document_describes_the_member_id_as_one_encoded_string(client):
    document = expect(client.get("/api/openapi.json"), 200)
    for what in ("balance", "history"):
        [parameter] = document["paths"][f"/api/v1/members/{{member_id}}/{what}"]["parameters"]
        assert (parameter["in"], parameter["name"]) == ("path", "member_id")
        assert parameter["schema"]["type"] == "string"
        assert parameter["schema"]["maxLength"] == 128  # as long as a posted member id may be


# --- history -------------------------------------------------------------------------


def test_history_lists_every_movement_with_reason_partner_and_lot(coalition):
    lot_a = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))["lot_id"]  # 100
    lot_b = expect(bonus(coalition, "b1", "m1", 40, occurred_at=days_ago(4), reason="goodwill"))["lot_id"]
    expect(burn(coalition, "t1", "m1", 120, partner_id="skyair", occurred_at=days_ago(3)))
    items = history(coalition, "m1")
    assert [(i["type"], i["partner_id"], i["points"]) for i in items] == [
        ("earn", "aroma", 100),
        ("bonus", "coalition", 40),
        ("burn", "skyair", -120),
    ]
    assert all(item["reason"] for item in items)
    assert items[1]["reason"] == "goodwill"
    assert [lot["lot_id"] for lot in items[0]["lots"]] == [lot_a]
    assert [lot["lot_id"] for lot in items[1]["lots"]] == [lot_b]
    # the burn took 100 from the aroma lot, then 20 from the bonus lot
    assert sorted((lot["lot_id"], lot["issuer_id"], lot["points"]) for lot in items[2]["lots"]) == sorted(
        [(lot_a, "aroma", 100), (lot_b, "coalition", 20)]
    )


def test_history_names_each_posting_by_its_external_id_and_a_returns_shortfall(coalition):
    """1000.00 RUB earn 100 points at aroma; 80 of them are burnt at skyair; the whole
    purchase is then returned: floor(100 × 1000.00 / 1000.00) = 100 points to take back,
    of which the lot holds 20. The return moves 20 points and says the other 80 fell
    short, which a support desk reading the history could not tell from its points."""
    lot = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(5)))["lot_id"]
    expect(burn(coalition, "t1", "m1", 80, partner_id="skyair", occurred_at=days_ago(4)))
    expect(earn_reversal(coalition, "r1", "a1", occurred_at=days_ago(3), amount="1000.00"))
    items = history(coalition, "m1")
    assert [(i["external_id"], i["type"], i["points"], i["shortfall_points"]) for i in items] == [
        ("a1", "earn", 100, 0),
        ("t1", "burn", -80, 0),
        ("r1", "earn_reversal", -20, 80),
    ]
    assert [(lot_moved["lot_id"], lot_moved["points"]) for lot_moved in items[2]["lots"]] == [(lot, 20)]


def test_history_says_when_an_earns_and_a_bonuss_points_may_be_spent_and_expire(coalition):
    """A support desk asked why points earned yesterday cannot be spent reads it in the
    history: hotel holds its points 30 days, so 50.00 EUR × 1 = 50 points earned 5 days ago
    are spendable in 25 days, and expire 365 days after they were earned; a bonus of the
    coalition (no hold) is spendable at once. A burn moves points of lots and has neither."""
    earned = days_ago(5)
    expect(earn(coalition, "h1", "m1", "50.00", partner_id="hotel", occurred_at=earned))
    given = days_ago(4)
    expect(bonus(coalition, "b1", "m1", 10, occurred_at=given))
    expect(burn(coalition, "t1", "m1", 5, occurred_at=days_ago(1)))
    items = history(coalition, "m1")
    dates = [(item["type"], item["available_at"], item["expires_at"]) for item in items]
    assert [(kind, at(available) if available else None, at(expires) if expires else None)
            for kind, available, expires in dates] == [
        ("earn", at(earned) + timedelta(days=30), at(earned) + timedelta(days=365)),
        ("bonus", at(given), at(given) + timedelta(days=365)),
        ("burn", None, None),
    ]


# --- expiry ------------------------------------------------------------------------


@pytest.fixture
def expired_lot(coalition):
    """ttl 10 days; m1 earned 20 days ago: 1000.00 × 0.1 = 100 points, expired 10 days ago.
    m1 also earned 2 days ago: 200.00 × 0.1 = 20 points, live for 8 more days."""
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 10}), 200)
    old = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(20)))
    expect(earn(coalition, "a2", "m1", "200.00", occurred_at=days_ago(2)))
    return old


def test_expired_points_are_not_available_before_the_expiry_job_runs(coalition, expired_lot):
    body = balance(coalition, "m1")
    assert body["available"] == 20  # only the live lot
    assert body["pending"] == 0


def test_expired_points_are_not_listed_as_expiring(coalition, expired_lot):
    expiring = balance(coalition, "m1")["expiring"]
    # only the live lot, 20 points, expiring 10 days after it was earned (in 8 days)
    assert [item["points"] for item in expiring] == [20]


def test_expired_points_cannot_be_burned_before_the_expiry_job_runs(coalition, expired_lot):
    response = burn(coalition, "t1", "m1", 21, occurred_at=days_ago(1))
    assert response.status_code == 422
    assert response.get_json()["reason"] == "insufficient_points"


def test_earn_backdated_beyond_ttl_shows_zero_available_before_expiry_runs(coalition):
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 10}), 200)
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(20)))
    assert balance(coalition, "m1")["available"] == 0


@pytest.mark.parametrize("job_ran_first", [False, True])
def test_a_return_after_expiry_is_a_shortfall_whether_or_not_the_job_ran(
    coalition, database, expired_lot, job_ran_first
):
    # a1's 100 points expired 10 days ago; a return of 10 of them yesterday finds
    # breakage, not points: nothing taken, 10 short, and all 100 count as expired.
    if job_ran_first:
        expiry.expire_all(database, datetime.now(UTC))
    returned = expect(earn_reversal(coalition, "r1", "a1", points=10, occurred_at=days_ago(1)))
    assert (returned["points"], returned["shortfall_points"], returned["allocations"]) == (0, 10, [])
    expiry.expire_all(database, datetime.now(UTC))
    expired = [item["points"] for item in history(coalition, "m1") if item["type"] == "expiry"]
    assert expired == [-100]
    assert balance(coalition, "m1")["available"] == 20


def test_expiry_job_writes_an_expiry_movement_for_what_remained(coalition, database, expired_lot):
    assert expiry.expire_all(database, datetime.now(UTC)) == 1
    movements = [item for item in history(coalition, "m1") if item["type"] == "expiry"]
    assert len(movements) == 1
    # the whole lot of 100 expired; it was issued by aroma
    assert movements[0]["points"] == -100
    assert movements[0]["partner_id"] == "aroma"
    assert [(lot["lot_id"], lot["points"]) for lot in movements[0]["lots"]] == [(expired_lot["lot_id"], 100)]


def test_a_posting_cannot_take_the_id_the_expiry_job_will_write(coalition, database, expired_lot):
    """The job writes expiry-<lot>-<n> under the issuer, beside the partner's own ids.
    Were a partner's earn let in under the next one, the job (and every close,
    which expires first) would fail on the duplicate key for good."""
    lot = expired_lot["lot_id"]
    taken = earn(coalition, f"expiry-{lot}-1", "m2", "10.00", occurred_at=days_ago(1))
    assert taken.status_code == 422
    assert "external_id" in taken.get_json()["errors"]["json"]

    assert expiry.expire_all(database, datetime.now(UTC)) == 1
    written = list_all(coalition, type="expiry")
    # under the lot's issuer, posted by the job, through no key
    assert [(item["partner_id"], item["external_id"], item["key_id"]) for item in written] == [
        ("aroma", f"expiry-{lot}-1", None)
    ]
    again = earn(coalition, f"expiry-{lot}-1", "m2", "10.00", occurred_at=days_ago(1))
    assert again.status_code == 422  # not 409: the id was never the partner's


def test_expiry_job_expires_only_what_a_burn_left_in_the_lot(coalition, database):
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 10}), 200)
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(20)))  # 100, expired 10 days ago
    expect(burn(coalition, "t1", "m1", 35, occurred_at=days_ago(15)))  # while it was live
    expiry.expire_all(database, datetime.now(UTC))
    movements = [item for item in history(coalition, "m1") if item["type"] == "expiry"]
    # 100 − 35 = 65 expired
    assert [item["points"] for item in movements] == [-65]


def test_expiry_job_does_not_change_the_balance(coalition, database, expired_lot):
    before = balance(coalition, "m1")
    expiry.expire_all(database, datetime.now(UTC))
    after = balance(coalition, "m1")
    assert (after["available"], after["pending"]) == (before["available"], before["pending"]) == (20, 0)


def test_expiry_job_run_twice_expires_nothing_more(coalition, database, expired_lot):
    expiry.expire_all(database, datetime.now(UTC))
    assert expiry.expire_all(database, datetime.now(UTC)) == 0
    movements = [item for item in history(coalition, "m1") if item["type"] == "expiry"]
    assert len(movements) == 1


def test_expiry_job_leaves_live_lots_alone(coalition, database, expired_lot):
    expiry.expire_all(database, datetime.now(UTC))
    expect(burn(coalition, "t1", "m1", 20, occurred_at=days_ago(1)))
    assert balance(coalition, "m1")["available"] == 0


def test_expiry_movement_is_listed_as_an_expiry_transaction(coalition, database, expired_lot):
    expiry.expire_all(database, datetime.now(UTC))
    page = expect(coalition.get("/api/v1/transactions", query_string={"type": "expiry"}), 200)
    assert [(item["member_id"], item["points"], item["partner_id"]) for item in page["items"]] == [("m1", -100, "aroma")]
    # it occurred when the lot expired: 20 days ago + 10 days
    assert at(page["items"][0]["occurred_at"]) == at(expired_lot["expires_at"])


@pytest.mark.parametrize("job_ran_first", [False, True])
def test_points_put_back_into_an_expired_lot_expire_when_they_come_back(coalition, database, job_ran_first):
    """A burn reversal dated after its lot expired puts back points that were spent,
    not expired, until then: their expiry is dated at the reversal, so the breakage
    falls in the reversal's period, not in the earlier one the lot expired in. What
    the lot held when it expired expires at its expiry, whether or not the job had
    written that before the reversal came."""
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 10}), 200)
    lot = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(20)))  # 100
    expect(burn(coalition, "t1", "m1", 35, occurred_at=days_ago(15)))  # while it was live
    if job_ran_first:
        expiry.expire_all(database, datetime.now(UTC))  # the 65 left, dated at the lot's expiry
    back_after = expect(burn_reversal(coalition, "r1", "t1", points=20, occurred_at=days_ago(3)))
    back_before = expect(burn_reversal(coalition, "r2", "t1", points=5, occurred_at=days_ago(12)))
    expiry.expire_all(database, datetime.now(UTC))

    expired = [(item["points"], at(item["occurred_at"])) for item in list_all(coalition, type="expiry")]
    # at the lot's expiry (10 days ago): the 65 left in it and the 5 put back before it;
    # 3 days ago: the 20 put back then
    ends, comes_back = at(lot["expires_at"]), at(back_after["occurred_at"])
    assert expired == ([(-65, ends), (-5, ends)] if job_ran_first else [(-70, ends)]) + [(-20, comes_back)]
    assert at(back_before["occurred_at"]) < at(lot["expires_at"]) < at(back_after["occurred_at"])
    assert balance(coalition, "m1")["available"] == 0


def test_a_member_is_dated_as_the_transaction_that_creates_it(coalition, database):
    """Members are created by their first earn or bonus (SPEC §6): the member row is
    recorded when that transaction is, not when the posting began."""
    first = expect(earn(coalition, "first", "m-new", "100.00"))
    expect(earn(coalition, "second", "m-new", "100.00"))
    member = database.run(lambda session: session.get(models.Member, "m-new"))
    assert member.created_at == datetime.fromisoformat(first["recorded_at"])


def test_a_lot_spent_to_nothing_is_not_listed_as_expiring(coalition):
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 30}), 200)
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))  # 100 points
    expect(earn(coalition, "e-2", "m1", "500.00", occurred_at=days_ago(4)))  # 50 points
    expect(burn(coalition, "b-1", "m1", 100, occurred_at=days_ago(3)))  # the first lot, expiring first, whole
    assert [item["points"] for item in balance(coalition, "m1")["expiring"]] == [50]


def test_lifetime_burned_is_net_of_burn_reversals(coalition):
    expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(5)))
    expect(burn(coalition, "b-1", "m1", 10, occurred_at=days_ago(3)))
    expect(burn_reversal(coalition, "br-1", "b-1", points=4, occurred_at=days_ago(1)))
    assert balance(coalition, "m1")["lifetime_burned"] == 6  # 10 − 4


def test_a_lots_expiries_are_numbered_one_after_another(coalition, database):
    """expiry-<lot>-<n> counts the lot's expiries so far: 1, 2, 3, whatever else the lot saw."""
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 10}), 200)
    lot = expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(20)))["lot_id"]  # 100 points
    expect(burn(coalition, "b-1", "m1", 35, occurred_at=days_ago(15)))
    expiry.expire_all(database, datetime.now(UTC))  # the 65 left
    expect(burn_reversal(coalition, "br-1", "b-1", points=20, occurred_at=days_ago(3)))  # after the expiry
    expect(burn_reversal(coalition, "br-2", "b-1", points=5, occurred_at=days_ago(12)))  # before it
    expiry.expire_all(database, datetime.now(UTC))  # the 5 at the lot's expiry, then the 20
    expired = list_all(coalition, type="expiry")
    assert sorted(item["external_id"] for item in expired) == [f"expiry-{lot}-{number}" for number in (1, 2, 3)]


def test_points_put_back_at_the_instant_a_lot_expires_expire_with_it(coalition, database):
    """Put back at the lot's expiry instant, the points are in the lot when it expires: one
    expiry of 100 − 35 + 20 = 85, not the lot's 65 and then 20 at the same instant."""
    expect(coalition.put("/api/v1/settings", json={"points_ttl_days": 10}), 200)
    lot = expect(earn(coalition, "e-1", "m1", "1000.00", occurred_at=days_ago(20)))
    expect(burn(coalition, "b-1", "m1", 35, occurred_at=days_ago(15)))
    expect(burn_reversal(coalition, "br-1", "b-1", points=20, occurred_at=lot["expires_at"]))
    expiry.expire_all(database, datetime.now(UTC))
    expired = [(item["points"], at(item["occurred_at"])) for item in list_all(coalition, type="expiry")]
    assert expired == [(-85, at(lot["expires_at"]))]
