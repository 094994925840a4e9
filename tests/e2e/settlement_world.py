"""Set-up shared by the settlement tests (SPEC §7–§8): calendar arithmetic and HTTP helpers.

The current period can never be closed, and ``occurred_at`` may be at most
``max_backdate_days`` (90) old, so the settlement tests post into *the
previous calendar month* (monthly periods, UTC), computed from today's date,
or into days in the past when they switch the calendar to daily periods.

:func:`small_closed_month` builds the small two-partner coalition that the
statement-document and role tests read; its figures are worked out in its
docstring.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from coalition.domain import money
from tests.conftest import days_ago
from tests.e2e.helpers import expect


def previous_month(now: datetime | None = None) -> tuple[datetime, datetime, str]:
    """``(start, end, id)`` of the calendar month before the one containing ``now`` (UTC)."""
    now = now or datetime.now(UTC)
    end = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    return start, end, f"{start:%Y-%m}"


def current_month_id() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


def day_in_past(days: int) -> tuple[datetime, str]:
    """Midnight (UTC) of the day ``days`` before today, and its daily period id."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days)
    return start, f"{start:%Y-%m-%d}"


def at(start: datetime, day: int, hour: int = 9, minute: int = 0) -> str:
    """RFC 3339 for ``start`` + ``day`` days + ``hour``:``minute``."""
    return (start + timedelta(days=day, hours=hour, minutes=minute)).isoformat()


def add_partner(operator, partner_id, name, category, currency, hold_days=0) -> dict:
    body = {"id": partner_id, "name": name, "category": category, "currency": currency,
            "hold_days": hold_days}
    return expect(operator.post("/api/v1/partners", json=body))


def add_rate(operator, kind: str, value: str, effective_from: str | None = None, **fields) -> dict:
    body = {"kind": kind, "value": value, "effective_from": effective_from or days_ago(200), **fields}
    return expect(operator.post("/api/v1/rates", json=body))


def post(caller, status: int = 201, **body) -> dict:
    """POST one transaction that must answer ``status``."""
    return expect(caller.post("/api/v1/transactions", json=body), status)


def earn(caller, external_id, partner_id, member_id, occurred_at, amount, currency, **extra) -> dict:
    return post(caller, external_id=external_id, type="earn", partner_id=partner_id,
                member_id=member_id, occurred_at=occurred_at, amount=amount, currency=currency,
                **extra)


def burn(caller, external_id, partner_id, member_id, occurred_at, points) -> dict:
    return post(caller, external_id=external_id, type="burn", partner_id=partner_id,
                member_id=member_id, occurred_at=occurred_at, points=points)


def accepted_or_refused(caller, body: dict):
    """POST a generated transaction, which the service must accept (201) or refuse as
    bad input (422), never anything else."""
    response = caller.post("/api/v1/transactions", json=body)
    assert response.status_code in (201, 422), (body, response.status_code, response.get_json())
    return response


class Reversible:
    """What a generated ledger has posted that a later burn reversal or return may reverse:
    its burns, and its earns and bonuses, each as it was sent."""

    def __init__(self):
        self.burns: list[dict] = []
        self.issues: list[dict] = []

    def keep(self, body: dict) -> None:
        """Keep a posting the service accepted."""
        if body["type"] == "burn":
            self.burns.append(body)
        elif body["type"] in ("earn", "bonus"):
            self.issues.append(body)

    def reversal(self, body: dict, operation: tuple) -> dict | None:
        """``body`` with the fields of a generated reversal of an earlier posting, the
        ``ref``-th kept (round the list), or None while there is none to reverse.
        ``("burn_reversal", ref, share)`` gives back ``share`` percent of the burn's points,
        at least one (all of them: None); ``("earn_reversal", ref, by, percent)`` takes back
        ``percent`` percent of an earn's amount, in whole minor units and at least one, or
        ``percent`` points (``by`` "points", or a bonus, which has no amount)."""
        if operation[0] == "burn_reversal":
            _, ref, share = operation
            kept = self.burns
        else:
            _, ref, by, percent = operation
            kept = self.issues
        if not kept:
            return None
        original = kept[ref % len(kept)]
        body = body | {"partner_id": original["partner_id"],
                       "original_external_id": original["external_id"]}
        if operation[0] == "burn_reversal":
            if share is not None:
                body["points"] = max(1, original["points"] * share // 100)
        elif by == "amount" and "amount" in original:
            unit = money.minor_unit(original["currency"])
            amount = (Decimal(original["amount"]) * percent / 100).quantize(unit, ROUND_FLOOR)
            body |= {"amount": str(max(unit, amount)), "currency": original["currency"]}
        else:
            body["points"] = percent
        return body


def posted_after(monkeypatch, module, name: str, posting) -> None:
    """``module.name``, a read, followed by ``posting()``: a till's posting that commits
    between two statements of one request, to show which the answer read it in. The
    posting is a request of its own thread, as a till's is: nested in this one's thread,
    it shared this request's ``g`` and left this request's key acting in the thread, so
    that a later test's changes were recorded as that key's."""
    read = getattr(module, name)

    def read_then_post(*args, **kwargs):
        answer = read(*args, **kwargs)
        with ThreadPoolExecutor(max_workers=1) as till:
            till.submit(posting).result()
        return answer

    monkeypatch.setattr(module, name, read_then_post)


def close(caller, period_id: str, status: int = 200) -> dict:
    return expect(caller.post(f"/api/v1/settlements/{period_id}/close"), status)


def partner_entry(settlement: dict, partner_id: str) -> dict:
    """A partner's entry in a settlement: its figures, one and only one."""
    (entry,) = [e for e in settlement["partners"] if e["partner_id"] == partner_id]
    return entry


def statements(caller, **query) -> list[dict]:
    return expect(caller.get("/api/v1/statements", query_string=query), 200)["items"]


def statement_of(caller, partner_id: str, period_id: str) -> dict:
    (found,) = [s for s in statements(caller, period_id=period_id) if s["partner_id"] == partner_id]
    return found


def small_closed_month(operator) -> str:
    """:func:`small_month`, then closed; returns the period id."""
    period_id = small_month(operator)
    close(operator, period_id)
    return period_id


def small_month(operator) -> str:
    """Two partners trade points in the previous month (left open); returns its id.

    Partners: ``aroma`` "Кофейня Арома" (RUB, earn 0.1 point per RUB) and
    ``skyair`` (EUR, earn 2 points per EUR), plus the seeded ``coalition``.
    Rates: redemption 0.01 EUR per point, fee 0.001 EUR per point issued,
    fx RUB 0.0125 EUR.

    * m1 earns at skyair for 1234.00 EUR: 1234.00 × 2 = 2468 points;
      burns 2345 at aroma: skyair → aroma 2345 × 0.01 = 23.45 EUR.
    * m2 earns at aroma for 1000.00 RUB: 1000.00 × 0.1 = 100 points;
      burns 67 at skyair: aroma → skyair 67 × 0.01 = 0.67 EUR.

    aroma: receivable 23.45, payable 0.67, fees 100 × 0.001 = 0.10,
    net 23.45 − 0.67 − 0.10 = 22.68 EUR = 22.68 / 0.0125 = 1814.40 RUB.
    skyair: receivable 0.67, payable 23.45, fees 2468 × 0.001 = 2.468 → 2.47,
    net 0.67 − 23.45 − 2.47 = −25.25 EUR.
    Statements in partner-id order: aroma {id}-0001, coalition -0002, skyair -0003.
    """
    start, _, period_id = previous_month()
    add_partner(operator, "aroma", "Кофейня Арома", "cafe", "RUB")
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", "0.001")
    add_rate(operator, "fx", "0.0125", currency="RUB")
    earn(operator, "m1-earn", "skyair", "m1", at(start, 1), "1234.00", "EUR")
    burn(operator, "m1-burn", "aroma", "m1", at(start, 2), 2345)
    earn(operator, "m2-earn", "aroma", "m2", at(start, 3), "1000.00", "RUB")
    burn(operator, "m2-burn", "skyair", "m2", at(start, 4), 67)
    return period_id


def month_closed_uncounted(operator) -> str:
    """The previous month closed with one earn in it, card-0's 200.00 RUB at aroma (which must
    earn 0.1 point per RUB): 20 points, one active member, one purchase. Its KPI counts are
    not kept yet (a close counts none), so the first KPI request for it keeps them."""
    start, _, period_id = previous_month()
    add_rate(operator, "fx", "0.0125", currency="RUB")
    earn(operator, "c-0", "aroma", "card-0", at(start, 1), "200.00", "RUB")
    close(operator, period_id)
    return period_id


def coalition_kpis(caller, period_id: str) -> dict:
    """A period's coalition-wide KPIs, which must answer 200."""
    answer = expect(caller.get("/api/v1/kpis", query_string={"period_id": period_id}), 200)
    return answer["periods"][0]["coalition"]
