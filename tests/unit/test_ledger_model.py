"""Property tests: the lot functions against a reference ledger kept in plain ints.

Hypothesis draws sequences of earns, burns, burn reversals, waits and expiry
runs. Each sequence is played twice side by side: on domain values, each
decision taken by :mod:`coalition.domain.lots` (``allocate``, ``restore``,
``balance``, ``expired``), and on a tiny reference model written here with
hours and points as ints, which decides by the words of SPEC §6 alone. Each
test then checks one rule over every step of the run.
"""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.domain import lots
from coalition.domain.errors import InsufficientPoints, Invalid
from coalition.domain.lots import BurnAllocation, Lot

START = datetime(2026, 1, 1, tzinfo=UTC)
ISSUERS = ("aroma", "skyair", "coalition")

RUNS = settings(max_examples=200, deadline=None, database=None)


def at(hour: int) -> datetime:
    return START + timedelta(hours=hour)


# Operations. Times are whole hours from a small set of steps, so that burns,
# balances and expiry runs often fall exactly on a lot's available_at or
# expires_at, and lots often share an expiry or an earning hour (the
# tie-breaks). Backdated earns give an older lot a higher id. Burns and
# reversals sometimes ask for exactly what is left, one less or one more.
HORIZON_HOURS = 90 * 24  # the balance lists what expires within 90 days

earns = st.tuples(
    st.just("earn"),
    st.sampled_from(ISSUERS),
    st.integers(1, 300),  # points
    st.sampled_from([0, 0, 6, 24]),  # backdated by, hours
    st.sampled_from([0, 0, 6, 24]),  # hold, hours
    st.sampled_from([24, 48, 96, HORIZON_HOURS, HORIZON_HOURS + 24]),  # lifetime, hours
)
amounts = st.one_of(
    st.tuples(st.just("points"), st.integers(1, 400)),
    st.tuples(st.just("edge"), st.sampled_from([-1, 0, 1])),  # what is left + this
)
burns = st.tuples(st.just("burn"), amounts)
restores = st.tuples(
    st.just("restore"),
    st.integers(0, 1000),  # which burn (modulo the number of burns)
    st.one_of(st.just(("all",)), amounts),  # all = points None, all not yet reversed
)
waits = st.tuples(st.just("wait"), st.sampled_from([1, 6, 12, 24]))
expiry_runs = st.tuples(st.just("expire"))
operations = st.lists(st.one_of(earns, burns, restores, waits, expiry_runs), max_size=40)


def wanted(amount, left: int) -> int | None:
    """Points asked for: a number, None for all, or what is left plus -1, 0 or 1 (at least 1)."""
    if amount[0] == "all":
        return None
    if amount[0] == "points":
        return amount[1]
    return max(1, left + amount[1])


@dataclass
class RefLot:
    id: int
    issuer: str
    points: int
    remaining: int
    earned: int
    available: int
    expires: int


@dataclass
class RefAllocation:
    id: int
    lot_id: int
    points: int
    restored: int = 0


class Reference:
    """The ledger in plain ints: hours since START and points."""

    def __init__(self):
        self.lots: dict[int, RefLot] = {}
        self.burns: list[list[RefAllocation]] = []
        self.next_allocation_id = 1

    def spendable(self, now: int) -> list[RefLot]:
        live = [
            lot for lot in self.lots.values()
            if lot.remaining > 0 and lot.available <= now < lot.expires
        ]
        return sorted(live, key=lambda lot: (lot.expires, lot.earned, lot.id))

    def available(self, now: int) -> int:
        return sum(lot.remaining for lot in self.spendable(now))

    def pending(self, now: int) -> int:
        return sum(
            lot.remaining for lot in self.lots.values()
            if now < lot.available < lot.expires  # a hold that outlasts its lot never ends
        )

    def expiring(self, now: int) -> list[tuple[int, int]]:
        """(points, expiry hour) for live lots expiring within 90 days, soonest first; a lot
        whose hold outlasts it is not live: its points were never the member's to spend."""
        by_hour: dict[int, int] = {}
        for lot in self.lots.values():
            if lot.remaining > 0 and lot.available < lot.expires and now < lot.expires <= now + HORIZON_HOURS:
                by_hour[lot.expires] = by_hour.get(lot.expires, 0) + lot.remaining
        return [(points, hour) for hour, points in sorted(by_hour.items())]

    def burn(self, points: int, now: int) -> list[tuple[int, int]] | None:
        """(lot id, points) taken, expiring first; None when the member is short."""
        if self.available(now) < points:
            return None
        taken, wanted = [], points
        for lot in self.spendable(now):
            part = min(lot.remaining, wanted)
            if part == 0:
                break
            lot.remaining -= part
            wanted -= part
            taken.append((lot.id, part))
        self.burns.append([])
        for lot_id, part in taken:
            self.burns[-1].append(RefAllocation(self.next_allocation_id, lot_id, part))
            self.next_allocation_id += 1
        return taken

    def restore(
        self, burn: list[RefAllocation], wanted: int | None
    ) -> list[tuple[int, int]] | None:
        """(allocation id, points) put back, newest allocation first; None if too many."""
        left = sum(a.points - a.restored for a in burn)
        wanted = left if wanted is None else wanted
        if wanted <= 0 or wanted > left:
            return None
        decisions = []
        for allocation in sorted(burn, key=lambda a: a.id, reverse=True):
            back = min(allocation.points - allocation.restored, wanted)
            if back > 0:
                allocation.restored += back
                self.lots[allocation.lot_id].remaining += back
                wanted -= back
                decisions.append((allocation.id, back))
        return decisions

    def expire(self, now: int) -> list[int]:
        ids = [lot.id for lot in self.lots.values() if lot.remaining > 0 and lot.expires <= now]
        for lot_id in ids:
            self.lots[lot_id].remaining = 0
        return ids


@dataclass
class Burn:
    """One burn: the lots before it, what the domain decided, what the model decided."""

    lots_before: dict[int, Lot]
    points: int
    at: datetime
    allocations: list[lots.Allocation] | None  # None: InsufficientPoints
    expected: list[tuple[int, int]] | None


@dataclass
class Restore:
    burn_before: list[BurnAllocation]
    burn_after: list[BurnAllocation]
    points: int | None
    decisions: list[tuple[BurnAllocation, int]] | None  # None: over_reversal
    expected: list[tuple[int, int]] | None


@dataclass
class Step:
    """The state after one operation, on both sides."""

    lots: dict[int, Lot]
    balance: lots.Balance
    reference_lots: dict[int, int]  # id -> remaining
    reference_expiring: list[tuple[int, datetime]]
    reference_available: int
    reference_pending: int


@dataclass
class Run:
    burns: list[Burn] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)
    expiries: list[tuple[list[int], list[int]]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def play(ops) -> Run:
    """Play the operations on domain values and on the reference, recording each decision."""
    run, ref = Run(), Reference()
    domain_lots: dict[int, Lot] = {}
    domain_burns: list[list[BurnAllocation]] = []
    now = 0
    next_lot_id = next_allocation_id = 1

    for op in ops:
        kind = op[0]
        if kind == "earn":
            _, issuer, points, backdate, hold, lifetime = op
            earned = now - backdate
            domain_lots[next_lot_id] = Lot(
                id=next_lot_id, issuer_id=issuer, points=points, remaining=points,
                earned_at=at(earned), available_at=at(earned + hold),
                expires_at=at(earned + lifetime),
            )
            ref.lots[next_lot_id] = RefLot(next_lot_id, issuer, points, points, earned,
                                           earned + hold, earned + lifetime)
            next_lot_id += 1
        elif kind == "burn":
            points = wanted(op[1], ref.available(now))
            before = dict(domain_lots)
            try:
                allocations = lots.allocate(list(domain_lots.values()), points, at(now))
            except InsufficientPoints:
                allocations = None
            expected = ref.burn(points, now)
            run.burns.append(Burn(before, points, at(now), allocations, expected))
            if allocations is not None:
                burn = []
                for allocation in allocations:
                    lot = domain_lots[allocation.lot_id]
                    domain_lots[lot.id] = replace(lot, remaining=lot.remaining - allocation.points)
                    burn.append(BurnAllocation(next_allocation_id, lot.id, allocation.issuer_id,
                                               allocation.points, 0))
                    next_allocation_id += 1
                domain_burns.append(burn)
        elif kind == "restore":
            if not domain_burns or len(domain_burns) != len(ref.burns):
                continue  # no burn yet (or burns already disagree, which the burn tests report)
            _, index, amount = op
            index %= len(domain_burns)
            points = wanted(amount, sum(a.points - a.restored for a in ref.burns[index]))
            before = domain_burns[index]
            try:
                decisions = lots.restore(before, points)
            except Invalid as error:
                assert error.reason == "over_reversal"
                decisions = None
            expected = ref.restore(ref.burns[index], points)
            after = list(before)
            for allocation, back in decisions or []:
                position = next(i for i, a in enumerate(after) if a.id == allocation.id)
                after[position] = replace(after[position], restored=after[position].restored + back)
                lot = domain_lots[allocation.lot_id]
                domain_lots[lot.id] = replace(lot, remaining=lot.remaining + back)
            domain_burns[index] = after
            run.restores.append(Restore(before, after, points, decisions, expected))
        elif kind == "wait":
            now += op[1]
        else:  # the expiry job
            gone = lots.expired(list(domain_lots.values()), at(now))
            for lot in gone:
                domain_lots[lot.id] = replace(lot, remaining=0)
            run.expiries.append(([lot.id for lot in gone], ref.expire(now)))

        run.steps.append(Step(
            lots=dict(domain_lots),
            balance=lots.balance(list(domain_lots.values()), at(now)),
            reference_lots={lot.id: lot.remaining for lot in ref.lots.values()},
            reference_expiring=[(points, at(hour)) for points, hour in ref.expiring(now)],
            reference_available=ref.available(now),
            reference_pending=ref.pending(now),
        ))
    return run


# Burns


@RUNS
@given(operations)
def test_allocation_never_takes_more_than_a_lots_remaining(ops):
    for burn in play(ops).burns:
        for allocation in burn.allocations or []:
            assert 0 < allocation.points <= burn.lots_before[allocation.lot_id].remaining


@RUNS
@given(operations)
def test_allocations_sum_to_the_burn(ops):
    for burn in play(ops).burns:
        if burn.allocations is not None:
            assert sum(allocation.points for allocation in burn.allocations) == burn.points


@RUNS
@given(operations)
def test_burn_uses_only_lots_spendable_at_its_time(ops):
    # available_at ≤ burn time < expires_at
    for burn in play(ops).burns:
        for allocation in burn.allocations or []:
            lot = burn.lots_before[allocation.lot_id]
            assert lot.available_at <= burn.at < lot.expires_at


@RUNS
@given(operations)
def test_burn_allocates_like_the_reference_fifo(ops):
    # Same lots, same order, same points; refused (None) exactly when the reference is short.
    for burn in play(ops).burns:
        taken = burn.allocations and [(a.lot_id, a.issuer_id, a.points) for a in burn.allocations]
        expected = burn.expected and [
            (lot_id, burn.lots_before[lot_id].issuer_id, points) for lot_id, points in burn.expected
        ]
        assert taken == expected


# Balances


@RUNS
@given(operations)
def test_balance_is_never_negative(ops):
    for step in play(ops).steps:
        assert step.balance.available >= 0
        assert step.balance.pending >= 0
        assert all(lot.remaining >= 0 for lot in step.lots.values())


@RUNS
@given(operations)
def test_balance_agrees_with_the_reference(ops):
    for step in play(ops).steps:
        assert (step.balance.available, step.balance.pending) == (
            step.reference_available, step.reference_pending)


@RUNS
@given(operations)
def test_balance_lists_what_expires_within_90_days_like_the_reference(ops):
    for step in play(ops).steps:
        assert step.balance.expiring == step.reference_expiring


@RUNS
@given(operations)
def test_lots_agree_with_the_reference_after_every_operation(ops):
    for step in play(ops).steps:
        assert {lot.id: lot.remaining for lot in step.lots.values()} == step.reference_lots


@RUNS
@given(operations)
def test_lot_never_holds_more_than_it_was_created_with(ops):
    for step in play(ops).steps:
        assert all(lot.remaining <= lot.points for lot in step.lots.values())


# Burn reversals


@RUNS
@given(operations)
def test_restore_never_exceeds_what_was_burned(ops):
    for restore in play(ops).restores:
        for allocation in restore.burn_after:
            assert 0 <= allocation.restored <= allocation.points


@RUNS
@given(operations)
def test_restore_puts_back_exactly_what_was_asked(ops):
    # points=None asks for everything not yet reversed.
    for restore in play(ops).restores:
        if restore.decisions is None:
            continue
        left = sum(a.points - a.restored for a in restore.burn_before)
        wanted = left if restore.points is None else restore.points
        assert sum(back for _, back in restore.decisions) == wanted
        assert all(0 < back <= allocation.restorable for allocation, back in restore.decisions)


@RUNS
@given(operations)
def test_restore_returns_newest_allocation_first_like_the_reference(ops):
    # Same allocations, same points; refused (None) exactly when the reference says over_reversal.
    for restore in play(ops).restores:
        decided = restore.decisions and [(a.id, back) for a, back in restore.decisions]
        assert decided == restore.expected


# The expiry job


@RUNS
@given(operations)
def test_expired_lists_the_lots_the_reference_expires(ops):
    for domain_ids, reference_ids in play(ops).expiries:
        assert sorted(domain_ids) == sorted(reference_ids)
