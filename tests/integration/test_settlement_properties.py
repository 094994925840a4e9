"""Settlement invariants over random ledgers (SPEC §7), with Hypothesis.

Each example creates its own partners (ids unique per example), their rates,
and a random sequence of earns, bonuses, burns and reversals posted through
the HTTP API into the previous calendar month; postings the ledger refuses
(422: insufficient points, over-reversal, zero points) are simply skipped.
The database lives for the whole test function, so the period's draft holds
every example posted so far: the expected figures are therefore recomputed
from the whole ``GET /api/v1/transactions?period_id=`` listing (allocations,
dates, originals) and the rates the test created, never from the settlement
itself. The rate in force is chosen here as SPEC §5 words it (partner-specific
beats coalition-wide, then the latest ``effective_from``), as the rates stand
when the draft is read (SPEC §7's v(t)). Redemption rates get new versions in
the middle of each example, so that pair lines sum burns made at several
rates; an example's coalition-wide versions are added after the examples
before it posted, so they re-price those examples' burns dated after them.
"""

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.helpers import every_item
from tests.e2e.settlement_world import (
    Reversible, accepted_or_refused, add_partner, add_rate, expect, previous_month,
)

CENT = Decimal("0.01")
EXPONENT = {"EUR": 2, "RUB": 2, "CZK": 2, "JPY": 0}
STEP = timedelta(minutes=20)  # operation k occurs at day 1 of the month + k × STEP

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

partners_strategy = st.lists(
    st.fixed_dictionaries({
        "currency": st.sampled_from(sorted(EXPONENT)),
        "earn": st.sampled_from(["0.1", "0.37", "1", "2", "3.5"]),
        # None: the coalition-wide redemption / fee rate applies
        "redemption": st.sampled_from([None, "0.0125", "0.0075", "0.013", "0.0033"]),
        # later versions, spread over the example's operations, so that a pair line often
        # sums burns at several rates
        "redemption_later": st.lists(st.sampled_from(["0.0115", "0.0137", "0.0051", "0.0149"]),
                                     max_size=3),
        "fee": st.sampled_from([None, "0.001", "0.0007", "0.00125", "0"]),
        # versions the operator adds once the example has posted, dated back into it:
        # they re-price what was posted before them
        "added_late": st.lists(st.tuples(st.sampled_from(["redemption", "fee"]),
                                         st.sampled_from(["0.0111", "0.0009", "0"])), max_size=2),
    }),
    min_size=2,
    max_size=4,
)

# later versions of the coalition-wide redemption rate, spread over the example's operations
later_strategy = st.lists(st.sampled_from(["0.0117", "0.0093", "0.0121"]), min_size=1, max_size=3)

MEMBERS = 3
member = st.integers(0, MEMBERS - 1)
pick = st.integers(0, 1000)
percent = st.integers(1, 100)
# Each member first earns at one of the partners, so that burns have points to spend.
opening_strategy = st.lists(st.tuples(pick, st.integers(100, 300_000)), min_size=MEMBERS, max_size=MEMBERS)
operations_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), member, pick, st.integers(1, 300_000)),
        st.tuples(st.just("bonus"), member, st.integers(1, 2000)),
        # burns take a share of the member's balance, so most of them succeed
        st.tuples(st.just("burn"), member, pick, percent),
        st.tuples(st.just("burn"), member, pick, percent),
        st.tuples(st.just("burn_reversal"), pick, st.one_of(st.none(), percent)),
        st.tuples(st.just("burn_reversal"), pick, percent),
        st.tuples(st.just("earn_reversal"), pick, st.sampled_from(["amount", "points"]), percent),
    ),
    min_size=6,
    max_size=20,
)


@dataclass(frozen=True)
class Rate:
    id: int
    kind: str
    value: Decimal
    partner_id: str | None
    effective_from: datetime


@dataclass
class Book:
    """What the test itself created: its rates, and an example counter."""

    rates: list[Rate] = field(default_factory=list)
    examples: itertools.count = field(default_factory=itertools.count)

    def rate(self, operator, kind, value, **fields) -> None:
        created = add_rate(operator, kind, value, **fields)
        self.rates.append(Rate(created["id"], kind, Decimal(value), created["partner_id"],
                               datetime.fromisoformat(created["effective_from"])))

    def in_force(self, kind: str, partner_id: str, at: datetime) -> Decimal | None:
        """SPEC §5: among the versions begun by ``at`` (none of the test's ends), the
        partner's own beat the coalition-wide ones, then the latest effective_from wins."""
        begun = [rate for rate in self.rates
                 if rate.kind == kind and rate.partner_id in (None, partner_id) and rate.effective_from <= at]
        if not begun:
            return None
        return max(begun, key=lambda rate: (rate.partner_id is not None, rate.effective_from, rate.id)).value


class Coalition:
    """The operator's client and the book, with a repr Hypothesis can print in a failure report."""

    def __init__(self, operator, book: Book):
        self.operator, self.book = operator, book

    def __repr__(self) -> str:
        return f"Coalition(rates={len(self.book.rates)})"


@pytest.fixture
def coalition(operator) -> Coalition:
    book = Book()
    book.rate(operator, "redemption", "0.01")
    book.rate(operator, "fee", "0.0005")
    return Coalition(operator, book)


def _amount(minor: int, currency: str) -> str:
    return str(Decimal(minor).scaleb(-EXPONENT[currency]))


def _post_random_ledger(operator, book: Book, partners, later_coalition_wide, opening, operations) -> str:
    """Create the example's partners and rates, post its operations; returns the period id."""
    start, _, period_id = previous_month()
    operations = [("earn", m, p, minor) for m, (p, minor) in enumerate(opening)] + operations
    n = next(book.examples)

    def switches(values):
        """(value, effective_from) for each later version, evenly spread over the operations."""
        every = len(operations) // (len(values) + 1)
        return [(value, (start + timedelta(days=1) + (k + 1) * every * STEP + STEP / 2).isoformat())
                for k, value in enumerate(values)]

    for value, effective_from in switches(later_coalition_wide):
        book.rate(operator, "redemption", value, effective_from=effective_from)
    ids = []
    for index, spec in enumerate(partners):
        partner_id = f"x{n}-p{index}"
        add_partner(operator, partner_id, f"Partner {n}/{index}", "shop", spec["currency"])
        book.rate(operator, "earn", spec["earn"], partner_id=partner_id)
        if spec["redemption"] is not None:
            book.rate(operator, "redemption", spec["redemption"], partner_id=partner_id)
        for value, effective_from in switches(spec["redemption_later"]):
            book.rate(operator, "redemption", value, partner_id=partner_id, effective_from=effective_from)
        if spec["fee"] is not None:
            book.rate(operator, "fee", spec["fee"], partner_id=partner_id)
        ids.append((partner_id, spec["currency"]))

    originals = Reversible()
    balance = defaultdict(int)  # member → points, from the signed points of each posting
    for step, operation in enumerate(operations):
        kind = operation[0]
        body = {"external_id": f"x{n}-op{step}", "type": kind,
                "occurred_at": (start + timedelta(days=1) + step * STEP).isoformat()}
        if kind == "earn":
            _, m, p, minor = operation
            partner_id, currency = ids[p % len(ids)]
            body |= {"partner_id": partner_id, "member_id": f"x{n}-m{m}",
                     "amount": _amount(minor, currency), "currency": currency}
        elif kind == "bonus":
            _, m, points = operation
            body |= {"partner_id": "coalition", "member_id": f"x{n}-m{m}", "points": points,
                     "reason": "goodwill"}
        elif kind == "burn":
            _, m, p, share = operation
            points = max(1, balance[f"x{n}-m{m}"] * share // 100)
            body |= {"partner_id": ids[p % len(ids)][0], "member_id": f"x{n}-m{m}", "points": points}
        else:  # a burn reversal or a return
            body = originals.reversal(body, operation)
            if body is None:
                continue
        response = accepted_or_refused(operator, body)
        if response.status_code != 201:
            continue
        posted = response.get_json()
        balance[posted["member_id"]] += posted["points"]
        originals.keep(body)
    for (partner_id, _), spec in zip(ids, partners, strict=True):
        added = spec["added_late"]
        for (kind, value), (_, effective_from) in zip(added, switches(added), strict=True):
            book.rate(operator, kind, value, partner_id=partner_id, effective_from=effective_from)
    return period_id


def _original(transactions: list[dict], transaction: dict) -> dict:
    """The burn a burn reversal reverses, the earn or bonus a return reverses; else itself."""
    if transaction["original_id"] is None:
        return transaction
    return next(t for t in transactions if t["id"] == transaction["original_id"])


def _dated(transaction: dict) -> datetime:
    return datetime.fromisoformat(transaction["occurred_at"])


def _expected_pair_lines(book: Book, transactions: list[dict]) -> dict:
    """(issuer, redeemer) → (points, value): Σ allocation points × the redemption rate in
    force at the (original) burn's occurred_at, rounded once."""
    points, value = defaultdict(int), defaultdict(Decimal)
    for transaction in transactions:
        if transaction["type"] not in ("burn", "burn_reversal"):
            continue
        sign = 1 if transaction["type"] == "burn" else -1
        burn = _original(transactions, transaction)
        rate = book.in_force("redemption", burn["partner_id"], _dated(burn))
        for allocation in transaction["allocations"]:
            pair = (allocation["issuer_id"], transaction["partner_id"])
            points[pair] += sign * allocation["points"]
            value[pair] += sign * allocation["points"] * rate
    return {
        pair: (points[pair], "0.00" if pair[0] == pair[1]
               else str(value[pair].quantize(CENT, rounding=ROUND_HALF_EVEN)))
        for pair in points
    }


def _expected_fee_lines(book: Book, transactions: list[dict]) -> dict[str, dict[Decimal, int]]:
    """partner → fee rate → Σ points issued (returns negative) at the fee rate in force at
    the (original) issue's occurred_at, where neither the rate nor the sum is zero; the
    coalition pays no fee to itself."""
    points = defaultdict(lambda: defaultdict(int))
    for transaction in transactions:
        if transaction["type"] in ("earn", "bonus", "earn_reversal") and transaction["partner_id"] != "coalition":
            issue = _original(transactions, transaction)
            rate = book.in_force("fee", issue["partner_id"], _dated(issue))
            if rate:  # none, or zero: no fee, and no fee line
                points[transaction["partner_id"]][rate] += transaction["points"]
    return {partner: {rate: n for rate, n in by_rate.items() if n}
            for partner, by_rate in points.items() if any(by_rate.values())}


def _expected_fees(book: Book, transactions: list[dict]) -> dict[str, str]:
    """partner → round_half_even(Σ points × fee rate over its fee lines)."""
    return {partner: str(sum(rate * n for rate, n in by_rate.items()).quantize(CENT, rounding=ROUND_HALF_EVEN))
            for partner, by_rate in _expected_fee_lines(book, transactions).items()}


def _settle(coalition: Coalition, partners, later, opening, operations):
    operator = coalition.operator
    period_id = _post_random_ledger(operator, coalition.book, partners, later, opening, operations)
    draft = expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)
    return draft, every_item(operator, "/api/v1/transactions", period_id=period_id, limit=1000)


@PROPERTY
@given(partners=partners_strategy, later=later_strategy, opening=opening_strategy,
       operations=operations_strategy)
def test_every_pair_line_is_the_rounded_sum_of_its_allocations(coalition, partners, later, opening, operations):
    draft, transactions = _settle(coalition, partners, later, opening, operations)
    book = coalition.book
    lines = {(line["issuer_id"], line["redeemer_id"]): (line["points"], line["value"])
             for line in draft["pair_lines"]}
    assert lines == _expected_pair_lines(book, transactions)


@PROPERTY
@given(partners=partners_strategy, later=later_strategy, opening=opening_strategy,
       operations=operations_strategy)
def test_receivables_and_payables_are_sums_of_pair_lines_and_cancel_out(coalition, partners, later, opening, operations):
    draft, transactions = _settle(coalition, partners, later, opening, operations)
    book = coalition.book
    receivable, payable = defaultdict(Decimal), defaultdict(Decimal)
    for (issuer, redeemer), (_, value) in _expected_pair_lines(book, transactions).items():
        if issuer != redeemer:
            receivable[redeemer] += Decimal(value)
            payable[issuer] += Decimal(value)
    for entry in draft["partners"]:
        assert Decimal(entry["receivable"]) == receivable[entry["partner_id"]], entry
        assert Decimal(entry["payable"]) == payable[entry["partner_id"]], entry
    assert sum(Decimal(e["receivable"]) - Decimal(e["payable"]) for e in draft["partners"]) == 0


@PROPERTY
@given(partners=partners_strategy, later=later_strategy, opening=opening_strategy,
       operations=operations_strategy)
def test_fees_are_rounded_once_and_nets_sum_to_minus_fees(coalition, partners, later, opening, operations):
    draft, transactions = _settle(coalition, partners, later, opening, operations)
    book = coalition.book
    fees = _expected_fees(book, transactions)
    for entry in draft["partners"]:
        expected_fee = "0.00" if entry["partner_id"] == "coalition" else fees.get(entry["partner_id"], "0.00")
        assert entry["fees"] == expected_fee, entry
        assert Decimal(entry["net"]) == (
            Decimal(entry["receivable"]) - Decimal(entry["payable"]) - Decimal(entry["fees"])), entry
    assert sum(Decimal(e["net"]) for e in draft["partners"]) == -sum(
        Decimal(e["fees"]) for e in draft["partners"])


@PROPERTY
@given(partners=partners_strategy, later=later_strategy, opening=opening_strategy,
       operations=operations_strategy)
def test_fee_lines_are_the_points_issued_at_each_fee_rate(coalition, partners, later, opening, operations):
    draft, transactions = _settle(coalition, partners, later, opening, operations)
    shown = {entry["partner_id"]: {Decimal(line["fee_rate"]): line["points"] for line in entry["fee_lines"]}
             for entry in draft["partners"] if entry["fee_lines"]}
    assert shown == _expected_fee_lines(coalition.book, transactions)
    for entry in draft["partners"]:
        for line in entry["fee_lines"]:
            assert Decimal(line["exact_fees"]) == line["points"] * Decimal(line["fee_rate"]), line
