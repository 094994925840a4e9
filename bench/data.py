"""The benchmark coalition: 21 partners in 6 currencies, and a bulk loader for its history.

Partners, rates and keys are created through the HTTP API (:func:`configure`).
The historical ledger — members, earns, bonuses, returns, burns, burn
reversals, their lots and allocations — is far too big to post one by one, so
:func:`bulk_load` generates it in Python and writes it with ``COPY`` straight
into the tables, exactly as the service would have written it:

* an earn's points are ``floor(amount × earn rate)`` of its partner (no promos,
  no thresholds), its ``rate_ids`` are ``[earn, fee]`` and ``fee_rate`` is the
  fee in force; a bonus is issued by ``coalition`` and pays no fee;
* every lot is ``available_at = earned_at + hold_days``, ``expires_at =
  earned_at + 365 days``, and ``remaining = points + Σ its allocations``;
* a return (``earn_reversal`` by amount) takes ``floor(points × returned
  amount / amount)`` from its lot before any burn touches it, so there is no
  shortfall;
* a burn spends the member's lots first-expiring-first (all lots share the
  TTL, so oldest first) and its allocations sum to its points; each burn is
  sized to cross one lot boundary, so a burn has about two allocations;
* a burn reversal restores the member's last burn in full, allocation by
  allocation, with ``reverses_id`` and the burn's ``value_rate``.

The only shortcut: ``request_hash`` of a generated row is a placeholder, so
replaying a generated ``external_id`` over HTTP would answer 409, not 200.

One stage is one settlement period: its members earn in the first 30 % of
the period, return within a day and a half, and burn between 55 % and 95 %
of it; a few reverse their last burn at 97 %. Heavy members hold many small
live lots for the balance figure, their rows spread among everyone else's.
"""

import math
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import psycopg

from bench.pg import conninfo
from coalition.domain import totals
from coalition.domain.partners import OPERATOR_PARTNER

TTL_DAYS = 365
EARN_WINDOW = (0.0, 0.30)
BURN_WINDOW = (0.55, 0.95)
REVERSAL_AT = 0.97
RETURN_SHARE = 0.10
BONUS_SHARE = 0.05
BURN_REVERSAL_SHARE = 0.02
RICH_BALANCE = 300  # points a member needs to be used for HTTP burns
RICH_SAMPLE = 20_000
MEMBERS_PER_CHUNK = 5_000
PLACEHOLDER_HASH = "bench" + "0" * 59


@dataclass(frozen=True)
class PartnerSpec:
    id: str
    name: str
    category: str
    currency: str
    hold_days: int
    earn: str  # points per unit of currency
    amounts: tuple[str, str]  # typical purchase, low and high, in the currency
    redemption: str | None = None  # partner-specific redemption rate
    fee: str | None = None  # partner-specific fee rate


PARTNERS = (
    PartnerSpec(
        "freshmart",
        "FreshMart Supermarkets",
        "shop",
        "RUB",
        0,
        "0.05",
        ("300.00", "6000.00"),
        fee="0.0004",
    ),
    PartnerSpec("aroma", "Кофейня Арома", "cafe", "RUB", 0, "0.1", ("150.00", "900.00")),
    PartnerSpec("knizhny-dom", "Книжный Дом", "shop", "RUB", 1, "0.05", ("500.00", "5000.00")),
    PartnerSpec("titan", "Фитнес Титан", "gym", "RUB", 5, "0.02", ("2000.00", "12000.00")),
    PartnerSpec(
        "nordavia", "Северные Авиалинии", "travel", "RUB", 0, "0.03", ("5000.00", "60000.00")
    ),
    PartnerSpec(
        "skyair", "SkyAir", "travel", "EUR", 0, "1", ("80.00", "900.00"), redemption="0.012"
    ),
    PartnerSpec("ironfit", "IronFit Gym", "gym", "EUR", 5, "2", ("30.00", "120.00")),
    PartnerSpec("cafe-lumiere", "Café Lumière", "cafe", "EUR", 0, "5", ("3.00", "25.00")),
    PartnerSpec("buecherhaus", "Bücherhaus Berlin", "shop", "EUR", 1, "1", ("10.00", "150.00")),
    PartnerSpec("eurofuel", "EuroFuel", "shop", "EUR", 0, "1", ("20.00", "120.00")),
    PartnerSpec(
        "grandhotel", "Grand Hotel Praha", "travel", "CZK", 3, "0.05", ("2000.00", "30000.00")
    ),
    PartnerSpec("kavarna-slavia", "Kavárna Slavia", "cafe", "CZK", 0, "0.5", ("80.00", "600.00")),
    PartnerSpec("london-eats", "London Eats", "cafe", "GBP", 0, "4", ("5.00", "40.00")),
    PartnerSpec("britfit", "BritFit", "gym", "GBP", 5, "3", ("20.00", "80.00")),
    PartnerSpec(
        "thames-air",
        "Thames Air",
        "travel",
        "GBP",
        0,
        "1",
        ("100.00", "800.00"),
        redemption="0.011",
    ),
    PartnerSpec("tokyo-mart", "Tokyo Mart", "shop", "JPY", 0, "0.02", ("1000", "20000")),
    PartnerSpec("sakura-cafe", "さくらカフェ", "cafe", "JPY", 0, "0.1", ("300", "2000")),
    PartnerSpec(
        "nihon-rail",
        "Nihon Rail",
        "travel",
        "JPY",
        1,
        "0.01",
        ("5000", "80000"),
        redemption="0.0105",
    ),
    PartnerSpec("nyc-deli", "NYC Deli", "cafe", "USD", 0, "5", ("5.00", "40.00")),
    PartnerSpec("liberty-gym", "Liberty Gym", "gym", "USD", 5, "2", ("30.00", "100.00")),
    PartnerSpec("us-outfitters", "US Outfitters", "shop", "USD", 1, "1", ("20.00", "400.00")),
)
FX = {"RUB": "0.0110", "CZK": "0.0400", "GBP": "1.1500", "JPY": "0.0062", "USD": "0.9200"}
REDEMPTION = "0.01"
FEE = "0.0005"


@dataclass
class PartnerRuntime:
    """A partner as the generator uses it: rates as ids and integer arithmetic."""

    spec: PartnerSpec
    exponent: int
    earn_rate_id: int
    earn_num: int  # points = minor * earn_num // earn_den
    earn_den: int
    minor_range: tuple[int, int]
    fee_rate_id: int | None
    fee_value: str | None
    redemption_rate_id: int
    redemption_value: str
    key: str = ""

    @classmethod
    def of(
        cls,
        spec: PartnerSpec,
        *,
        earn_rate_id: int,
        fee_rate_id: int,
        redemption_rate_id: int,
        key: str,
    ) -> "PartnerRuntime":
        """The partner ``spec`` with the ids its rates were given."""
        exponent = _exponent(spec.currency)
        earn = Fraction(Decimal(spec.earn)) / 10**exponent
        low, high = (int(Decimal(value).scaleb(exponent)) for value in spec.amounts)
        low = max(low, math.ceil(4 / earn))  # at least 4 points, so a half return takes ≥ 1
        return cls(
            spec=spec,
            exponent=exponent,
            earn_rate_id=earn_rate_id,
            earn_num=earn.numerator,
            earn_den=earn.denominator,
            minor_range=(low, max(low, high)),
            fee_rate_id=fee_rate_id,
            fee_value=spec.fee or FEE,
            redemption_rate_id=redemption_rate_id,
            redemption_value=spec.redemption or REDEMPTION,
            key=key,
        )

    @property
    def id(self) -> str:
        return self.spec.id

    def amount_text(self, minor: int) -> str:
        if self.exponent == 0:
            return str(minor)
        text = str(minor).rjust(self.exponent + 1, "0")
        return f"{text[: -self.exponent]}.{text[-self.exponent :]}"

    def points_for(self, minor: int) -> int:
        return minor * self.earn_num // self.earn_den


@dataclass
class World:
    """The configured coalition: partners with their rate ids and keys, the operator key."""

    partners: dict[str, PartnerRuntime]
    operator_key: str
    rates_from: datetime

    @property
    def partner_ids(self) -> list[str]:
        return list(self.partners)

    def partners_for_load(self) -> list[dict]:
        """The partners as :mod:`bench.load` takes them: plain dicts, since they are pickled
        to its spawned worker processes."""
        return [
            {
                "id": p.id,
                "key": p.key,
                "currency": p.spec.currency,
                "exponent": p.exponent,
                "minor_range": p.minor_range,
            }
            for p in self.partners.values()
        ]


class ApiError(RuntimeError):
    pass


def _exponent(currency: str) -> int:
    from coalition.domain import money

    return money.exponent(currency)


def configure(call, rates_from: datetime, operator_key: str) -> World:
    """Create partners, rates and partner keys through the API.

    ``call(method, path, json, key) -> (status, body)`` is the HTTP client
    (:class:`bench.load.Client` against gunicorn, or the Flask test client).
    """

    def must(status_expected, method, path, body, key=operator_key):
        status, answer = call(method, path, body, key)
        if status != status_expected:
            raise ApiError(f"{method} {path} {body} → {status} {answer}")
        return answer

    start = rates_from.isoformat()

    def rate(body: dict) -> int:
        return must(201, "POST", "/api/v1/rates", {"effective_from": start, **body})["id"]

    redemption_id = rate({"kind": "redemption", "value": REDEMPTION})
    fee_id = rate({"kind": "fee", "value": FEE})
    for currency, value in FX.items():
        rate({"kind": "fx", "value": value, "currency": currency})
    partners = {}
    for spec in PARTNERS:
        must(
            201,
            "POST",
            "/api/v1/partners",
            {
                "id": spec.id,
                "name": spec.name,
                "category": spec.category,
                "currency": spec.currency,
                "hold_days": spec.hold_days,
            },
        )
        earn_id = rate({"kind": "earn", "value": spec.earn, "partner_id": spec.id})
        own_redemption = (
            rate({"kind": "redemption", "value": spec.redemption, "partner_id": spec.id})
            if spec.redemption
            else None
        )
        own_fee = (
            rate({"kind": "fee", "value": spec.fee, "partner_id": spec.id}) if spec.fee else None
        )
        key = must(
            201,
            "POST",
            "/api/v1/keys",
            {"role": "partner", "partner_id": spec.id, "name": f"bench {spec.id}"},
        )
        partners[spec.id] = PartnerRuntime.of(
            spec,
            earn_rate_id=earn_id,
            fee_rate_id=own_fee or fee_id,
            redemption_rate_id=own_redemption or redemption_id,
            key=key["key"],
        )
    return World(partners=partners, operator_key=operator_key, rates_from=rates_from)


PROMO_WEEKS = 104  # the rate history: two years of weekly promos at every partner


def add_rate_history(url: str, world: World, before: datetime) -> int:
    """Two years of weekly promos at every partner, each ended by ``before``: the rate
    versions a coalition that has run promotions for a while holds, and keeps, since
    rates are never deleted. Written straight into the table, rows of the shape the
    service writes for a promo (without their change records, and dated as created
    when each began), with a new catalog generation so that running services read
    them. Returns how many.

    Without it the benchmark's coalition had 32 versions, where a real one that has run
    for years has thousands (performance-log.md, "Rate versions").
    """
    start = before - timedelta(weeks=PROMO_WEEKS)
    rows = [
        (
            "promo",
            "2",
            partner_id,
            start + timedelta(weeks=week),
            start + timedelta(weeks=week + 1),
            start + timedelta(weeks=week),
        )
        for week in range(PROMO_WEEKS)
        for partner_id in world.partner_ids
    ]
    with psycopg.connect(conninfo(url)) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY rates (kind, value, partner_id, effective_from, effective_to, created_at)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute("UPDATE settings SET generation = %s", (random.getrandbits(62),))
    return len(rows)


# --------------------------------------------------------------------------- bulk generation


@dataclass(frozen=True)
class StagePlan:
    """One stage of generated history: one period, its members and their activity."""

    stage: int
    period_id: str
    start: datetime
    end: datetime
    members: int
    allocations: int  # target burn allocations in the period
    heavy_members: int
    heavy_lots: int
    seed: int = 2026


@dataclass
class StageResult:
    plan: StagePlan
    rows: dict[str, int] = field(default_factory=dict)
    burn_allocations: int = 0
    rich_members: list[str] = field(default_factory=list)
    heavy_members: list[str] = field(default_factory=list)
    regular_members: list[str] = field(default_factory=list)
    seconds: float = 0.0
    index_seconds: float = 0.0
    foreign_keys_checked: bool = True


TABLE_COLUMNS = {
    "members": ("id", "created_at"),
    "transactions": (
        "id",
        "partner_id",
        "external_id",
        "type",
        "member_id",
        "occurred_at",
        "recorded_at",
        "amount",
        "currency",
        "category",
        "reason",
        "points",
        "shortfall_points",
        "original_id",
        "rate_ids",
        "fee_rate",
        "period_id",
        "late",
        "request_hash",
    ),
    "lots": (
        "id",
        "transaction_id",
        "member_id",
        "issuer_id",
        "points",
        "remaining",
        "earned_at",
        "available_at",
        "expires_at",
    ),
    "allocations": (
        "id",
        "transaction_id",
        "type",
        "lot_id",
        "issuer_id",
        "redeemer_id",
        "points",
        "value_rate",
        "reverses_id",
        "period_id",
    ),
}
LEDGER_TABLES = tuple(TABLE_COLUMNS)
N = "\\N"


class _Ids:
    def __init__(self, transactions: int, lots: int, allocations: int):
        self.transaction, self.lot, self.allocation = transactions, lots, allocations

    def next_transaction(self) -> int:
        self.transaction += 1
        return self.transaction

    def next_lot(self) -> int:
        self.lot += 1
        return self.lot

    def next_allocation(self) -> int:
        self.allocation += 1
        return self.allocation


class _Clock:
    """Timestamps (text, UTC) for whole seconds since the period start; the date part is cached."""

    def __init__(self, start: datetime):
        self.start = start.astimezone(UTC).replace(microsecond=0)
        self.days: dict[int, str] = {}

    def at(self, offset: int) -> str:
        day, rest = divmod(offset, 86400)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = (self.start + timedelta(days=day)).strftime("%Y-%m-%d ")
            if self.start.time() != datetime.min.time():
                raise ValueError("a stage starts at a midnight UTC")
        return f"{prefix}{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}+00"


@dataclass
class _Lot:
    id: int
    transaction_id: int
    issuer: str
    points: int
    remaining: int
    earned: int  # seconds since period start
    available: int


class Generator:
    """Produces COPY text for one stage, member by member, in chunks."""

    def __init__(self, world: World, plan: StagePlan, ids: _Ids):
        self.world = world
        self.plan = plan
        self.ids = ids
        self.rng = random.Random(plan.seed * 1000 + plan.stage)
        self.clock = _Clock(plan.start)
        self.length = int((plan.end - plan.start).total_seconds())
        self.partners = [world.partners[pid] for pid in world.partner_ids]
        self.result = StageResult(plan)
        self.result.rows = {table: 0 for table in LEDGER_TABLES}
        regular = max(plan.members - plan.heavy_members, 1)
        self.burns_per_member = plan.allocations / 2 / regular
        self._rich_seen = 0
        self.prefix = f"bench{plan.stage}-"

    def member_id(self, number: int) -> str:
        return f"{self.prefix}{number:08d}"

    def chunks(self):
        """Yield ``{table: text}`` for every :data:`MEMBERS_PER_CHUNK` members.

        A heavy member's earns are spread evenly among the regular members'
        rows, as a real member's lots, earned over months, lie among everyone
        else's on disk: written side by side, a balance lookup would read a
        few pages where a real one reads a page per lot.
        """
        plan = self.plan
        buffers = {table: [] for table in LEDGER_TABLES}
        spread = self._heavy_members(buffers)
        regular = range(plan.heavy_members, plan.members)
        assert regular, "a heavy member's rows are spread among regular members' rows"
        placed = 0
        for done, number in enumerate(regular, start=1):
            member = self.member_id(number)
            self._member(member, False, buffers)
            if len(self.result.regular_members) < RICH_SAMPLE:
                self.result.regular_members.append(member)
            due = len(spread) * done // len(regular)
            for transaction, lot in spread[placed:due]:
                buffers["transactions"].append(transaction)
                buffers["lots"].append(lot)
            placed = due
            if (number + 1) % MEMBERS_PER_CHUNK == 0:
                yield {table: "".join(lines) for table, lines in buffers.items()}
                buffers = {table: [] for table in LEDGER_TABLES}
        if any(buffers.values()):
            yield {table: "".join(lines) for table, lines in buffers.items()}

    def _heavy_members(self, buffers: dict) -> list[tuple[str, str]]:
        """Generate the heavy members, writing their member rows into ``buffers``; their
        earns and lots come back as (transaction, lot) lines, one lot of each in turn."""
        earns = []
        for number in range(self.plan.heavy_members):
            member = self.member_id(number)
            own = {table: [] for table in LEDGER_TABLES}
            self._member(member, True, own)
            buffers["members"] += own["members"]
            earns.append(zip(own["transactions"], own["lots"], strict=True))
            self.result.heavy_members.append(member)
        return [pair for turn in zip(*earns, strict=True) for pair in turn]

    # -- one member

    def _member(self, member: str, heavy: bool, out: dict) -> None:
        """One member's rows, appended to ``out``: its earns and bonuses, returns, burns and
        perhaps a burn reversal, then its lots with what those left in them."""
        rng, length = self.rng, self.length
        if heavy:
            burns, lot_count = 0, self.plan.heavy_lots
        else:
            x = self.burns_per_member
            burns = int(2 * x * rng.random() + rng.random())
            lot_count = burns + 1 + rng.randrange(3)
        earn_lo, earn_hi = int(EARN_WINDOW[0] * length), int(EARN_WINDOW[1] * length)
        times = sorted(rng.randrange(earn_lo, earn_hi) for _ in range(lot_count))
        out["members"].append(f"{member}\t{self.clock.at(times[0])}\n")
        self.result.rows["members"] += 1
        lots, returns = self._earns(member, heavy, times, out)
        self._returns(member, lots, returns, out)
        if burns:
            last = self._burns(member, lots, burns, out)
            if last is not None and rng.random() < BURN_REVERSAL_SHARE:
                self._burn_reversal(member, last, out)
        self._lots(member, lots, out)
        if sum(lot.remaining for lot in lots) >= RICH_BALANCE and not heavy:
            self._sample_rich(member)

    def _earns(
        self, member: str, heavy: bool, times: list[int], out: dict
    ) -> tuple[list[_Lot], list]:
        """One lot at each time: an earn at a random partner or, now and then for a regular
        member, a coalition bonus. Also the earns to be partly returned, as (lot index,
        partner, amount in minor units, transaction id)."""
        rng, ids, clock = self.rng, self.ids, self.clock
        period_id = self.plan.period_id
        tx_lines = out["transactions"]
        lots: list[_Lot] = []
        returns = []
        for earned in times:
            tx_id = ids.next_transaction()
            occurred = clock.at(earned)
            recorded = clock.at(earned + 1)
            if rng.random() < BONUS_SHARE and not heavy:
                points = rng.randrange(100, 501)
                tx_lines.append(
                    f"{tx_id}\t{OPERATOR_PARTNER}\tb-{tx_id}\tbonus\t{member}\t{occurred}\t{recorded}\t{N}\t{N}\t{N}\t"
                    f"referral\t{points}\t0\t{N}\t[]\t{N}\t{period_id}\tf\t{PLACEHOLDER_HASH}\n"
                )
                issuer, hold = OPERATOR_PARTNER, 0
            else:
                partner = self.partners[rng.randrange(len(self.partners))]
                low, high = partner.minor_range
                minor = (
                    rng.randrange(low, high + 1)
                    if not heavy
                    else low + rng.randrange(max(1, (high - low) // 10))
                )
                points = partner.points_for(minor)
                amount = partner.amount_text(minor)
                tx_lines.append(
                    f"{tx_id}\t{partner.id}\te-{tx_id}\tearn\t{member}\t{occurred}\t{recorded}\t{amount}\t"
                    f"{partner.spec.currency}\t{N}\t{N}\t{points}\t0\t{N}\t"
                    f"[{partner.earn_rate_id}, {partner.fee_rate_id}]\t{partner.fee_value}\t{period_id}\tf\t"
                    f"{PLACEHOLDER_HASH}\n"
                )
                issuer, hold = partner.id, partner.spec.hold_days
                if not heavy and rng.random() < RETURN_SHARE:
                    returns.append((len(lots), partner, minor, tx_id))
            lots.append(
                _Lot(ids.next_lot(), tx_id, issuer, points, points, earned, earned + hold * 86400)
            )
        self.result.rows["transactions"] += len(lots)
        return lots, returns

    def _returns(self, member: str, lots: list[_Lot], returns: list, out: dict) -> None:
        """Half the amount back, a day or so after the purchase: before any burn, so that
        the lot still holds every point the return takes back (no shortfall)."""
        rng, ids, clock = self.rng, self.ids, self.clock
        period_id = self.plan.period_id
        for index, partner, minor, original in returns:
            lot = lots[index]
            back = minor // 2
            taken = lot.points * back // minor
            if back < 1 or taken < 1:
                continue
            tx_id = ids.next_transaction()
            at = lot.earned + rng.randrange(43_200, 129_600)
            lot.remaining -= taken
            out["transactions"].append(
                f"{tx_id}\t{partner.id}\tr-{tx_id}\tearn_reversal\t{member}\t{clock.at(at)}\t{clock.at(at + 1)}\t"
                f"{partner.amount_text(back)}\t{partner.spec.currency}\t{N}\t{N}\t{-taken}\t0\t{original}\t"
                f"[{partner.earn_rate_id}, {partner.fee_rate_id}]\t{partner.fee_value}\t{period_id}\tf\t"
                f"{PLACEHOLDER_HASH}\n"
            )
            out["allocations"].append(
                f"{ids.next_allocation()}\t{tx_id}\tearn_reversal\t{lot.id}\t{lot.issuer}\t{partner.id}\t"
                f"{-taken}\t{N}\t{N}\t{period_id}\n"
            )
            self.result.rows["allocations"] += 1
            self.result.rows["transactions"] += 1

    def _burns(self, member: str, lots: list[_Lot], burns: int, out: dict) -> tuple | None:
        """Up to ``burns`` burns at random partners, each crossing one lot boundary (the rest
        of lot j, half of lot j+1) so that a burn has about two allocations. The last one as
        (transaction id, redeemer, [(allocation id, lot, points)]), for a reversal to
        restore; None when there was nothing to burn.
        """
        rng, ids, clock, length = self.rng, self.ids, self.clock, self.length
        period_id = self.plan.period_id
        tx_lines, alloc_lines = out["transactions"], out["allocations"]
        burn_lo, burn_hi = int(BURN_WINDOW[0] * length), int(BURN_WINDOW[1] * length)
        burn_times = sorted(rng.randrange(burn_lo, burn_hi) for _ in range(burns))
        held = [lot.remaining for lot in lots]  # before the burns, which change what lots hold
        position, cumulative, last = 0, 0, None
        for j in range(burns):
            cumulative += held[j]
            target = cumulative + held[j + 1] // 2
            wanted = target - position
            if wanted <= 0:
                continue
            at = burn_times[j]
            redeemer = self.partners[rng.randrange(len(self.partners))]
            tx_id = ids.next_transaction()
            taken = []
            for lot in lots:
                if wanted == 0:
                    break
                if lot.remaining == 0 or lot.available > at:
                    continue
                take = min(lot.remaining, wanted)
                lot.remaining -= take
                wanted -= take
                allocation_id = ids.next_allocation()
                taken.append((allocation_id, lot, take))
                alloc_lines.append(
                    f"{allocation_id}\t{tx_id}\tburn\t{lot.id}\t{lot.issuer}\t{redeemer.id}\t{-take}\t"
                    f"{redeemer.redemption_value}\t{N}\t{period_id}\n"
                )
            spent = sum(take for _, _, take in taken)
            position += spent
            self.result.rows["allocations"] += len(taken)
            self.result.burn_allocations += len(taken)
            self.result.rows["transactions"] += 1
            tx_lines.append(
                f"{tx_id}\t{redeemer.id}\tu-{tx_id}\tburn\t{member}\t{clock.at(at)}\t{clock.at(at + 1)}\t"
                f"{N}\t{N}\t{N}\t{N}\t{-spent}\t0\t{N}\t[{redeemer.redemption_rate_id}]\t{N}\t{period_id}\tf\t"
                f"{PLACEHOLDER_HASH}\n"
            )
            last = (tx_id, redeemer, taken)
        return last

    def _burn_reversal(self, member: str, last: tuple, out: dict) -> None:
        """The member's last burn restored in full, allocation by allocation, near the
        period's end, at the burn's value rate."""
        original, redeemer, taken = last
        ids, clock, period_id = self.ids, self.clock, self.plan.period_id
        tx_id = ids.next_transaction()
        at = int(REVERSAL_AT * self.length)
        restored = 0
        for allocation_id, lot, take in reversed(taken):
            lot.remaining += take
            restored += take
            out["allocations"].append(
                f"{ids.next_allocation()}\t{tx_id}\tburn_reversal\t{lot.id}\t{lot.issuer}\t{redeemer.id}\t"
                f"{take}\t{redeemer.redemption_value}\t{allocation_id}\t{period_id}\n"
            )
        self.result.rows["allocations"] += len(taken)
        self.result.burn_allocations += len(taken)
        self.result.rows["transactions"] += 1
        out["transactions"].append(
            f"{tx_id}\t{redeemer.id}\tv-{tx_id}\tburn_reversal\t{member}\t{clock.at(at)}\t"
            f"{clock.at(at + 1)}\t{N}\t{N}\t{N}\t{N}\t{restored}\t0\t{original}\t"
            f"[{redeemer.redemption_rate_id}]\t{N}\t{period_id}\tf\t{PLACEHOLDER_HASH}\n"
        )

    def _lots(self, member: str, lots: list[_Lot], out: dict) -> None:
        """The member's lots as its returns and burns left them."""
        clock, ttl = self.clock, TTL_DAYS * 86400
        for lot in lots:
            out["lots"].append(
                f"{lot.id}\t{lot.transaction_id}\t{member}\t{lot.issuer}\t{lot.points}\t{lot.remaining}\t"
                f"{clock.at(lot.earned)}\t{clock.at(lot.available)}\t{clock.at(lot.earned + ttl)}\n"
            )
        self.result.rows["lots"] += len(lots)

    def _sample_rich(self, member: str) -> None:
        """Keep an even sample of the members rich enough to burn over HTTP, at most
        :data:`RICH_SAMPLE` of them however many there are (reservoir sampling)."""
        self._rich_seen += 1
        sample = self.result.rich_members
        if len(sample) < RICH_SAMPLE:
            sample.append(member)
        else:
            slot = self.rng.randrange(self._rich_seen)
            if slot < RICH_SAMPLE:
                sample[slot] = member


# --------------------------------------------------------------------------- loading


def _secondary_indexes(connection, tables) -> list[tuple[str, str]]:
    """Indexes on the tables that back no constraint: (name, CREATE INDEX statement)."""
    return connection.execute(
        """
        SELECT quote_ident(ns.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace ns ON ns.oid = c.relnamespace
        WHERE i.indrelid = ANY(SELECT oid FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'
                               AND relnamespace = 'public'::regnamespace)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY 1
        """,
        [list(tables)],
    ).fetchall()


def _max_ids(connection) -> _Ids:
    values = [
        connection.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        for table in ("transactions", "lots", "allocations")
    ]
    return _Ids(*values)


def bulk_load(url: str, world: World, plan: StagePlan, log=print) -> StageResult:
    """Generate one stage and COPY it in; secondary indexes are rebuilt afterwards.

    The server must be idle (no other writers) while this runs: ids are
    assigned here, after the current maximum, and the sequences are moved
    past them at the end.
    """
    started = time.perf_counter()
    with psycopg.connect(conninfo(url), autocommit=True) as admin:
        ids = _max_ids(admin)
        before = (ids.transaction, ids.allocation)
        indexes = _secondary_indexes(admin, LEDGER_TABLES)
        for name, _ in indexes:
            admin.execute(f"DROP INDEX {name}")
        generator = Generator(world, plan, ids)
        chunks: queue.Queue = queue.Queue(maxsize=2)
        failure: list[BaseException] = []
        checked = [True]

        def loader():
            try:
                with psycopg.connect(conninfo(url)) as connection:
                    try:
                        connection.execute("SET session_replication_role = replica")
                        connection.commit()
                        checked[0] = False
                    except psycopg.Error:
                        connection.rollback()
                    while True:
                        chunk = chunks.get()
                        if chunk is None:
                            return
                        with connection.cursor() as cursor:
                            for table, columns in TABLE_COLUMNS.items():
                                if chunk[table]:
                                    with cursor.copy(
                                        f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                                    ) as copy:
                                        copy.write(chunk[table].encode())
                        connection.commit()
            except BaseException as error:  # noqa: BLE001 — re-raised in the main thread
                failure.append(error)
                while True:  # drain so the producer never blocks
                    try:
                        if chunks.get(timeout=1) is None:
                            return
                    except queue.Empty:
                        continue

        thread = threading.Thread(target=loader, name="bench-copy", daemon=True)
        thread.start()
        try:
            for chunk in generator.chunks():
                if failure:
                    break
                chunks.put(chunk)
        finally:
            chunks.put(None)
            thread.join()
        if failure:
            raise failure[0]
        loaded = time.perf_counter()
        admin.execute("SET maintenance_work_mem = '512MB'")
        for _, statement in indexes:
            admin.execute(statement)
        for table in ("transactions", "lots", "allocations"):
            admin.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        _add_to_period_totals(admin, *before)
        vacuum(admin)
    result = generator.result
    result.seconds = time.perf_counter() - started
    result.index_seconds = time.perf_counter() - loaded
    result.foreign_keys_checked = checked[0]
    return result


def vacuum(connection) -> None:
    """VACUUM (ANALYZE) the ledger's tables and the period totals: the upkeep autovacuum
    starts on its own after many writes, done at once rather than beside what runs next."""
    for table in (*LEDGER_TABLES, "pair_totals", "partner_totals"):
        connection.execute(f"VACUUM (ANALYZE) {table}")


#: What the service adds to the period totals as it writes, counted here from the
#: ledger rows (``coalition.db.period_totals``), over the rows after the given ids.
PAIR_TOTALS_OF_LEDGER = """
    SELECT period_id, issuer_id, redeemer_id, value_rate, sum(-points) AS points
    FROM allocations WHERE type IN ('burn', 'burn_reversal') AND id > %(allocation)s
    GROUP BY period_id, issuer_id, redeemer_id, value_rate"""
PARTNER_TOTALS_OF_LEDGER = """
    SELECT period_id, partner_id, fee_rate,
        sum(CASE WHEN type IN ('earn', 'bonus') THEN points ELSE 0 END) AS points_issued,
        sum(CASE WHEN type = 'earn_reversal' THEN -points ELSE 0 END) AS points_reversed,
        sum(shortfall_points) AS shortfall_points,
        sum(CASE WHEN type = 'expiry' THEN -points ELSE 0 END) AS points_expired,
        sum(CASE WHEN late THEN 1 ELSE 0 END) AS late_count
    FROM transactions WHERE id > %(transaction)s
    GROUP BY period_id, partner_id, fee_rate"""
PARTNER_FIELDS = totals.ACTIVITY_FIELDS  # the columns of partner_totals the ledger adds to


def _of(alias: str) -> str:
    """The activity columns of one side of a full join; a missing row counts as zeros."""
    return ", ".join(f"coalesce({alias}.{field}, 0)" for field in PARTNER_FIELDS)


def _add_to_period_totals(connection, transaction: int, allocation: int) -> None:
    """Count the rows just loaded into the period totals, as the service counts what it writes."""
    after = {"transaction": transaction, "allocation": allocation}
    connection.execute(
        f"""INSERT INTO pair_totals (period_id, issuer_id, redeemer_id, value_rate, stripe, points)
        SELECT period_id, issuer_id, redeemer_id, value_rate, 0, points FROM ({PAIR_TOTALS_OF_LEDGER}) t
        ON CONFLICT (period_id, issuer_id, redeemer_id, value_rate, stripe)
        DO UPDATE SET points = pair_totals.points + excluded.points""",
        after,
    )
    updates = ", ".join(
        f"{field} = partner_totals.{field} + excluded.{field}" for field in PARTNER_FIELDS
    )
    connection.execute(
        f"""INSERT INTO partner_totals (period_id, partner_id, fee_rate, stripe, {", ".join(PARTNER_FIELDS)})
        SELECT period_id, partner_id, fee_rate, 0, {", ".join(PARTNER_FIELDS)} FROM ({PARTNER_TOTALS_OF_LEDGER}) t
        ON CONFLICT (period_id, partner_id, coalesce(fee_rate, -1), stripe) DO UPDATE SET {updates}""",
        after,
    )


def check_consistency(url: str) -> dict[str, int]:
    """Counts of broken invariants over the whole ledger (all must be 0)."""
    queries = {
        "allocations not summing to their transaction": """
            SELECT count(*) FROM transactions t
            JOIN (SELECT transaction_id, sum(points) AS s FROM allocations GROUP BY 1) a ON a.transaction_id = t.id
            WHERE t.type IN ('burn', 'burn_reversal', 'earn_reversal') AND a.s <> t.points""",
        "burns without allocations": """
            SELECT count(*) FROM transactions t WHERE t.type = 'burn'
            AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.transaction_id = t.id)""",
        "lots whose remaining is not points + Σ allocations": """
            SELECT count(*) FROM lots l
            LEFT JOIN (SELECT lot_id, sum(points) AS s FROM allocations GROUP BY 1) a ON a.lot_id = l.id
            WHERE l.remaining <> l.points + coalesce(a.s, 0)""",
        "earns and bonuses without a lot": """
            SELECT count(*) FROM transactions t WHERE t.type IN ('earn', 'bonus')
            AND NOT EXISTS (SELECT 1 FROM lots l WHERE l.transaction_id = t.id)""",
        "lots of unknown members": """
            SELECT count(*) FROM lots l WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.id = l.member_id)""",
        "period pair totals that differ from the allocations": f"""
            SELECT count(*) FROM ({PAIR_TOTALS_OF_LEDGER}) l FULL JOIN (
                SELECT period_id, issuer_id, redeemer_id, value_rate, sum(points) AS points FROM pair_totals
                GROUP BY period_id, issuer_id, redeemer_id, value_rate) k
            USING (period_id, issuer_id, redeemer_id, value_rate)
            WHERE l.points IS DISTINCT FROM k.points""",
        "period partner totals that differ from the transactions": f"""
            SELECT count(*) FROM ({PARTNER_TOTALS_OF_LEDGER}) l FULL JOIN (
                SELECT period_id, partner_id, coalesce(fee_rate, -1) AS rate,
                    {", ".join(f"sum({field}) AS {field}" for field in PARTNER_FIELDS)}
                FROM partner_totals GROUP BY period_id, partner_id, coalesce(fee_rate, -1)) k
            ON (l.period_id, l.partner_id, coalesce(l.fee_rate, -1)) = (k.period_id, k.partner_id, k.rate)
            WHERE ({_of("l")}) IS DISTINCT FROM ({_of("k")})""",
    }
    everything = {"transaction": 0, "allocation": 0}
    with psycopg.connect(conninfo(url), autocommit=True) as connection:
        return {
            name: connection.execute(sql, everything).fetchone()[0] for name, sql in queries.items()
        }


def month_periods(
    now: datetime,
) -> tuple[tuple[str, datetime, datetime], tuple[str, datetime, datetime]]:
    """The two monthly periods before the current one (UTC): stage 1 and stage 2."""
    current = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = (current - timedelta(days=1)).replace(day=1)
    before = (previous - timedelta(days=1)).replace(day=1)
    return (
        (before.strftime("%Y-%m"), before, previous),
        (previous.strftime("%Y-%m"), previous, current),
    )
