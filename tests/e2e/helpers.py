"""Small shared set-up for the API tests: partners, rates and postings.

Every helper goes through the HTTP API (a ``Caller`` from tests/conftest.py),
so set-up exercises the same paths a partner's till would.

The standard coalition of :func:`setup_coalition`:

| partner  | currency | category | hold_days | earn rate                 |
|----------|----------|----------|-----------|---------------------------|
| aroma    | RUB      | cafe     | 0         | 0.1 point per RUB         |
| skyair   | EUR      | travel   | 0         | 2 points per EUR          |
| coalition (seeded by the migration, EUR)    | no earn rate              |

plus a coalition-wide redemption rate of 0.01 EUR per point. All rates are
effective from 200 days ago, so every allowed ``occurred_at`` (at most 90
days back by default) finds them.
"""

from datetime import UTC, datetime, timedelta

import psycopg.errors
from click.testing import CliRunner

from coalition import create_app, database_of
from coalition.cli import main
from tests.conftest import Caller, days_ago

#: Damage PostgreSQL 15 found in its own files, in its words (tried for real: a page of lots
#: written over with random bytes, pages of an index of lots zeroed): a table's (XX001,
#: restored from a backup) and an index's (XX002, built again), each its error and words
POSTGRESQL_DAMAGE = (
    (psycopg.errors.DataCorrupted, "invalid page in block 5 of relation base/16384/16622"),
    (psycopg.errors.IndexCorrupted, 'index "ix_lots_member_balance" contains unexpected zero page at block 3'),
)

#: Currencies of the partners the tests use (pass ``currency=`` for any other).
CURRENCIES = {"aroma": "RUB", "skyair": "EUR", "coalition": "EUR", "sushi": "JPY", "kuwait": "KWD",
              "hotel": "EUR"}

RATES_FROM_DAYS_AGO = 200


def expect(response, status: int = 201) -> dict:
    """The JSON body of a response that must have ``status``."""
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


def walk_pages(caller, path: str, **query) -> list[list[dict]]:
    """Every page of a cursor-paginated listing, first to last, as its items."""
    pages, cursor = [], None
    while True:
        page = expect(caller.get(path, query_string={**query, **({"cursor": cursor} if cursor else {})}), 200)
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return pages
        assert len(pages) < 1000, "pagination does not end"


def every_item(caller, path: str, **query) -> list[dict]:
    """The items of every page of a cursor-paginated listing."""
    return [item for page in walk_pages(caller, path, **query) for item in page]


def add_partner(operator, partner_id: str, currency: str = "RUB", category: str = "cafe", **fields) -> dict:
    body = {"id": partner_id, "name": fields.pop("name", partner_id.title()), "category": category,
            "currency": currency, **fields}
    return expect(operator.post("/api/v1/partners", json=body))


def rate_body(kind: str, value: str, **fields) -> dict:
    return {"kind": kind, "value": value, "effective_from": days_ago(RATES_FROM_DAYS_AGO), **fields}


def add_rate(operator, kind: str, value: str, **fields) -> dict:
    return expect(operator.post("/api/v1/rates", json=rate_body(kind, value, **fields)))


def setup_coalition(operator, *, redemption: bool = True) -> None:
    add_partner(operator, "aroma", "RUB", "cafe", name="Кофейня Арома")
    add_partner(operator, "skyair", "EUR", "travel", name="SkyAir")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    add_rate(operator, "earn", "2", partner_id="skyair")
    if redemption:
        add_rate(operator, "redemption", "0.01")


def post(caller, **fields):
    """POST one transaction exactly as given."""
    return caller.post("/api/v1/transactions", json=fields)


def earn(caller, external_id: str, member_id: str, amount: str, partner_id: str | None = "aroma",
         occurred_at: str | None = None, **extra):
    body = {"external_id": external_id, "type": "earn", "member_id": member_id,
            "occurred_at": occurred_at or days_ago(3), "amount": amount, **extra}
    if partner_id is not None:
        body["partner_id"] = partner_id
        body.setdefault("currency", CURRENCIES[partner_id])
    return caller.post("/api/v1/transactions", json=body)


def bonus(caller, external_id: str, member_id: str, points: int, partner_id: str = "coalition",
          occurred_at: str | None = None, reason: str = "referral"):
    body = {"external_id": external_id, "type": "bonus", "partner_id": partner_id, "member_id": member_id,
            "occurred_at": occurred_at or days_ago(3), "points": points, "reason": reason}
    return caller.post("/api/v1/transactions", json=body)


def burn(caller, external_id: str, member_id: str, points, partner_id: str | None = "aroma",
         occurred_at: str | None = None):
    body = {"external_id": external_id, "type": "burn", "member_id": member_id,
            "occurred_at": occurred_at or days_ago(2), "points": points}
    if partner_id is not None:
        body["partner_id"] = partner_id
    return caller.post("/api/v1/transactions", json=body)


def earn_reversal(caller, external_id: str, original_external_id: str, partner_id: str = "aroma",
                  occurred_at: str | None = None, **amount_or_points):
    body = {"external_id": external_id, "type": "earn_reversal", "partner_id": partner_id,
            "original_external_id": original_external_id, "occurred_at": occurred_at or days_ago(1),
            **amount_or_points}
    if "amount" in amount_or_points:
        body.setdefault("currency", CURRENCIES[partner_id])
    return caller.post("/api/v1/transactions", json=body)


def burn_reversal(caller, external_id: str, original_external_id: str, partner_id: str = "aroma",
                  occurred_at: str | None = None, **points):
    body = {"external_id": external_id, "type": "burn_reversal", "partner_id": partner_id,
            "original_external_id": original_external_id, "occurred_at": occurred_at or days_ago(1),
            **points}
    return caller.post("/api/v1/transactions", json=body)


def balance(caller, member_id: str) -> dict:
    return expect(caller.get(f"/api/v1/members/{member_id}/balance"), 200)


def history(caller, member_id: str) -> list[dict]:
    return expect(caller.get(f"/api/v1/members/{member_id}/history"), 200)["items"]


def list_all(caller, path: str = "/api/v1/transactions", **query) -> list[dict]:
    """Every item of a cursor-paginated listing."""
    items, cursor = [], None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        page = expect(caller.get(path, query_string=params), 200)
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def at(text: str) -> datetime:
    """An RFC 3339 string from a response as an aware datetime."""
    return datetime.fromisoformat(text)


def moment(days: float = 0, minutes: float = 0) -> str:
    """RFC 3339 for now minus ``days`` plus ``minutes``."""
    return (datetime.now(UTC) - timedelta(days=days) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


def key_ring(operator) -> list[dict]:
    """Keys made in this order: a till of aroma's, a finance team's, aroma's finance; the
    till revoked. The answers that made them (aroma must exist)."""
    made = [
        expect(operator.post("/api/v1/keys", json=body))
        for body in (
            {"role": "partner", "partner_id": "aroma", "name": "till 7"},
            {"role": "finance", "name": "Coalition finance"},
            {"role": "finance", "partner_id": "aroma", "name": "Арома бухгалтерия"},
        )
    ]
    assert operator.delete(f"/api/v1/keys/{made[0]['id']}").status_code == 204
    return made


def till_of(operator, partner_id: str) -> tuple[Caller, str]:
    """A new key of ``partner_id``'s, made through the API: a caller with it, and its id."""
    made = expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}))
    return Caller(operator.client, made["key"]), made["id"]


def coalition_in_a_file(path, monkeypatch) -> str:
    """A coalition in the SQLite file ``path``, the file closed once made: aroma earning
    0.1 point per RUB, card-1 holding 10 points in one lot. The operator's key, which
    `coalition keys create` made, with ``COALITION_DATABASE_URL`` naming the file."""
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    key = CliRunner().invoke(main, ["keys", "create", "--role", "operator"]).output.split()[-1]
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    operator = Caller(app.test_client(), key)
    add_partner(operator, "aroma", "RUB")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    expect(earn(operator, "e-1", "card-1", "100.00", occurred_at=days_ago(1)))
    database_of(app).dispose()
    return key
