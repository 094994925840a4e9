"""Instances on several hosts share one PostgreSQL database, not one clock (SPEC §9).

An instance's clock here is every ``datetime.now`` of the service's modules,
shifted by minutes, as a host without NTP or a VM resumed from pause has it.
What the ledger stores and the window a posting is held to must not depend
on which instance answered: a posting is settled by a close if and only if
it was recorded before the close (docs/reconciling.md), whichever instance's
clock runs ahead. On SQLite every process runs on one host, one clock.
"""

import sys
from datetime import UTC, datetime, timedelta

import pytest

from coalition import jobs
from coalition.db import ledger_reads
from tests.e2e.helpers import expect, till_of
from tests.e2e.settlement_world import add_partner, add_rate, at, burn, close, earn, previous_month

pytestmark = pytest.mark.postgres


class _Datetimes(type):
    """A datetime is an instance of the shifted class too, as of the one it stands for."""

    def __instancecheck__(cls, instance):
        return isinstance(instance, datetime)


@pytest.fixture
def instance_clock(monkeypatch):
    """``shift(minutes)``: from then on the service's clock runs that far from the host's."""

    class Clock(datetime, metaclass=_Datetimes):
        offset = timedelta(0)

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + cls.offset

    for name, module in list(sys.modules.items()):
        if name.startswith("coalition") and getattr(module, "datetime", None) is datetime:
            monkeypatch.setattr(module, "datetime", Clock)

    def shift(minutes: float) -> None:
        Clock.offset = timedelta(minutes=minutes)

    return shift


@pytest.fixture
def skyair(operator):
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")


@pytest.mark.parametrize("posting, closing", [(2, -2), (-2, 2)], ids=["posts-ahead", "closes-ahead"])
def test_a_close_settles_what_was_recorded_before_it_whichever_instance_runs_ahead(
        operator, skyair, instance_clock, posting, closing):
    start, _, month = previous_month()
    instance_clock(posting)
    settled = earn(operator, "e-1", "skyair", "m1", at(start, 3), "10.00", "EUR")
    instance_clock(closing)
    close(operator, month)
    instance_clock(posting)
    late = earn(operator, "e-2", "skyair", "m1", at(start, 4), "10.00", "EUR")
    (closed,) = [p for p in expect(operator.get("/api/v1/periods"), 200) if p["id"] == month]

    # dated by each instance's clock, the first read as recorded 4 minutes after the close
    # that settled it (posts-ahead), or the late one 4 minutes before it (closes-ahead)
    assert (settled["period_id"], settled["late"], late["late"]) == (month, False, True)
    recorded = [datetime.fromisoformat(each["recorded_at"]) for each in (settled, late)]
    assert recorded[0] <= datetime.fromisoformat(closed["closed_at"]) < recorded[1]


def test_an_instance_minutes_behind_holds_postings_to_the_databases_window(operator, skyair, instance_clock):
    now = datetime.now(UTC)  # the host's clock, the database's: a till's, kept by NTP
    instance_clock(-10)
    taken = earn(operator, "e-1", "skyair", "m1", now.isoformat(), "10.00", "EUR")
    instance_clock(10)
    refused = expect(operator.post("/api/v1/transactions", json={
        "external_id": "e-2", "type": "earn", "partner_id": "skyair", "member_id": "m1",
        "occurred_at": (now + timedelta(minutes=6)).isoformat(), "amount": "10.00", "currency": "EUR"}), 422)

    # by its own clock the instance behind read the first as 10 minutes ahead (422), and
    # the one ahead took the second, dated 6 minutes ahead of every other instance's now
    assert taken["occurred_at"] == now.isoformat()
    assert refused["reason"] == "occurred_in_future"


def test_the_expiry_job_of_an_instance_ahead_expires_no_lot_before_its_time(operator, skyair, database,
                                                                             instance_clock):
    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    now = datetime.now(UTC)
    earn(operator, "e-1", "skyair", "m1", (now - timedelta(days=1, minutes=-5)).isoformat(), "10.00", "EUR")
    instance_clock(10)  # 20 points, expiring 5 minutes from now: 5 minutes ago by this clock
    jobs.run_expiry(database)
    instance_clock(0)

    # expired by the instance's clock, they were gone: 422 insufficient_points
    assert burn(operator, "b-1", "skyair", "m1", now.isoformat(), 20)["points"] == -20


def test_a_key_revoked_by_an_instance_behind_reads_as_revoked_after_what_it_posted(operator, skyair,
                                                                                   instance_clock):
    till, key_id = till_of(operator, "skyair")
    instance_clock(-2)
    posted = earn(till, "e-1", "skyair", "m1", datetime.now(UTC).isoformat(), "10.00", "EUR")
    assert operator.delete(f"/api/v1/keys/{key_id}").status_code == 204
    (key,) = [row for row in expect(operator.get("/api/v1/keys"), 200) if row["id"] == key_id]

    # the revocation waited for the key's postings: by the instance's clock it read as 2
    # minutes before the posting it came after (a leak's review finds it posted after)
    assert datetime.fromisoformat(posted["recorded_at"]) < datetime.fromisoformat(key["revoked_at"])


def test_a_suspension_by_an_instance_behind_is_recorded_after_what_the_partner_posted(operator, skyair,
                                                                                      instance_clock):
    instance_clock(-2)
    posted = earn(operator, "e-1", "skyair", "m1", datetime.now(UTC).isoformat(), "10.00", "EUR")
    expect(operator.patch("/api/v1/partners/skyair", json={"status": "suspended"}), 200)
    (suspended,) = [change for change in expect(operator.get("/api/v1/changes?subject=partner"), 200)["items"]
                    if change["fields"].get("status") == ["active", "suspended"]]

    # the suspension waited for the partner's postings: by the instance's clock the record
    # of changes read it as 2 minutes before the posting it came after
    assert datetime.fromisoformat(posted["recorded_at"]) < datetime.fromisoformat(suspended["at"])


def test_a_posting_that_waits_for_its_members_lock_is_held_to_the_window_of_when_it_was_asked(
        operator, skyair, instance_clock, monkeypatch):
    earn(operator, "e-1", "skyair", "m1", (datetime.now(UTC) - timedelta(hours=1)).isoformat(), "10.00", "EUR")
    lock_members = ledger_reads.lock_members

    def waited(session, member_ids):
        locked = lock_members(session, member_ids)
        instance_clock(0.5)  # 30 seconds spent queued for m1's lock, behind another burn of theirs
        return locked

    monkeypatch.setattr(ledger_reads, "lock_members", waited)
    ahead = (datetime.now(UTC) + timedelta(minutes=4, seconds=45)).isoformat()

    # dated 4 m 45 s ahead when asked: the window moved back by the wait for the member's
    # lock, after the calendar lock was granted, read it as 5 m 15 s ahead (422)
    assert burn(operator, "b-1", "skyair", "m1", ahead, 10)["points"] == -10


def test_an_expiry_by_an_instance_behind_is_recorded_after_the_reversal_its_batch_waited_for(
        operator, skyair, database, instance_clock, monkeypatch):
    # m1 earns 10.00 EUR × 2 = 20 points two days ago, expiring a day ago but for the 10
    # burned a day and a half ago, which the first run expires. The burn's reversal puts
    # its 10 back now, committed once the next batch holds the calendar lock (shared with
    # postings), so that batch expires them: it is dated when it holds its locks, by the
    # database's clock, after the reversal, not by its instance's, 2 minutes behind, nor
    # when its run began, before the reversal
    from coalition.services import calendar, expiry
    from tests.e2e.settlement_world import posted_after

    expect(operator.put("/api/v1/settings", json={"points_ttl_days": 1}), 200)
    now = datetime.now(UTC)
    lot = earn(operator, "e-1", "skyair", "m1", (now - timedelta(days=2)).isoformat(), "10.00", "EUR")
    burn(operator, "b-1", "skyair", "m1", (now - timedelta(days=1.5)).isoformat(), 10)
    assert expiry.expire_all(database, database.now()) == 1
    reversal = {"external_id": "r-1", "type": "burn_reversal", "partner_id": "skyair",
                "original_external_id": "b-1", "occurred_at": now.isoformat()}
    # posted at each batch's lock: after the first, the same reversal again (idempotent)
    posted_after(monkeypatch, calendar, "lock_calendar",
                 lambda: operator.post("/api/v1/transactions", json=reversal))
    instance_clock(-2)
    assert expiry.expire_all(database, database.now()) == 1
    instance_clock(0)

    recorded = {item["external_id"]: datetime.fromisoformat(item["recorded_at"])
                for item in expect(operator.get("/api/v1/transactions?limit=500"), 200)["items"]}
    assert recorded["r-1"] <= recorded[f"expiry-{lot['lot_id']}-2"]
