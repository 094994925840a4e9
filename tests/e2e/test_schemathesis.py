"""Schemathesis against the served OpenAPI document (SPEC §10), through the WSGI app.

Every operation under ``/api/openapi.json`` is fuzzed with an operator key, on
a database that already holds two partners with rates, a few transactions and
a closed month with statements, so that generated requests can reach the
success paths and not only the validation errors. Path parameters (and a few
query parameters) are drawn partly from the ids that exist, partly from what
schemathesis generates.

Checks, per response:

* ``not_a_server_error`` — nothing ever answers 5xx (a 500 is always a bug);
* ``status_code_conformance`` — the status is documented for the operation;
* ``content_type_conformance`` — the content type is the documented one;
* ``response_schema_conformance`` — the body matches the documented schema.

Bounded and deterministic: a fixed seed, ``derandomize`` and at most
:data:`MAX_EXAMPLES` examples per operation and phase; the whole file runs in
well under a minute on SQLite.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from coalition import auth, create_app, database_of
from tests.conftest import days_ago
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    current_month_id,
    earn,
    expect,
    previous_month,
    statements,
)

MAX_EXAMPLES = 20
SEED = 20261003
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def seed_world(operator, database) -> dict[str, list]:
    """Partners, rates, transactions and a closed month; returns the ids that exist, per parameter."""
    start, _, month = previous_month()
    add_partner(operator, "alpha", "Альфа Маркет", "shop", "RUB")
    add_partner(operator, "bravo", "Bravo Café", "cafe", "EUR")
    add_rate(operator, "earn", "0.1", partner_id="alpha")
    add_rate(operator, "earn", "2", partner_id="bravo")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", "0.001")
    add_rate(operator, "fx", "0.0125", currency="RUB")
    posted = [
        earn(operator, "a-earn-1", "alpha", "m1", at(start, 1), "5000.00", "RUB"),
        earn(operator, "b-earn-1", "bravo", "m1", at(start, 2), "400.00", "EUR"),
        burn(operator, "a-burn-1", "alpha", "m1", at(start, 3), 600),
        burn(operator, "b-burn-1", "bravo", "m1", at(start, 4), 100),
    ]
    close(operator, month)
    posted.append(earn(operator, "a-earn-2", "alpha", "m2", days_ago(0.01), "300.00", "RUB"))
    # Keys that DELETE /keys/{key_id} may revoke without locking the test's operator key out.
    spare = [database.run(lambda session: auth.create_key(session, "finance"))[0].id for _ in range(3)]
    return {
        "partner_id": ["alpha", "bravo", "coalition"],
        "transaction_id": [t["id"] for t in posted],
        "member_id": ["m1", "m2"],
        "period_id": [month, current_month_id()],
        "statement_id": [s["id"] for s in statements(operator)],
        "key_id": spare,
        "type": ["earn", "burn"],
    }


def _load_schema():
    """The served OpenAPI document, read once at collection from an app without a database.

    The document does not depend on data; each test then sends its requests to
    its own app (``case.call(app=...)``) on its own seeded database.
    """
    app = create_app({"DATABASE_URL": "sqlite://", "SCHEDULER": False, "TESTING": True})
    try:
        return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    finally:
        database_of(app).dispose()


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = _load_schema()

#: Ids that exist in the current test's database, per parameter name (filled by ``world``).
KNOWN: dict[str, list] = {}


def _with_known(values: dict | None) -> st.SearchStrategy:
    """The generated values, or the same names filled with ids that exist."""
    values = values or {}
    names = [name for name in values if name in KNOWN]
    if not names:
        return st.just(values)
    chosen = st.fixed_dictionaries({name: st.sampled_from(KNOWN[name]) for name in names})
    return st.one_of(st.just(values), chosen.map(lambda known: {**values, **known}))


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    return _with_known(path_parameters)


@schema.hook
def flatmap_query(context, query):
    return _with_known(query)


@pytest.fixture
def world(app, operator, database):
    KNOWN.clear()
    KNOWN.update(seed_world(operator, database))
    yield app
    KNOWN.clear()


def _settings(test):
    return settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )(test)


def _operation_test(label: str):
    """One pytest test per operation, so each has its own name and its own fresh database."""

    @schema.include(name=label).parametrize()
    @_settings
    def test(case, world, operator):
        case.call_and_validate(app=world, headers=operator.headers, checks=CHECKS)

    return test


def _test_name(label: str) -> str:
    method, path = label.split(" ", 1)
    words = [w.strip("{}") for w in path.removeprefix("/api/v1/").split("/")]
    return "test_" + method.lower() + "_" + "_".join(words).replace("-", "_")


OPERATIONS = [result.ok().label for result in schema.get_all_operations()]
for _label in OPERATIONS:
    globals()[_test_name(_label)] = _operation_test(_label)
del _label


def test_every_operation_has_a_test():
    assert len(OPERATIONS) >= 22
    assert len({_test_name(label) for label in OPERATIONS}) == len(OPERATIONS)
