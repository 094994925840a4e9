"""Every endpoint × every principal → the exact status (SPEC §4), and partner isolation.

The expected statuses come from SPEC §4 and the decisions taken on it, not from
running the code:

* no key, an unknown key or a revoked key → 401, everywhere under ``/api/v1``;
* ``operator`` may do everything;
* ``finance`` (bound to a partner or not) gets 403 on every write (POST, PUT,
  PATCH, DELETE) and may read settings, partners, rates and periods; unbound, it
  may read keys (never the keys themselves) and the record of changes; bound to
  a partner it gets 403 on ``GET /settlements/{period}``, keys and changes (all
  name every partner), and 404
  for another partner's transaction or statement by id;
* ``partner`` keys get 403 on settings, partners, rates (read and write), keys,
  ``GET /settlements/{period}`` and close; they may read periods and member
  balances, post their own transactions (another partner's → 403), and get 404
  for another partner's transaction or statement by id. A batch answers 200 and
  reports each item's own status.

The world (:func:`build_world`): partners A = ``alpha`` and B = ``bravo`` with
rates; in the previous month a shared member earns at both and burns at both,
and that month is closed, so each has a final statement; in the current month
each partner has one more transaction. Its figures, with earn 1 point per EUR
at alpha, 3 at bravo, redemption 0.01 EUR per point and fee 0.001 EUR per point
issued:

* ``shared`` earns 250 at alpha (250.00 EUR) and 2193 at bravo (731.13 × 3 =
  2193.39 → 2193), then burns 900 at alpha: 250 from alpha's lot (it expires
  first), 650 from bravo's → pair bravo → alpha 6.50; burns 77 at bravo (own).
* ``alpha-fan`` earns 120 at alpha (120.00 EUR), burns 40 at bravo → pair
  alpha → bravo 0.40.
* alpha: receivable 6.50, payable 0.40, fees 370 × 0.001 = 0.37, net 5.73.
  bravo: receivable 0.40, payable 6.50, fees 2193 × 0.001 = 2.193 → 2.19,
  net −8.29.

The matrix shares one world per module (the writes it makes are additive or
no-ops, so no cell changes another's outcome); the isolation tests each build
their own.
"""

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from pypdf import PdfReader
from sqlalchemy import text

from coalition import auth, create_app, database_of
from tests.conftest import Caller, copy_of, days_ago
from tests.e2e.helpers import every_item
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    earn,
    expect,
    previous_month,
    statement_of,
)

A, B = "alpha", "bravo"
A_NAME, B_NAME = "Alpha Shop", "Bravo Café"

#: Principals: three that are not authenticated, then five known keys.
UNAUTHENTICATED = ("no_key", "unknown_key", "revoked_key")
KNOWN = ("operator", "finance", "finance_a", "partner_a", "partner_b")
PRINCIPALS = UNAUTHENTICATED + KNOWN


# --- the world -------------------------------------------------------------------------------


@dataclass
class World:
    client: object
    database: object
    callers: dict[str, Caller]
    period_id: str
    transactions: dict[str, dict]  # by external_id
    statements: dict[str, dict]  # by partner_id, the closed month's

    def caller(self, principal: str) -> Caller:
        return self.callers[principal]

    @property
    def operator(self) -> Caller:
        return self.callers["operator"]


def build_world(client, database) -> World:
    def key(role, partner_id=None) -> str:
        return database.run(lambda session: auth.create_key(session, role, partner_id))[1]

    operator = Caller(client, key("operator"))
    start, _, period_id = previous_month()
    add_partner(operator, A, A_NAME, "shop", "EUR")
    add_partner(operator, B, B_NAME, "cafe", "EUR")
    add_rate(operator, "earn", "1", partner_id=A)
    add_rate(operator, "earn", "3", partner_id=B)
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", "0.001")
    posted = [
        earn(operator, "alpha-earn-1", A, "shared", at(start, 1), "250.00", "EUR"),
        earn(operator, "alpha-earn-2", A, "alpha-fan", at(start, 1, 10), "120.00", "EUR"),
        earn(operator, "bravo-earn-1", B, "shared", at(start, 2), "731.13", "EUR"),
        burn(operator, "alpha-burn-1", A, "shared", at(start, 3), 900),
        burn(operator, "bravo-burn-1", B, "alpha-fan", at(start, 4), 40),
        burn(operator, "bravo-burn-2", B, "shared", at(start, 5), 77),
    ]
    close(operator, period_id)
    posted += [
        earn(operator, "alpha-now", A, "shared", days_ago(0.01), "12.00", "EUR"),
        earn(operator, "bravo-now", B, "shared", days_ago(0.01), "555.55", "EUR"),
    ]
    revoked = expect(operator.post("/api/v1/keys", json={"role": "operator", "name": "revoked"}))
    assert operator.delete(f"/api/v1/keys/{revoked['id']}").status_code == 204
    callers = {
        "no_key": Caller(client, None),
        "unknown_key": Caller(client, auth.KEY_PREFIX + "this-key-was-never-issued-by-the-service"),
        "revoked_key": Caller(client, revoked["key"]),
        "operator": operator,
        "finance": Caller(client, key("finance")),
        "finance_a": Caller(client, key("finance", A)),
        "partner_a": Caller(client, key("partner", A)),
        "partner_b": Caller(client, key("partner", B)),
    }
    return World(
        client=client,
        database=database,
        callers=callers,
        period_id=period_id,
        transactions={t["external_id"]: t for t in posted},
        statements={p: statement_of(operator, p, period_id) for p in (A, B)},
    )


@pytest.fixture(scope="module")
def shared_world(template, tmp_path_factory):
    """One world for the whole matrix, on its own copy of the migrated database."""
    with copy_of(template, tmp_path_factory.mktemp("matrix")) as url:
        app = create_app({"DATABASE_URL": url, "TESTING": True})
        try:
            yield build_world(app.test_client(), database_of(app))
        finally:
            database_of(app).dispose()


@pytest.fixture
def world(client, database) -> World:
    """A fresh world for a test that writes."""
    return build_world(client, database)


# --- the matrix ------------------------------------------------------------------------------


def _now_plus(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


def _earn_for_a(external_id: str) -> dict:
    return {"external_id": external_id, "type": "earn", "partner_id": A, "member_id": "matrix-member",
            "occurred_at": days_ago(0.01), "amount": "10.00", "currency": "EUR"}


def _spare_key(world: World) -> str:
    """A finance key made for one DELETE cell, so no cell revokes a key another cell uses."""
    return world.database.run(lambda session: auth.create_key(session, "finance"))[0].id


def _slug(principal: str) -> str:
    return principal.replace("_", "-")


@dataclass(frozen=True)
class Row:
    method: str
    template: str  # the path as the OpenAPI document names it, under /api/v1
    expected: tuple[int, int, int, int, int]  # for KNOWN, in order
    request: object  # (world, principal) -> (path, json body or None)
    name: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.name or self.template}"


def _path(template: str, **values):
    def request(world: World, principal: str):
        filled = {name: value(world) if callable(value) else value for name, value in values.items()}
        return "/api/v1" + template.format(**filled), None

    return request


def _with_body(template: str, body, **values):
    def request(world: World, principal: str):
        path, _ = _path(template, **values)(world, principal)
        return path, body(world, principal)

    return request


TX_A = lambda w: w.transactions["alpha-now"]["id"]
TX_B = lambda w: w.transactions["bravo-now"]["id"]
ST_A = lambda w: w.statements[A]["id"]
ST_B = lambda w: w.statements[B]["id"]
PERIOD = lambda w: w.period_id

#                                  operator finance fin_A partner_A partner_B
ROWS = [
    Row("POST", "/keys", (201, 403, 403, 403, 403),
        _with_body("/keys", lambda w, p: {"role": "finance", "name": f"made by {p}"})),
    Row("DELETE", "/keys/{key_id}", (204, 403, 403, 403, 403),
        lambda w, p: (f"/api/v1/keys/{_spare_key(w)}", None)),
    Row("GET", "/keys", (200, 200, 403, 403, 403), _path("/keys")),
    Row("GET", "/changes", (200, 200, 403, 403, 403), _path("/changes")),
    Row("GET", "/keys/{key_id}", (200, 200, 403, 403, 403),
        lambda w, p: (f"/api/v1/keys/{_spare_key(w)}", None)),
    Row("GET", "/settings", (200, 200, 200, 403, 403), _path("/settings")),
    Row("PUT", "/settings", (200, 403, 403, 403, 403),
        _with_body("/settings", lambda w, p: {"points_ttl_days": 365})),  # the default: a no-op
    Row("GET", "/partners", (200, 200, 200, 403, 403), _path("/partners")),
    Row("POST", "/partners", (201, 403, 403, 403, 403),
        _with_body("/partners", lambda w, p: {"id": f"new-{_slug(p)}", "name": "New", "category": "shop",
                                              "currency": "EUR"})),
    Row("GET", "/partners/{partner_id}", (200, 200, 200, 403, 403), _path("/partners/{id}", id=A)),
    Row("PATCH", "/partners/{partner_id}", (200, 403, 403, 403, 403),
        _with_body("/partners/{id}", lambda w, p: {"name": A_NAME}, id=A)),  # unchanged name: a no-op
    Row("GET", "/rates", (200, 200, 200, 403, 403), _path("/rates")),
    Row("POST", "/rates", (201, 403, 403, 403, 403),
        _with_body("/rates", lambda w, p: {"kind": "fx", "value": "0.0061", "currency": "JPY",
                                           "effective_from": _now_plus(PRINCIPALS.index(p))})),
    Row("GET", "/transactions", (200, 200, 200, 200, 200), _path("/transactions")),
    Row("POST", "/transactions", (201, 403, 403, 201, 403),
        _with_body("/transactions", lambda w, p: _earn_for_a(f"matrix-{p}"))),
    Row("POST", "/transactions/batch", (200, 403, 403, 200, 200),
        _with_body("/transactions/batch",
                   lambda w, p: {"transactions": [_earn_for_a(f"matrix-batch-{p}")]})),
    Row("GET", "/transactions/csv", (200, 200, 200, 200, 200), _path("/transactions/csv")),
    Row("GET", "/transactions/csv", (200, 200, 403, 403, 200),
        _path("/transactions/csv?partner_id={id}", id=B), name="/transactions/csv?partner_id={B}"),
    Row("GET", "/transactions/{transaction_id}", (200, 200, 200, 200, 404),
        _path("/transactions/{id}", id=TX_A), name="/transactions/{A's}"),
    Row("GET", "/transactions/{transaction_id}", (200, 200, 404, 404, 200),
        _path("/transactions/{id}", id=TX_B), name="/transactions/{B's}"),
    Row("GET", "/members/{member_id}/balance", (200, 200, 200, 200, 200),
        _path("/members/{id}/balance", id="shared")),
    Row("GET", "/members/{member_id}/history", (200, 200, 200, 200, 200),
        _path("/members/{id}/history", id="shared")),
    Row("GET", "/periods", (200, 200, 200, 200, 200), _path("/periods")),
    # KPIs: everyone reads them; a bound key gets its own partner and the coalition totals.
    Row("GET", "/kpis", (200, 200, 200, 200, 200), _path("/kpis")),
    Row("GET", "/kpis", (200, 200, 403, 403, 200), _path("/kpis?partner_id={id}", id=B),
        name="/kpis?partner_id={B}"),
    Row("GET", "/settlements/{period_id}", (200, 200, 403, 403, 403),
        _path("/settlements/{id}", id=PERIOD)),
    Row("GET", "/settlements/{period_id}/csv", (200, 200, 403, 403, 403),
        _path("/settlements/{id}/csv", id=PERIOD)),
    Row("POST", "/settlements/{period_id}/close", (200, 403, 403, 403, 403),
        _path("/settlements/{id}/close", id=PERIOD)),  # already closed: closing again changes nothing
    Row("GET", "/statements", (200, 200, 200, 200, 200), _path("/statements")),
]
for _suffix in ("", "/pdf", "/csv"):
    ROWS += [
        Row("GET", "/statements/{statement_id}" + _suffix, (200, 200, 200, 200, 404),
            _path("/statements/{id}" + _suffix, id=ST_A), name="/statements/{A's}" + _suffix),
        Row("GET", "/statements/{statement_id}" + _suffix, (200, 200, 404, 404, 200),
            _path("/statements/{id}" + _suffix, id=ST_B), name="/statements/{B's}" + _suffix),
    ]
del _suffix

CELLS = [
    pytest.param(row, principal, id=f"{row.id} as {principal}")
    for row in ROWS
    for principal in PRINCIPALS
]


def expected_status(row: Row, principal: str) -> int:
    return 401 if principal in UNAUTHENTICATED else row.expected[KNOWN.index(principal)]


@pytest.fixture(scope="module")
def documented(shared_world):
    """The served OpenAPI document, to check answers against."""
    return schemathesis.openapi.from_dict(expect(shared_world.client.get("/api/openapi.json"), 200))


@pytest.mark.parametrize(("row", "principal"), CELLS)
def test_status(shared_world, documented, row, principal):
    path, body = row.request(shared_world, principal)
    caller = shared_world.caller(principal)
    kwargs = {"json": body} if body is not None else {}
    response = getattr(caller, row.method.lower())(path, **kwargs)
    expected = expected_status(row, principal)
    assert response.status_code == expected, (row.id, principal, response.get_json())
    if expected >= 400:  # SPEC §10: every error is JSON with its code
        assert response.get_json()["code"] == expected
    # A client generated from the document may rely on it: each field the answer's schema
    # lists as required is there, and every field has its documented type.
    documented["/api/v1" + row.template][row.method].validate_response(response)


def test_every_operation_has_an_operation_id_of_its_own(client):
    """A client generated from the document names its methods after them: ``closePeriod``,
    not one made of the path, such as ``apiV1SettlementsPeriodIdClosePost``."""
    paths = expect(client.get("/api/openapi.json"), 200)["paths"]
    named = {(method.upper(), path.removeprefix("/api/v1")): operation.get("operationId")
             for path, operations in paths.items() if path.startswith("/api/v1/")
             for method, operation in operations.items() if method in ("get", "put", "post", "patch", "delete")}
    assert None not in named.values(), [operation for operation, name in named.items() if name is None]
    assert len(set(named.values())) == len(named) == len({(row.method, row.template) for row in ROWS})
    assert named["POST", "/settlements/{period_id}/close"] == "closePeriod"
    assert named["POST", "/transactions"] == "postTransaction"
    assert named["GET", "/members/{member_id}/balance"] == "getMemberBalance"


def _answer_schemas(document: dict) -> set[str]:
    """The components a success answer's body is made of, nested ones included."""
    success = [response for operations in document["paths"].values() for operation in operations.values()
               if isinstance(operation, dict)
               for status, response in operation.get("responses", {}).items() if status.startswith("2")]
    found, todo = set(), success
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo += node
        elif isinstance(node, dict):
            name = node.get("$ref", "").removeprefix("#/components/schemas/")
            if "/" not in name and name and name not in found:
                found.add(name)
                todo.append(document["components"]["schemas"][name])
            todo += node.values()
    return found


def test_the_document_lists_every_field_of_an_answer_as_required_but_four(client):
    """A client generated from the document may read an answer's fields without a guard
    (``test_status`` checks that the answers have them); the four an answer may leave
    out are those decisions.md names."""
    document = expect(client.get("/api/openapi.json"), 200)
    schemas = document["components"]["schemas"]
    answers = _answer_schemas(document)
    assert {"TransactionOut", "BalanceOut", "StatementOut", "PartnerOut", "SettingsOut", "KpiReport",
            "Figures", "LotMovement"} <= answers
    optional = {name: sorted(set(schemas[name]["properties"]) - set(schemas[name].get("required", [])))
                for name in answers}
    assert {name: fields for name, fields in optional.items() if fields} == {
        "BatchResult": ["error", "transaction"],
        "SettlementOut": ["missing_fx"],
        "PartnerEntry": ["fee_lines"],
        "StatementOut": ["timezone"],
        "Error": ["errors", "reason"],  # a batch item's, as any error's (SPEC §10)
    }


def test_the_matrix_covers_every_operation_of_the_openapi_document(client):
    spec = expect(client.get("/api/openapi.json"), 200)
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if method in ("get", "put", "post", "patch", "delete")
    }
    covered = {(row.method, row.template) for row in ROWS}
    assert not documented - covered, f"operations without a matrix row: {sorted(documented - covered)}"
    assert not covered - documented, f"rows for undocumented operations: {sorted(covered - documented)}"


def test_every_status_of_the_matrix_is_in_its_operations_openapi_responses(client):
    """What ``test_status`` finds each principal answered (401 without a valid key, 403
    outside a role, 404 for another partner's id, and each success), a partner's
    developer finds listed under that operation in the OpenAPI document."""
    paths = expect(client.get("/api/openapi.json"), 200)["paths"]
    missing = sorted(
        (row.id, status)
        for row in ROWS
        for status in {expected_status(row, principal) for principal in PRINCIPALS}
        if str(status) not in paths["/api/v1" + row.template][row.method.lower()]["responses"]
    )
    assert not missing, f"statuses answered but not documented: {missing}"


# --- outside its role, a key gets 403 whatever it sends --------------------------------------

#: Bodies a view would refuse if it read them: an unknown field (422), malformed JSON (400).
INVALID_BODIES = {
    "unknown field": {"json": {"no_such_field": 1}},
    "malformed JSON": {"data": "{", "content_type": "application/json"},
}


def _outside_its_role(row: Row, principal: str) -> bool:
    """A write the key's role may not make (SPEC §4). Partner B's 403 on POST /transactions
    is for naming partner A in the body, which its role may do with its own partner."""
    forbidden = row.expected[KNOWN.index(principal)] == 403
    return forbidden and row.method != "GET" and (row.template, principal) != ("/transactions", "partner_b")


FORBIDDEN_WRITES = [
    pytest.param(row, principal, body, id=f"{row.id} as {principal} with {body}")
    for row in ROWS
    for principal in KNOWN
    if _outside_its_role(row, principal)
    for body in INVALID_BODIES
]


@pytest.mark.parametrize(("row", "principal", "body"), FORBIDDEN_WRITES)
def test_a_write_outside_the_role_is_403_before_its_body_is_read(shared_world, row, principal, body):
    path, _ = row.request(shared_world, principal)
    response = getattr(shared_world.caller(principal), row.method.lower())(path, **INVALID_BODIES[body])
    assert response.status_code == 403, (row.id, principal, response.get_json())
    assert response.get_json()["reason"] == "forbidden"


def test_a_read_outside_the_role_is_403_before_its_query_is_read(shared_world):
    response = shared_world.caller("partner_a").get("/api/v1/rates", query_string={"kind": "nonsense"})
    assert (response.status_code, response.get_json()["reason"]) == (403, "forbidden")


def test_head_is_checked_as_the_get_it_runs(shared_world):
    assert shared_world.caller("partner_a").head("/api/v1/settings").status_code == 403
    assert shared_world.caller("finance").head("/api/v1/settings").status_code == 200


# --- keys: stored hashed, compared in constant time ----------------------------------------


def test_the_api_keys_table_holds_only_the_sha256_of_a_key(operator, database):
    key = expect(operator.post("/api/v1/keys", json={"role": "finance", "name": "hash check"}))["key"]
    secret = key.removeprefix(auth.KEY_PREFIX)
    with database.engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM api_keys"))
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]
    digest = hashlib.sha256(key.encode()).hexdigest()
    for row in rows:
        for column, value in row.items():
            assert secret not in str(value), f"api_keys.{column} holds the key text"
    (stored,) = [row for row in rows if row["name"] == "hash check"]
    assert [column for column, value in stored.items() if value == digest] == ["key_hash"]


# --- partner A never learns partner B's amounts ----------------------------------------------


def _b_secrets(world: World) -> set[str]:
    """Strings only B's data holds: its amounts, external ids, figures, statement number and hash."""
    operator = world.operator
    b_transactions = every_item(operator, "/api/v1/transactions", partner_id=B)
    b_statement = world.statements[B]
    secrets = {t["amount"] for t in b_transactions if t["amount"]}
    secrets |= {t["external_id"] for t in b_transactions}
    secrets |= {b_statement["number"], b_statement["sha256"]}
    figures = {str(b_statement["summary"][k]) for k in ("net", "fees", "points_issued")}
    secrets |= figures | {figure.lstrip("-") for figure in figures}
    assert {"731.13", "555.55", "8.29", "2.19", "2193"} <= secrets
    return secrets


def _tokens(text: str) -> set[str]:
    """Words, ids and numbers of ``text``: B's "2.19" is no match for a timestamp's "…:52.19…"."""
    words = re.findall(r"[\w.\-]+", text)
    return set(words) | {word.strip(".-") for word in words}


def _a_own_strings(world: World) -> set[str]:
    """Strings A's own statement legitimately holds (its counterparty lines with B included)."""
    statement = world.statements[A]
    found = set()

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif value is not None:
            found.add(str(value))

    walk(statement)
    return found


def _assert_no_b_secret(world: World, text: str, where: str, sent: frozenset = frozenset()) -> None:
    """None of B's secrets is in ``text``, except what A's own statement holds or A itself sent."""
    leaked = (_b_secrets(world) - _a_own_strings(world) - sent) & _tokens(text)
    assert not leaked, f"{where} shows B's {sorted(leaked)}"


def _b_transaction_ids(world: World) -> set[int]:
    return {t["id"] for t in every_item(world.operator, "/api/v1/transactions", partner_id=B)}


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_transaction_list_without_filter_shows_only_a(world, principal):
    caller = world.caller(principal)
    items = every_item(caller, "/api/v1/transactions")
    assert {t["partner_id"] for t in items} == {A}
    assert sorted(t["external_id"] for t in items) == [
        "alpha-burn-1", "alpha-earn-1", "alpha-earn-2", "alpha-now"]
    _assert_no_b_secret(world, json.dumps(items), f"{principal}'s transaction list")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_transaction_export_without_filter_shows_only_a(world, principal):
    response = world.caller(principal).get("/api/v1/transactions/csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {row["partner_id"] for row in rows} == {A}
    assert {row["external_id"] for row in rows} == {"alpha-burn-1", "alpha-earn-1", "alpha-earn-2", "alpha-now"}
    _assert_no_b_secret(world, response.get_data(as_text=True), f"{principal}'s transaction export")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_transaction_list_filtered_for_b_is_403(world, principal):
    response = world.caller(principal).get("/api/v1/transactions", query_string={"partner_id": B})
    assert response.status_code == 403
    _assert_no_b_secret(world, response.get_data(as_text=True), "the 403")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_transaction_list_by_a_member_shared_with_b_shows_only_a(world, principal):
    items = every_item(world.caller(principal), "/api/v1/transactions", member_id="shared")
    assert sorted(t["external_id"] for t in items) == ["alpha-burn-1", "alpha-earn-1", "alpha-now"]
    _assert_no_b_secret(world, json.dumps(items), "the member's transactions")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_history_of_a_member_who_transacted_at_both_shows_only_a(world, principal):
    items = every_item(world.caller(principal), "/api/v1/members/shared/history")
    assert {item["partner_id"] for item in items} == {A}
    assert not {item["transaction_id"] for item in items} & _b_transaction_ids(world)
    assert sorted(item["points"] for item in items) == [-900, 12, 250]
    _assert_no_b_secret(world, json.dumps(items), "the member's history")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_statement_list_shows_only_a(world, principal):
    caller = world.caller(principal)
    for query in ({}, {"period_id": world.period_id}):
        items = expect(caller.get("/api/v1/statements", query_string=query), 200)["items"]
        assert [s["partner_id"] for s in items] == [A], query
        _assert_no_b_secret(world, json.dumps(items), f"the statement list {query}")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
def test_statement_list_filtered_for_b_reveals_nothing(world, principal):
    response = world.caller(principal).get("/api/v1/statements", query_string={"partner_id": B})
    assert response.status_code == 403 or (response.status_code == 200 and response.get_json()["items"] == [])
    _assert_no_b_secret(world, response.get_data(as_text=True), "the filtered statement list")


@pytest.mark.parametrize("principal", ["partner_a", "finance_a"])
@pytest.mark.parametrize("document", ["", "/pdf", "/csv"])
def test_b_statement_by_id_is_404_and_reveals_nothing(world, principal, document):
    statement_id = world.statements[B]["id"]
    response = world.caller(principal).get(f"/api/v1/statements/{statement_id}{document}")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404
    _assert_no_b_secret(world, response.get_data(as_text=True), "the 404")


def _document_text(response, document: str) -> str:
    if document == "/pdf":
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    if document == "/csv":
        rows = csv.reader(io.StringIO(response.data.decode("utf-8")))
        return "\n".join(",".join(row) for row in rows)
    return response.get_data(as_text=True)


@pytest.mark.parametrize("document", ["", "/pdf", "/csv"])
def test_a_own_statement_holds_none_of_b_figures(world, document):
    statement_id = world.statements[A]["id"]
    response = world.caller("partner_a").get(f"/api/v1/statements/{statement_id}{document}")
    assert response.status_code == 200
    content = _document_text(response, document)
    assert world.statements[A]["number"] in content
    _assert_no_b_secret(world, content, f"A's statement{document or ' JSON'}")


def test_batch_replies_reveal_nothing_of_b(world):
    """A's batch: an item for B, reversals of B's external ids, an earn reusing B's external id."""
    shared_at = days_ago(0.005)
    items = [
        {"external_id": "try-bravo", "type": "earn", "partner_id": B, "member_id": "shared",
         "occurred_at": shared_at, "amount": "10.00", "currency": "EUR"},
        {"external_id": "rev-1", "type": "earn_reversal", "original_external_id": "bravo-now",
         "occurred_at": shared_at, "points": 1},
        {"external_id": "rev-2", "type": "burn_reversal", "original_external_id": "bravo-burn-2",
         "occurred_at": shared_at},
        {"external_id": "bravo-now", "type": "earn", "member_id": "shared", "occurred_at": shared_at,
         "amount": "10.00", "currency": "EUR"},
        {"external_id": "a-burn", "type": "burn", "member_id": "shared", "occurred_at": shared_at,
         "points": 5},
    ]
    response = world.caller("partner_a").post("/api/v1/transactions/batch", json={"transactions": items})
    reply = expect(response, 200)
    results = reply["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[0]["status"] == 403
    assert results[1]["status"] in (404, 422) and results[2]["status"] in (404, 422)
    assert [r["status"] for r in results[3:]] == [201, 201]
    b_ids = _b_transaction_ids(world)
    for result in results[3:]:
        assert result["transaction"]["partner_id"] == A
        assert result["transaction"]["id"] not in b_ids
    sent = frozenset(str(value) for item in items for value in item.values())
    _assert_no_b_secret(world, json.dumps(reply), "the batch reply", sent)
