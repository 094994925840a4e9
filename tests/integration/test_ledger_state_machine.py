"""Model-based test: random ledgers through the real service against a reference model.

Hypothesis drives the HTTP API (Flask test client) with earns, bonuses,
burns, both reversals, replays, conflicting replays, clock advances, expiry
runs, period closes and listings from a time. A small reference model
written with plain dicts, ints and Decimal predicts every answer (a listing
is held to a plain filter of the ledger); after every step the member balances
(available, pending, expiring, lifetime figures),
the lots and the ledger totals must agree with it, the period totals kept for
closes must equal a GROUP BY over the ledger, and the settlement of every
period a close closes must balance and match the model's figures (a close
first expires what fell due by the end of what it closes): pair lines, fees,
nets and their fx conversion, each partner's points issued, reversed, short,
redeemed, expired and late, its liability at the period's end, and the
netting summary.

The model's clock starts 80 days ago and only moves forward (transactions may
be backdated 90 days); expiry runs at the model's clock. Earns, bonuses and
burns are at times dated a few hours or a day back, into a day already closed
(a late item of the first open one), or before lots that later postings
created. Earns are at times at a category's rate, reach a threshold or fall
in a promo's window; the coalition-wide redemption rate gets a new version
every 12 hours, and rates are fractions of a cent, so that a pair line sums
burns at two rates and its one rounding shows. Periods are daily;
points live 5 days, so that a few clock moves bring lots past their expiry.
A burn reads its member's first live lot, not fifty, so that the model holds
both ways a burn finds its lots: among the first read, and among all of them
when those do not hold enough (with the second way broken, the model fails).
"""

import csv
import io
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import case, func, select

from coalition import auth, database_of
from coalition.db import checks, models
from coalition.services import book, expiry, queries
from tests.conftest import Caller
from tests.e2e.helpers import every_item

TTL_DAYS = 5
EARN = {"alpha": Decimal("1"), "beta": Decimal("0.1")}
HOLD_DAYS = {"alpha": 0, "beta": 3, "coalition": 0}
CURRENCY = {"alpha": "EUR", "beta": "RUB"}
# redemption rates by hours from the model's start: alpha has the coalition-wide ones, a new
# version every 12 hours for 10 days, so that most of its pair lines sum burns at two rates
# (and reversals keep their burn's), and beta its own; their fractions of a cent make each
# pair line's one rounding show
REDEMPTION = {
    "alpha": {hours: Decimal("0.0135") if hours % 24 else Decimal("0.0125") for hours in range(0, 240, 12)},
    "beta": {0: Decimal("0.0175")},
}
FEE = Decimal("0.001")
# alpha earns twice on books (a category's rate beats the partner's), and a flat bonus for a
# purchase of 1000 or more, the highest reached; beta earns half as much again for two days
CATEGORY_EARN = {("alpha", "books"): Decimal("2")}
THRESHOLDS = {"alpha": {Decimal("1000"): 25, Decimal("1500"): 60}, "beta": {}}
PROMO = Decimal("1.5")
PROMO_DAYS = (1, 3)  # beta's promo, in days from the model's start
FX = {"EUR": Decimal(1), "RUB": Decimal("0.011")}  # base currency per unit
MEMBERS = ("m1", "m2", "m3")
# hours a posting is backdated by: mostly none, at times into a day already closed
BACK = st.sampled_from([0, 0, 0, 0, 5, 30])
CENT = Decimal("0.01")


@dataclass
class Lot:
    member: str
    issuer: str
    points: int
    remaining: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    put_back: dict = field(default_factory=dict)  # by instant, points reversals put back after it expired
    moves: list = field(default_factory=list)  # (occurred_at, points) of every transaction that moved it


@dataclass
class Earn:
    external_id: str
    partner: str
    lot_id: int
    points: int
    amount: Decimal | None
    claimed: int = 0
    returned: Decimal = Decimal(0)


@dataclass
class Burn:
    external_id: str
    partner: str
    member: str
    at: datetime
    allocations: list = field(default_factory=list)  # [lot_id, points, restored]


def floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def day_id(moment: datetime) -> str:
    return moment.date().isoformat()


class LedgerMachine(RuleBasedStateMachine):
    app = None
    reset = None  # empties the app's database: each example starts on a fresh ledger

    def __init__(self):
        super().__init__()
        self.reset()
        self.database = database_of(self.app)
        _, key = self.database.run(lambda session: auth.create_key(session, "operator"))
        self.api = Caller(self.app.test_client(), key)
        self.real_now = datetime.now(UTC).replace(microsecond=0)
        self.clock = self.real_now - timedelta(days=80)
        self.lots: dict[int, Lot] = {}
        self.earns: list[Earn] = []
        self.burns: list[Burn] = []
        self.posted: list[tuple[dict, dict]] = []
        self.redemptions = []  # (period, issuer, redeemer, points, rate)
        self.issued = []  # (period, partner, points, fee rate)
        self.last_closed: str | None = None
        self.sequence = 0
        self.expired_total = 0
        self.expired = defaultdict(int)  # (period, issuer) → points expired
        # (period, partner) → points_issued, points_reversed, shortfall_points, late_count
        self.activity = defaultdict(lambda: defaultdict(int))
        self.start = self.clock  # no posting is dated before it: the rates begin a day earlier
        self.burned = defaultdict(int)  # member → points burned less burn reversals
        self.taken_back = defaultdict(int)  # member → points returns took back

    # -- set-up -------------------------------------------------------------

    @initialize()
    def configure(self):
        start = (self.clock - timedelta(days=1)).isoformat()
        self.expect(self.api.put("/api/v1/settings", json={"period": "daily", "points_ttl_days": TTL_DAYS}), 200)
        for partner, currency in CURRENCY.items():
            body = {"id": partner, "name": partner.title(), "category": "shop", "currency": currency,
                    "hold_days": HOLD_DAYS[partner]}
            self.expect(self.api.post("/api/v1/partners", json=body), 201)
            self.rate(kind="earn", value=str(EARN[partner]), partner_id=partner, effective_from=start)
        self.rate(kind="earn", value="2", partner_id="alpha", category="books", effective_from=start)
        for minimum, bonus in THRESHOLDS["alpha"].items():
            self.rate(kind="threshold", value=str(bonus), partner_id="alpha", min_amount=str(minimum),
                      effective_from=start)
        begins, ends = (self.start + timedelta(days=days) for days in PROMO_DAYS)
        self.rate(kind="promo", value=str(PROMO), partner_id="beta", effective_from=begins.isoformat(),
                  effective_to=ends.isoformat())
        for partner, versions in REDEMPTION.items():
            for hours, value in versions.items():
                begins = (self.start + timedelta(hours=hours)).isoformat() if hours else start
                self.rate(kind="redemption", value=str(value), effective_from=begins,
                          partner_id=None if partner == "alpha" else partner)
        self.rate(kind="fee", value=str(FEE), effective_from=start)
        self.rate(kind="fx", value="0.011", currency="RUB", effective_from=start)

    def rate(self, **body):
        self.expect(self.api.post("/api/v1/rates", json=body), 201)

    def expect(self, response, status):
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()

    def post(self, body: dict, status: int, reason: str | None = None) -> dict:
        body = {"occurred_at": self.clock.isoformat(), **body}
        answer = self.expect(self.api.post("/api/v1/transactions", json=body), status)
        if reason is not None:
            assert answer["reason"] == reason, answer
        if status == 201:
            self.posted.append((body, answer))
            self.check_period(answer)
            self.activity[answer["period_id"], answer["partner_id"]]["late_count"] += answer["late"]
        return answer

    def redemption(self, redeemer: str, at: datetime) -> Decimal:
        """The redemption rate in force at ``at`` for a burn at ``redeemer`` (SPEC §7's v(t))."""
        return max((hours, value) for hours, value in REDEMPTION[redeemer].items()
                   if not hours or self.start + timedelta(hours=hours) <= at)[1]

    def dated(self, back: int) -> datetime:
        """The clock, backdated by ``back`` hours (into a closed period, at times), but not
        before the model's start, when the rates begin."""
        return max(self.clock - timedelta(hours=back), self.start)

    def next_id(self, kind: str) -> str:
        self.sequence += 1
        return f"{kind}-{self.sequence}"

    # -- the model's period attribution ---------------------------------------

    def period_of(self, moment: datetime) -> tuple[str, bool]:
        own = day_id(moment)
        if self.last_closed is not None and own <= self.last_closed:
            first_open = (datetime.fromisoformat(self.last_closed) + timedelta(days=1)).date().isoformat()
            return first_open, True
        return own, False

    def check_period(self, answer: dict) -> None:
        expected = self.period_of(datetime.fromisoformat(answer["occurred_at"]))
        assert (answer["period_id"], answer["late"]) == expected, answer

    # -- rules ----------------------------------------------------------------

    @rule(member=st.sampled_from(MEMBERS), partner=st.sampled_from(sorted(EARN)),
          cents=st.integers(1, 200_000), back=BACK, category=st.sampled_from([None, "books"]))
    def earn(self, member, partner, cents, back, category):
        amount = Decimal(cents) / 100
        at = self.dated(back)
        promo = 1
        if partner == "beta" and self.start + timedelta(days=PROMO_DAYS[0]) <= at < self.start + timedelta(days=PROMO_DAYS[1]):
            promo = PROMO
        threshold = max((bonus for minimum, bonus in THRESHOLDS[partner].items() if amount >= minimum), default=0)
        # e.g. 12.34 RUB × 0.1 = 1.234 → 1 point; 1200.00 EUR on books × 2 = 2400, + 25
        points = floor(amount * CATEGORY_EARN.get((partner, category), EARN[partner]) * promo) + threshold
        body = {"external_id": self.next_id("earn"), "type": "earn", "partner_id": partner,
                "member_id": member, "amount": str(amount.quantize(CENT)), "currency": CURRENCY[partner],
                "occurred_at": at.isoformat()}
        if category is not None:
            body["category"] = category
        if points == 0:
            self.post(body, 422, "zero_points")
            return
        answer = self.post(body, 201)
        assert answer["points"] == points
        self.add_lot(answer, member, partner, points, at)
        self.earns.append(Earn(body["external_id"], partner, answer["lot_id"], points, amount))

    @rule(member=st.sampled_from(MEMBERS), points=st.integers(1, 500), back=BACK)
    def bonus(self, member, points, back):
        at = self.dated(back)
        body = {"external_id": self.next_id("bonus"), "type": "bonus", "partner_id": "coalition",
                "member_id": member, "points": points, "reason": "goodwill", "occurred_at": at.isoformat()}
        answer = self.post(body, 201)
        self.add_lot(answer, member, "coalition", points, at)
        self.earns.append(Earn(body["external_id"], "coalition", answer["lot_id"], points, None))

    def add_lot(self, answer, member, issuer, points, at):
        lot = Lot(member, issuer, points, points, at,
                  at + timedelta(days=HOLD_DAYS[issuer]), at + timedelta(days=TTL_DAYS))
        assert datetime.fromisoformat(answer["available_at"]) == lot.available_at
        assert datetime.fromisoformat(answer["expires_at"]) == lot.expires_at
        self.lots[answer["lot_id"]] = lot
        self.activity[answer["period_id"], issuer]["points_issued"] += points
        if issuer != "coalition":
            self.issued.append((answer["period_id"], issuer, points, FEE))

    def move(self, lot: Lot, at: datetime, points: int) -> None:
        lot.remaining += points
        lot.moves.append((at, points))

    def spendable(self, member: str, at: datetime) -> list[int]:
        ids = [lot_id for lot_id, lot in self.lots.items()
               if lot.member == member and lot.remaining > 0 and lot.available_at <= at < lot.expires_at]
        return sorted(ids, key=lambda lot_id: (self.lots[lot_id].expires_at, self.lots[lot_id].earned_at, lot_id))

    @rule(member=st.sampled_from(MEMBERS), partner=st.sampled_from(sorted(EARN)),
          points=st.one_of(st.integers(1, 800), st.just("all but one")), back=BACK, holder=st.booleans())
    def burn(self, member, partner, points, back, holder):
        at = self.dated(back)
        holders = [m for m in MEMBERS if self.spendable(m, at)]
        if holder and holders:  # a member with points to spend: most burns drawn blind were refused
            member = holders[MEMBERS.index(member) % len(holders)]
        if points == "all but one":  # every lot the member can spend, so a burn takes from several
            points = max(sum(self.lots[lot_id].remaining for lot_id in self.spendable(member, at)) - 1, 1)
        body = {"external_id": self.next_id("burn"), "type": "burn", "partner_id": partner,
                "member_id": member, "points": points, "occurred_at": at.isoformat()}
        spendable = self.spendable(member, at)
        if sum(self.lots[lot_id].remaining for lot_id in spendable) < points:
            self.post(body, 422, "insufficient_points")
            return
        expected, wanted = [], points
        for lot_id in spendable:
            taken = min(self.lots[lot_id].remaining, wanted)
            if taken:
                expected.append({"lot_id": lot_id, "issuer_id": self.lots[lot_id].issuer, "points": taken})
                wanted -= taken
        answer = self.post(body, 201)
        assert answer["points"] == -points
        assert answer["allocations"] == expected
        burn = Burn(body["external_id"], partner, member, at)
        self.burned[member] += points
        for allocation in expected:
            self.move(self.lots[allocation["lot_id"]], at, -allocation["points"])
            burn.allocations.append([allocation["lot_id"], allocation["points"], 0])
            self.redemptions.append((answer["period_id"], allocation["issuer_id"], partner,
                                     allocation["points"], self.redemption(partner, at)))
        self.burns.append(burn)

    @precondition(lambda self: self.earns)
    @rule(data=st.data(), points=st.integers(1, 300), by_amount=st.booleans(),
          rest=st.sampled_from([None, None, Decimal(0), CENT]))
    def earn_reversal(self, data, points, by_amount, rest):
        earn = data.draw(st.sampled_from(self.earns))
        lot = self.lots[earn.lot_id]
        body = {"external_id": self.next_id("return"), "type": "earn_reversal", "partner_id": earn.partner,
                "original_external_id": earn.external_id}
        if by_amount and earn.amount is not None:
            amount = (earn.amount * points / 300).quantize(CENT, rounding=ROUND_FLOOR) or CENT
            if rest is not None:  # what is left of the purchase, or a cent more: a floor may
                # leave points to return where the amount is all returned
                amount = (earn.amount - earn.returned + rest) or CENT
            body |= {"amount": str(amount), "currency": CURRENCY[earn.partner]}
            points = floor(earn.points * amount / earn.amount)  # this return alone (SPEC §6)
            over = earn.returned + amount > earn.amount or earn.claimed + points > earn.points
        else:
            amount = Decimal(0)
            body["points"] = points
            over = earn.claimed + points > earn.points
        if over:
            self.post(body, 422, "over_reversal")
            return
        held = lot.remaining if self.clock < lot.expires_at else 0  # an expired lot holds breakage
        taken = min(points, held)
        answer = self.post(body, 201)
        assert (answer["points"], answer["shortfall_points"]) == (-taken, points - taken)
        earn.claimed += points
        earn.returned += amount
        self.taken_back[lot.member] += taken
        self.move(lot, self.clock, -taken)
        partner = self.activity[answer["period_id"], earn.partner]
        partner["points_reversed"] += taken
        partner["shortfall_points"] += points - taken
        if earn.partner != "coalition":
            self.issued.append((answer["period_id"], earn.partner, -taken, FEE))

    @precondition(lambda self: self.burns)
    @rule(data=st.data(), points=st.one_of(st.none(), st.integers(1, 400), st.just("all but one")))
    def burn_reversal(self, data, points):
        burn = data.draw(st.sampled_from(self.burns))
        restorable = sum(taken - restored for _, taken, restored in burn.allocations)
        if points == "all but one":  # a part, whichever lots the burn took from
            points = max(restorable - 1, 1)
        body = {"external_id": self.next_id("unburn"), "type": "burn_reversal", "partner_id": burn.partner,
                "original_external_id": burn.external_id}
        if points is not None:
            body["points"] = points
        wanted = restorable if points is None else points
        if wanted == 0 or wanted > restorable:
            self.post(body, 422, "over_reversal")
            return
        answer = self.post(body, 201)
        assert answer["points"] == wanted
        self.burned[burn.member] -= wanted
        expected = []
        for allocation in reversed(burn.allocations):  # newest allocation first
            back = min(allocation[1] - allocation[2], wanted)
            if back:
                allocation[2] += back
                wanted -= back
                lot = self.lots[allocation[0]]
                expected.append({"lot_id": allocation[0], "issuer_id": lot.issuer, "points": back})
                self.move(lot, self.clock, back)
                if self.clock > lot.expires_at:  # spent until now, so they expire now
                    lot.put_back[self.clock] = lot.put_back.get(self.clock, 0) + back
                self.redemptions.append((answer["period_id"], lot.issuer, burn.partner, -back,
                                         self.redemption(burn.partner, burn.at)))
        assert wanted == 0
        assert answer["allocations"] == expected

    @precondition(lambda self: self.posted)
    @rule(data=st.data(), step=st.sampled_from([-1, 0, 1]), newest=st.booleans())
    def list_from(self, data, step, newest):
        """A listing from a time finds every transaction dated from it, the late ones and
        the expiries too, as a plain filter of the ledger does."""
        _, answer = data.draw(st.sampled_from(self.posted))
        since = datetime.fromisoformat(answer["occurred_at"]) + timedelta(microseconds=step)
        T = models.Transaction
        dated = select(T.id).where(T.occurred_at >= since).order_by(T.id)
        expected = self.database.run(lambda session: list(session.scalars(dated)))
        order = "newest" if newest else "oldest"
        found = every_item(self.api, "/api/v1/transactions", limit=7, order=order, **{"from": since.isoformat()})
        assert [item["id"] for item in found] == (expected[::-1] if newest else expected)

    @precondition(lambda self: self.posted)
    @rule()
    def export(self):
        """The transactions CSV, a row per points movement: every transaction is in it,
        and each lot's rows add up to the points the model says it holds."""
        response = self.api.get("/api/v1/transactions/csv")
        assert response.status_code == 200
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        held = defaultdict(int)
        for row in rows:
            if row["lot_id"]:
                held[int(row["lot_id"])] += int(row["points"])
        assert held == {lot_id: lot.remaining for lot_id, lot in self.lots.items()}
        every = self.database.run(lambda session: list(session.scalars(select(models.Transaction.id))))
        assert sorted({int(row["transaction_id"]) for row in rows}) == sorted(every)

    @precondition(lambda self: self.posted)
    @rule(data=st.data())
    def replay(self, data):
        body, original = data.draw(st.sampled_from(self.posted))
        response = self.api.post("/api/v1/transactions", json=body)
        assert response.status_code == 200
        assert response.get_json() == original

    @precondition(lambda self: self.posted)
    @rule(data=st.data())
    def conflicting_replay(self, data):
        body, _ = data.draw(st.sampled_from(self.posted))
        changed = {**body, "occurred_at": (datetime.fromisoformat(body["occurred_at"]) - timedelta(seconds=1)).isoformat()}
        response = self.api.post("/api/v1/transactions", json=changed)
        assert response.status_code == 409
        assert response.get_json()["reason"] == "idempotency_conflict"

    @rule(hours=st.integers(1, 96))
    def advance_clock(self, hours):
        self.clock = min(self.clock + timedelta(hours=hours), self.real_now - timedelta(hours=1))

    @rule()
    def run_expiry(self):
        due = self.due_by(self.clock)
        assert expiry.expire_all(self.database, self.clock) == len(due)
        self.expire(due)

    def due_by(self, moment: datetime) -> list[Lot]:
        return [lot for lot in self.lots.values() if lot.remaining > 0 and lot.expires_at <= moment]

    def expire(self, lots: list[Lot]) -> None:
        for lot in lots:
            # points put back after the lot expired expire when they came back, the rest with
            # the lot; where a burn dated before the expiry took some since, those put back
            # first are the ones it took
            taken = max(sum(lot.put_back.values()) - lot.remaining, 0)
            later = []
            for moment in sorted(lot.put_back):
                left = lot.put_back[moment] - min(lot.put_back[moment], taken)
                taken -= lot.put_back[moment] - left
                if left:
                    later.append((moment, left))
            with_lot = lot.remaining - sum(points for _, points in later)
            for moment, points in ([(lot.expires_at, with_lot)] if with_lot else []) + later:
                period, late = self.period_of(moment)  # an expiry transaction each
                self.expired[period, lot.issuer] += points
                self.activity[period, lot.issuer]["late_count"] += late
                self.move(lot, moment, -points)
            lot.put_back.clear()
            self.expired_total += with_lot + sum(points for _, points in later)

    @precondition(lambda self: self.posted)
    @rule()
    def close_yesterday(self):
        target = day_id(self.clock - timedelta(days=1))
        if self.last_closed is not None and target <= self.last_closed:
            return
        # the close first expires what fell due by the end of the day it closes
        self.expire(self.due_by(datetime.fromisoformat(target).replace(tzinfo=UTC) + timedelta(days=1)))
        if self.last_closed is None:
            earliest = min(datetime.fromisoformat(answer["occurred_at"]) for _, answer in self.posted)
            first = min(earliest.date(), datetime.fromisoformat(target).date())
        else:
            first = datetime.fromisoformat(self.last_closed).date() + timedelta(days=1)
        settlement = self.expect(self.api.post(f"/api/v1/settlements/{target}/close"), 200)
        self.last_closed = target
        closed = [(first + timedelta(days=n)).isoformat()
                  for n in range((datetime.fromisoformat(target).date() - first).days + 1)]
        for period in closed[:-1]:  # closed with it, each before it
            self.check_settlement(self.expect(self.api.get(f"/api/v1/settlements/{period}"), 200))
        self.check_settlement(settlement)
        again = self.expect(self.api.post(f"/api/v1/settlements/{target}/close"), 200)
        assert again == settlement

    def check_settlement(self, settlement: dict) -> None:
        period = settlement["period_id"]
        values, points = defaultdict(Decimal), defaultdict(int)
        for when, issuer, redeemer, moved, rate in self.redemptions:
            if when == period:
                values[issuer, redeemer] += moved * rate
                points[issuer, redeemer] += moved
        lines = {(line["issuer_id"], line["redeemer_id"]): line for line in settlement["pair_lines"]}
        assert set(lines) == set(points)
        receivable, payable = defaultdict(Decimal), defaultdict(Decimal)
        for pair, line in lines.items():
            value = Decimal(0) if pair[0] == pair[1] else values[pair].quantize(CENT, ROUND_HALF_EVEN)
            assert (line["points"], Decimal(line["value"])) == (points[pair], value)
            if pair[0] != pair[1]:
                payable[pair[0]] += value
                receivable[pair[1]] += value
        fees = defaultdict(Decimal)
        for when, partner, issued, rate in self.issued:
            if when == period:
                fees[partner] += issued * rate
        end = datetime.fromisoformat(period).replace(tzinfo=UTC) + timedelta(days=1)
        liability = self.liability_at(end)
        total, nets = Decimal(0), {}
        for entry in settlement["partners"]:
            partner = entry["partner_id"]
            fee = fees[partner].quantize(CENT, ROUND_HALF_EVEN)
            assert Decimal(entry["receivable"]) == receivable[partner]
            assert Decimal(entry["payable"]) == payable[partner]
            assert Decimal(entry["fees"]) == fee
            nets[partner] = receivable[partner] - payable[partner] - fee
            assert Decimal(entry["net"]) == nets[partner]
            # net in the partner's currency: ÷ base currency per unit, rounded once (decisions.md)
            fx = FX[CURRENCY.get(partner, "EUR")]
            assert (entry["currency"], Decimal(entry["fx_rate"])) == (CURRENCY.get(partner, "EUR"), fx)
            assert Decimal(entry["net_in_currency"]) == (nets[partner] / fx).quantize(CENT, ROUND_HALF_EVEN)
            assert entry["points_expired"] == self.expired[period, partner]
            activity = self.activity[period, partner]
            assert (entry["points_issued"], entry["points_reversed"], entry["shortfall_points"],
                    entry["late_count"]) == (activity["points_issued"], activity["points_reversed"],
                                             activity["shortfall_points"], activity["late_count"]), entry
            assert entry["points_redeemed"] == sum(n for (_, redeemer), n in points.items() if redeemer == partner)
            assert entry["own_redemption_points"] == points[partner, partner]
            # outstanding at the period's end, valued at the coalition-wide redemption rate
            assert entry["liability_points"] == liability[partner]
            point_value = self.redemption("alpha", end - timedelta(microseconds=1))  # coalition-wide
            assert Decimal(entry["liability"]) == (liability[partner] * point_value).quantize(CENT, ROUND_HALF_EVEN)
            total += Decimal(entry["receivable"]) - Decimal(entry["payable"])
        assert total == 0
        self.check_netting(settlement["netting"], lines, nets)

    def liability_at(self, end: datetime) -> dict[str, int]:
        """Each issuer's points, at ``end``, in lots earned before it and not expired at its
        last instant: what a lot was created with and what the moves dated before ``end``
        (known now) did to it."""
        held = defaultdict(int)
        for lot in self.lots.values():
            if lot.earned_at < end <= lot.expires_at:
                held[lot.issuer] += lot.points + sum(points for at, points in lot.moves if at < end)
        return held

    def check_netting(self, netting: dict, lines: dict, nets: dict) -> None:
        """SPEC §7's netting summary, from the pair lines and nets the model expects."""
        paying = {pair: Decimal(line["value"]) for pair, line in lines.items()
                  if pair[0] != pair[1] and Decimal(line["value"])}
        gross = sum(abs(value) for value in paying.values())
        owed = defaultdict(Decimal)  # A → B less B → A, for each pair of partners
        for (issuer, redeemer), value in paying.items():
            owed[min(issuer, redeemer), max(issuer, redeemer)] += value if issuer < redeemer else -value
        multilateral = sum(abs(net) for net in nets.values())
        ratio = None if not gross else (1 - multilateral / gross).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
        payments = sum(1 for net in nets.values() if net)
        assert (Decimal(netting["gross"]), Decimal(netting["bilateral_net"]), Decimal(netting["multilateral_net"]),
                None if netting["netting_ratio"] is None else Decimal(netting["netting_ratio"]),
                netting["payments_gross"], netting["payments_net"], netting["payments_saved"]) == (
            gross, sum(abs(value) for value in owed.values()), multilateral, ratio,
            len(paying), payments, len(paying) - payments), netting

    # -- invariants -----------------------------------------------------------

    @invariant()
    def balances_match_model(self):
        for member in MEMBERS:
            lots = [lot for lot in self.lots.values() if lot.member == member]
            if not lots:
                continue
            live = [lot for lot in lots if lot.remaining > 0 and self.clock < lot.expires_at]
            balance, _ = self.database.run(queries.balance, member, self.clock)
            assert balance["available"] == sum(l.remaining for l in live if l.available_at <= self.clock)
            assert balance["pending"] == sum(l.remaining for l in live if self.clock < l.available_at < l.expires_at)
            assert balance["available"] >= 0 and balance["pending"] >= 0
            # what expires within 90 days (points live 5): every live lot's points, by expiry
            expiring = defaultdict(int)
            for lot in live:
                expiring[lot.expires_at] += lot.remaining
            assert [(item["points"], item["expires_at"]) for item in balance["expiring"]] == sorted(
                ((points, at) for at, points in expiring.items()), key=lambda item: item[1])
            assert (balance["lifetime_earned"], balance["lifetime_burned"]) == (
                sum(lot.points for lot in lots) - self.taken_back[member], self.burned[member])

    @invariant()
    def lots_match_model(self):
        def stored(session):
            return dict(session.execute(select(models.Lot.id, models.Lot.remaining)).all())

        assert self.database.run(stored) == {lot_id: lot.remaining for lot_id, lot in self.lots.items()}

    @invariant()
    def ledger_sums_to_lots(self):
        """Σ lot remaining = Σ issued − burned + restored − returned − expired, on the ledger too."""
        def totals(session):
            lots = session.scalar(select(func.coalesce(func.sum(models.Lot.remaining), 0)))
            ledger = session.scalar(select(func.coalesce(func.sum(models.Transaction.points), 0)))
            keys = session.execute(
                select(models.Transaction.partner_id, models.Transaction.external_id,
                       func.count()).group_by(models.Transaction.partner_id, models.Transaction.external_id)
                .having(func.count() > 1)
            ).all()
            return lots, ledger, keys

        lots, ledger, duplicated = self.database.run(totals)
        assert lots == ledger == sum(lot.remaining for lot in self.lots.values())
        assert duplicated == []

    @invariant()
    def allocations_add_up_row_by_row(self):
        """Each lot holds its points plus what its allocations moved; each burn's, reversal's
        and expiry's allocations add up to its points (a return's to what it took, its
        shortfall apart), so a burn has some. PostgreSQL checks these too, at each commit
        (migration 0017); SQLite does not."""
        A, L, T = models.Allocation, models.Lot, models.Transaction

        def broken(session):
            moved = select(A.lot_id, func.sum(A.points).label("points")).group_by(A.lot_id).subquery()
            lots = session.execute(
                select(L.id).outerjoin(moved, moved.c.lot_id == L.id)
                .where(L.remaining != L.points + func.coalesce(moved.c.points, 0))
            ).all()
            spent = select(A.transaction_id, func.sum(A.points).label("points")).group_by(A.transaction_id).subquery()
            transactions = session.execute(
                select(T.id).outerjoin(spent, spent.c.transaction_id == T.id)
                .where(T.type.in_(("burn", "burn_reversal", "earn_reversal", "expiry")),
                       T.points != func.coalesce(spent.c.points, 0))
            ).all()
            return lots, transactions

        assert self.database.run(broken) == ([], [])


    @invariant()
    def period_totals_match_ledger(self):
        """The counters a close reads equal a GROUP BY over the ledger's own rows."""
        A, T = models.Allocation, models.Transaction
        P, Q = models.PairTotal, models.PartnerTotal

        def grouped(session, keys, sums, where=True):
            rows = session.execute(select(*keys, *sums).where(where).group_by(*keys)).all()
            found = {tuple(row[: len(keys)]): tuple(int(x) for x in row[len(keys):]) for row in rows}
            return {key: values for key, values in found.items() if any(values)}  # burns add no activity

        def points_of(*types, sign=1):
            return func.sum(case((T.type.in_(types), sign * T.points), else_=0))

        def both(session):
            pairs = (A.period_id, A.issuer_id, A.redeemer_id, A.value_rate)
            partners = (T.period_id, T.partner_id, T.fee_rate)
            ledger = (
                grouped(session, pairs, [func.sum(-A.points)], A.type.in_(("burn", "burn_reversal"))),
                grouped(session, partners, [
                    points_of("earn", "bonus"), points_of("earn_reversal", sign=-1),
                    func.sum(T.shortfall_points), points_of("expiry", sign=-1),
                    func.sum(case((T.late, 1), else_=0)),
                ]),
            )
            kept = (
                grouped(session, (P.period_id, P.issuer_id, P.redeemer_id, P.value_rate), [func.sum(P.points)]),
                grouped(session, (Q.period_id, Q.partner_id, Q.fee_rate), [
                    func.sum(Q.points_issued), func.sum(Q.points_reversed), func.sum(Q.shortfall_points),
                    func.sum(Q.points_expired), func.sum(Q.late_count),
                ]),
            )
            return ledger, kept

        ledger, kept = self.database.run(both)
        assert kept == ledger

    @invariant()
    def the_ledger_check_finds_nothing(self):
        """``coalition db check`` on a ledger the service wrote: no line, whatever was posted."""
        with self.database.snapshot() as connection:
            assert checks.problems(connection) == []


@pytest.fixture(autouse=True)
def few_lots_read_first(monkeypatch):
    monkeypatch.setattr(book, "FIRST_LOTS", 1)


def run_machine(app, reset, examples: int, steps: int) -> None:
    LedgerMachine.app, LedgerMachine.reset = app, staticmethod(reset)
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_ledger_matches_reference_model(app, reset_database):
    examples = int(os.environ.get("COALITION_MODEL_EXAMPLES", "60"))
    run_machine(app, reset_database, examples=examples, steps=50)


@pytest.mark.slow
@pytest.mark.timeout(0)  # ten times the steps of the one above: minutes, however many
def test_ledger_matches_reference_model_long(app, reset_database):
    run_machine(app, reset_database, examples=300, steps=100)
