"""A rate added late settles as if it had been added first (SPEC §5, §7), with Hypothesis.

A settlement values each burn at the redemption rate in force at its
``occurred_at``, and charges each issue the fee rate in force at its own, as
the rates stand when the settlement is computed (SPEC §7's v(t); decisions.md,
"A rate added late"). A posting's points never depend on a redemption or fee
rate. So the same ledger settles the same whether the operator added those
rates before the postings, or some of them after, dated back over them: the
draft (partners, pair lines, netting) is the same, and so is every posting's
outcome; and the period closed once they are added settles as its draft.
The first ledger takes the plain path (every posting recorded the rates in
force); the second the re-pricing (coalition/domain/repricing.py,
coalition/db/repricing_sums.py), which must find each posting in a late rate's
window, and the stretch of rates it is dated in, whatever the rate's scope,
its end and how its instants fall on the postings'.

Each example posts twice into the previous calendar month, on an emptied
database each time: three partners in three currencies, their earn rates, a
coalition-wide redemption and fee rate from 200 days ago; then earns, bonuses
by the operator, burns, and burn reversals and returns of earlier postings.
The example's redemption and fee rates (the partner's own or coalition-wide,
with or without an end, begun or ended on a posting's instant or between two)
are added in the same order in both, so they get the same ids: all before the
postings, then the first ``split`` before and the others after.
"""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.settlement_world import (
    Reversible, accepted_or_refused, add_partner, add_rate, close, expect, previous_month,
)

PARTNERS = {"aroma": "RUB", "skyair": "EUR", "sushi": "JPY"}
EXPONENT = {"RUB": 2, "EUR": 2, "JPY": 0}
EARN = {"aroma": "0.1", "skyair": "2", "sushi": "0.05"}
FX = {"RUB": "0.011", "JPY": "0.0062"}
MEMBERS = 3
STEP = timedelta(hours=20)  # operation k occurs at day 1 of the month + k × STEP
OPERATIONS = 20

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

member = st.integers(0, MEMBERS - 1)
partner = st.sampled_from(sorted(PARTNERS))
pick = st.integers(0, 1000)
percent = st.integers(1, 100)
# Each member first earns at one of the partners, so that burns have points to spend.
opening_strategy = st.lists(st.tuples(partner, st.integers(100, 300_000)), min_size=MEMBERS, max_size=MEMBERS)
operation_strategy = st.one_of(
    st.tuples(st.just("earn"), member, partner, st.integers(1, 300_000)),
    st.tuples(st.just("bonus"), member, st.integers(1, 2000)),
    # burns take a share of the member's balance, so most of them succeed
    st.tuples(st.just("burn"), member, partner, percent),
    st.tuples(st.just("burn"), member, partner, percent),
    st.tuples(st.just("burn_reversal"), pick, st.none() | percent),
    st.tuples(st.just("earn_reversal"), pick, st.sampled_from(["amount", "points"]), percent),
)


@st.composite
def ledgers(draw) -> tuple[list[tuple], list[dict], int]:
    """The example's operations; its rates, dated among them in half steps from the first
    operation's instant (an even one is an operation's own, -1 precedes them all); and
    how many of the rates are added before the postings (not all of them)."""
    opening = [("earn", m, p, minor) for m, (p, minor) in enumerate(draw(opening_strategy))]
    operations = opening + draw(st.lists(operation_strategy, min_size=8, max_size=OPERATIONS - MEMBERS))
    half_steps = 2 * len(operations)
    rate = st.fixed_dictionaries({
        "kind": st.sampled_from(["redemption", "fee"]),
        "partner_id": st.none() | st.sampled_from(sorted(PARTNERS)),  # None: coalition-wide
        "value": st.sampled_from(["0.0111", "0.0009", "0", "0.02", "0.0133"]),
        "from": st.integers(-1, half_steps),
        # half steps to its effective_to, often before the last operation; None: no end
        "lasts": st.none() | st.integers(1, 4) | st.integers(1, half_steps),
    })
    rates = draw(st.lists(rate, min_size=4, max_size=8))
    return operations, rates, draw(st.integers(0, len(rates) - 1))


def _at(start, half: int) -> str:
    return (start + timedelta(days=1) + half * STEP / 2).isoformat()


def _add(operator, start, rate: dict) -> None:
    fields = {} if rate["partner_id"] is None else {"partner_id": rate["partner_id"]}
    if rate["lasts"] is not None:
        fields["effective_to"] = _at(start, rate["from"] + rate["lasts"])
    add_rate(operator, rate["kind"], rate["value"], effective_from=_at(start, rate["from"]), **fields)


def _post(operator, start, operations) -> list[tuple[int, int | None]]:
    """Post the operations in order; each one's status and points (None where refused)."""
    originals = Reversible()
    balance = defaultdict(int)
    outcomes = []
    for step, operation in enumerate(operations):
        kind = operation[0]
        body = {"external_id": f"op{step}", "type": kind, "occurred_at": _at(start, 2 * step)}
        if kind == "earn":
            _, m, partner_id, minor = operation
            currency = PARTNERS[partner_id]
            body |= {"partner_id": partner_id, "member_id": f"m{m}", "currency": currency,
                     "amount": str(Decimal(minor).scaleb(-EXPONENT[currency]))}
        elif kind == "bonus":
            _, m, points = operation
            body |= {"partner_id": "coalition", "member_id": f"m{m}", "points": points, "reason": "goodwill"}
        elif kind == "burn":
            _, m, partner_id, share = operation
            body |= {"partner_id": partner_id, "member_id": f"m{m}",
                     "points": max(1, balance[f"m{m}"] * share // 100)}
        else:  # a burn reversal or a return
            body = originals.reversal(body, operation)
            if body is None:
                continue
        response = accepted_or_refused(operator, body)
        posted = response.get_json()
        outcomes.append((response.status_code, posted.get("points")))
        if response.status_code != 201:
            continue
        balance[posted["member_id"]] += posted["points"]
        originals.keep(body)
    return outcomes


def _figures(settlement: dict) -> dict:
    return {part: settlement[part] for part in ("partners", "pair_lines", "netting")}


def _coalition(reset_database, make_key, start):
    """An emptied database, its operator, the partners and the rates from 200 days ago."""
    reset_database()
    operator = make_key("operator")
    for partner_id, currency in PARTNERS.items():
        add_partner(operator, partner_id, partner_id.title(), "shop", currency)
        add_rate(operator, "earn", EARN[partner_id], partner_id=partner_id)
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", "0.0005")
    for currency, value in FX.items():
        add_rate(operator, "fx", value, currency=currency)
    return operator


# Rarely drawn, so always run: three burns at aroma, in the window of the coalition-wide
# redemption rate of 0.0133 added late and dated before them all; one of 0.02, added first,
# begins after the first burn and ends on the second's instant, so the last two are dated
# in a stretch that begins where it ends (0.0133 in force), not where it begins (0.02).
NESTED = (
    [("earn", m, "skyair", 100_000) for m in range(MEMBERS)] + [("burn", 0, "aroma", 10)] * 3,
    [{"kind": "redemption", "partner_id": None, "value": "0.02", "from": 7, "lasts": 1},
     {"kind": "redemption", "partner_id": None, "value": "0.0133", "from": -1, "lasts": None}],
    1,
)


@PROPERTY
@given(ledger=ledgers())
@example(ledger=NESTED)
def test_rates_added_after_the_postings_settle_them_as_if_added_before(reset_database, make_key, ledger):
    operations, rates, split = ledger
    start, _, period_id = previous_month()

    operator = _coalition(reset_database, make_key, start)
    for rate in rates:
        _add(operator, start, rate)
    first = _post(operator, start, operations)
    added_first = expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)

    operator = _coalition(reset_database, make_key, start)
    for rate in rates[:split]:
        _add(operator, start, rate)
    late = _post(operator, start, operations)
    for rate in rates[split:]:
        _add(operator, start, rate)
    added_late = expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)

    assert late == first
    assert _figures(added_late) == _figures(added_first)
    assert _figures(close(operator, period_id)) == _figures(added_late)
