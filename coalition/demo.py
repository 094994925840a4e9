"""``coalition demo``: a small, believable coalition to look at straight away.

Five partners in three currencies (a supermarket, a Cyrillic-named cafe, a
gym, an airline settling in EUR and a hotel), a few hundred members with two
months of earns, burns, a promo and referral bonuses; every past
period is closed, so statements can be downloaded at once. Everything goes
through the same use cases as the API; the random choices are seeded.
"""

import random
from contextlib import nullcontext
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from coalition import auth
from coalition.db import aggregates, models
from coalition.domain.errors import CoalitionError, Invalid
from coalition.domain.partners import OPERATOR_PARTNER
from coalition.services import calendar, catalog, ledger, partners, rates, settlement

PARTNERS = [
    ("freshmart", "FreshMart Supermarkets", "shop", "RUB", 0, "1200.00"),
    ("aroma", "Кофейня Арома", "cafe", "RUB", 0, "350.00"),
    ("ironfit", "IronFit Gym", "gym", "EUR", 14, "45.00"),
    ("skyair", "SkyAir", "travel", "EUR", 0, "280.00"),
    ("grandhotel", "Grand Hotel Praha", "travel", "CZK", 7, "3200.00"),
]
# about 110 points for a typical purchase at each partner, so members earn and spend
# across the coalition alike and netting offsets most of a period's pair lines
EARN = {
    "freshmart": "0.1",
    "aroma": "0.3",
    "ironfit": "2.5",
    "skyair": "0.4",
    "grandhotel": "0.035",
}
BASE_CURRENCY = "EUR"  # what FX quotes in
FX = {"RUB": "0.0110", "CZK": "0.0400"}
MEMBERS = 300
DAYS = 75


PARTNER_IDS = frozenset(partner_id for partner_id, *_ in PARTNERS)


def _plan(session, now: datetime) -> tuple[datetime, bool] | None:
    """Where the demo's history begins, and whether its partners and rates are still
    to be made; None when it is loaded.

    A new coalition's history begins ``DAYS`` before ``now``. A load that stopped
    before its first close (interrupted, or the database went away) has its
    partners and rates, made in one transaction, and some of its transactions:
    it goes on from the day it began, posting what it had not (what it had is
    replayed, SPEC §6), and closes.

    Raises:
        Invalid: the demo cannot load into this coalition (:func:`_unfit`).
    """
    present = set(
        session.scalars(select(models.Partner.id).where(models.Partner.id.in_(sorted(PARTNER_IDS))))
    )
    if present == PARTNER_IDS:
        if calendar.last_closed(session) is not None:
            return None
        if (began := _began(session)) is not None:
            return began, False
    if (why := _unfit(session, present)) is not None:
        raise Invalid(f"{why}: load the demo into a new database")
    return now - timedelta(days=DAYS), True


def _began(session) -> datetime | None:
    """The day a demo whose load stopped began, if this coalition is one: it settles in
    EUR, its earn rates are the demo's, all from one day, and every transaction is the
    demo's. Partners made by hand under the demo's ids are not taken for it."""
    if catalog.current(session).settings.base_currency != BASE_CURRENCY:
        return None
    earn = session.execute(
        select(models.Rate.partner_id, models.Rate.value, models.Rate.effective_from).where(
            models.Rate.kind == "earn"
        )
    ).all()
    if {(partner_id, value) for partner_id, value, _ in earn} != {
        (partner_id, Decimal(value)) for partner_id, value in EARN.items()
    }:
        return None
    began = {effective_from for *_, effective_from in earn}
    others = session.scalar(
        select(func.count())
        .select_from(models.Transaction)
        .where(models.Transaction.external_id.not_like("demo-%"))
    )
    return began.pop() if len(began) == 1 and not others else None


class _NoBar:
    def update(self, days: int) -> None:
        pass


def load(database, now: datetime, echo=print, progress=None) -> None:
    """Load the demo.

    ``progress()``, when given, is entered around the posting alone, so a
    progress bar shows only when there is something to post; what it gives
    has its ``update(days)`` called after each simulated day.

    Raises:
        Invalid: the demo cannot load into this coalition (:func:`_unfit`),
            refused before anything is written.
    """
    plan = database.run(_plan, now)
    if plan is None:
        echo("The demo coalition is loaded already.")
    else:
        start, new = plan
        if new:
            database.run(_configure, start)
        else:
            echo("Going on with a load of the demo that stopped before it closed its periods.")
        with progress() if progress else nullcontext(_NoBar()) as bar:
            posted = _post_activity(database, start, now, bar.update)
        echo(f"Posted {posted} transactions for {MEMBERS} members.")
        for period_id in database.run(_past_periods, now):
            database.run(settlement.close, period_id, now)
            echo(f"Closed {period_id}.")
    _, operator_key = database.run(lambda s: auth.create_key(s, "operator", name="demo operator"))
    _, finance_key = database.run(lambda s: auth.create_key(s, "finance", name="demo finance"))
    _, aroma_key = database.run(lambda s: auth.create_key(s, "partner", "aroma", name="demo aroma"))
    echo(
        "A service running on this database shows it now; if none is, start one with "
        "`coalition serve`. Open /console on it (http://127.0.0.1:5000/console by default; "
        "API docs at /api/docs)."
    )
    echo(f"operator key: {operator_key}")
    echo(f"finance key:  {finance_key}")
    echo(f"aroma key:    {aroma_key}")
    echo("Statements: GET /api/v1/statements, then /api/v1/statements/{id}/pdf")


def _unfit(session, taken: set[str]) -> str | None:
    """Why the demo cannot load here, if it cannot: its fx rates are quoted in its base
    currency (in another, its periods could not close, and its posts would fix the
    currency), its rates begin ``DAYS`` ago, which a closed period refuses and which
    would settle transactions already posted at the demo's redemption and fee rates
    (SPEC §7: the rates in force at their dates), and ``taken``, some of its partner
    ids, are another coalition's partners."""
    base = catalog.current(session).settings.base_currency
    if base != BASE_CURRENCY:
        return f"the demo coalition settles in {BASE_CURRENCY} and this one in {base}"
    last = calendar.last_closed(session)
    if last is not None:
        return f"period {last.id} is closed here, and the demo's history begins {DAYS} days ago"
    if aggregates.occurrences(session)[0] is not None:
        return (
            f"transactions are posted here, and the demo's rates, from {DAYS} days ago,"
            " would settle them"
        )
    if taken:
        return f"the demo's partner ids {', '.join(sorted(taken))} are taken here"
    return None


def _configure(session, start: datetime) -> None:
    calendar.lock_calendar(session, exclusive=True)  # before the first write, as the rates below
    for partner_id, name, category, currency, hold_days, _ in PARTNERS:
        partners.create(
            session,
            {
                "id": partner_id,
                "name": name,
                "category": category,
                "currency": currency,
                "hold_days": hold_days,
            },
        )
        rates.create(
            session,
            {
                "kind": "earn",
                "value": Decimal(EARN[partner_id]),
                "partner_id": partner_id,
                "effective_from": start,
            },
        )
    for currency, value in FX.items():
        rates.create(
            session,
            {"kind": "fx", "value": Decimal(value), "currency": currency, "effective_from": start},
        )
    rates.create(session, {"kind": "redemption", "value": Decimal("0.01"), "effective_from": start})
    rates.create(
        session,
        {
            "kind": "redemption",
            "value": Decimal("0.012"),
            "partner_id": "skyair",
            "effective_from": start,
        },
    )
    rates.create(session, {"kind": "fee", "value": Decimal("0.0002"), "effective_from": start})
    rates.create(
        session,
        {
            "kind": "promo",
            "value": Decimal(2),
            "partner_id": "aroma",
            "category": "coffee",
            "effective_from": start + timedelta(days=20),
            "effective_to": start + timedelta(days=34),
        },
    )
    rates.create(
        session,
        {
            "kind": "threshold",
            "value": Decimal(100),
            "partner_id": "skyair",
            "min_amount": Decimal("500.00"),
            "effective_from": start,
        },
    )


def _post_activity(database, start: datetime, now: datetime, progress) -> int:
    rng = random.Random(2026)
    operator = auth.Principal(None, "operator")
    typical = {partner_id: Decimal(amount) for partner_id, *_, amount in PARTNERS}
    currencies = {partner_id: currency for partner_id, _, _, currency, *_ in PARTNERS}
    posted = 0
    for day in range(DAYS):
        moment = start + timedelta(days=day, hours=9)
        for index in range(40):
            member = f"card-{rng.randrange(MEMBERS):04d}"
            partner_id = rng.choice(list(typical))
            at = moment + timedelta(minutes=index * 7)
            request = {
                "external_id": f"demo-{day}-{index}",
                "member_id": member,
                "occurred_at": at,
                "partner_id": partner_id,
            }
            roll = rng.random()
            if roll < 0.55:
                # 0.30 to 2.50 times the partner's typical purchase, in its cents
                share = Decimal(rng.randint(30, 250)) / 100
                request |= {
                    "type": "earn",
                    "amount": (typical[partner_id] * share).quantize(Decimal("0.01")),
                    "currency": currencies[partner_id],
                    "category": "coffee" if partner_id == "aroma" else None,
                }
            elif roll < 0.98:
                request |= {"type": "burn", "points": rng.choice((100, 200, 300, 500))}
            else:
                request |= {
                    "type": "bonus",
                    "partner_id": OPERATOR_PARTNER,
                    "points": 250,
                    "reason": "referral",
                }
            posted += _try_post(database, operator, request, now)
        progress(1)
    return posted


def _try_post(database, operator, request: dict, now: datetime) -> int:
    request = {key: value for key, value in request.items() if value is not None}
    try:
        posting = database.run(ledger.post, operator, request, now)
    except CoalitionError:
        return 0
    return int(posting.created)  # a replay, in a load going on, was posted before


def _past_periods(session, now: datetime) -> list[str]:
    current = catalog.current(session).calendar.containing(now)
    return [p.id for p in calendar.list_periods(session, now) if p.end <= current.start]
