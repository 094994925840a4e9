"""Schemathesis against the served OpenAPI document (SPEC §10), through the WSGI app.

Every operation under ``/api/openapi.json`` is fuzzed with an operator key, on
a database that already holds two partners with rates, a few transactions and
a closed month with statements, so that generated requests can reach the
success paths and not only the validation errors. Path parameters (and a few
query parameters) are drawn partly from the ids that exist, partly from what
schemathesis generates.

Checks, per response:

* ``not_a_server_error`` — nothing ever answers 5xx (a 500 is always a bug);
* ``status_code_conformance`` — the status is documented for the operation
  (every operation documents a ``default`` error response beside the errors it
  lists, so this accepts any status; that each error an operation answers is
  listed under it is held by tests/e2e/test_api_errors.py and the role matrix);
* ``content_type_conformance`` — the content type is the documented one;
* ``response_schema_conformance`` — the body matches the documented schema.

Positive and negative data, in schemathesis' examples, coverage and fuzzing
phases. Bounded and deterministic: a fixed seed, ``derandomize``, and at most
:data:`MAX_EXAMPLES` fuzzed examples per operation (the coverage phase adds a
fixed set of boundary cases); the whole file runs in well under a minute on
SQLite.

Layout: the document is read once at collection, and each operation gets a
test function of its own that sends its requests to the test's own app
(``case.call_and_validate(app=...)``). ``schemathesis.pytest.from_fixture``
would be the natural fit for a fixture-built app, but schemathesis 4.32 sets
``request.node._nodeid``, which pytest 9.2 no longer has; and one
``schema.parametrize()`` test gives every operation the same node id there.
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
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def seed_world(operator, database) -> dict[str, list]:
    """Partners, rates, transactions and a closed month; the ids that exist, per parameter name."""
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
    spare = [database.run(auth.create_key, "finance")[0].id for _ in range(3)]
    return {
        "partner_id": ["alpha", "bravo", "coalition"],
        "transaction_id": [t["id"] for t in posted],
        "member_id": ["m1", "m2"],
        "period_id": [month, current_month_id()],
        "statement_id": [s["id"] for s in statements(operator)],
        "key_id": spare,
        "type": ["earn", "burn"],
    }


def _config() -> schemathesis.Config:
    """Positive and negative data; examples, coverage and fuzzing phases (stateful off)."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
        }
    )


def _served_document() -> dict:
    """The served OpenAPI document, read once at collection from an app without data.

    The document does not depend on data; each test then sends its requests to
    its own app (``case.call_and_validate(app=...)``) on its own seeded database.
    """
    app = create_app({"DATABASE_URL": "sqlite://", "TESTING": True})
    try:
        return expect(app.test_client().get("/api/openapi.json"), 200)
    finally:
        database_of(app).dispose()


DOCUMENT = _served_document()
#: Every phase: explicit examples, coverage (boundary and invalid values), fuzzing.
schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config())

#: Ids that exist in the current test's database, per parameter name (filled by ``seeded_app``).
KNOWN: dict[str, list] = {}


def _with_known(values: dict | None) -> st.SearchStrategy:
    """The generated values, or the same names filled with ids that exist."""
    names = [name for name in values or {} if name in KNOWN]
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
def seeded_app(app, operator, database):
    KNOWN.clear()
    KNOWN.update(seed_world(operator, database))
    yield app
    KNOWN.clear()


def _operation_test(label: str):
    """One pytest test per operation, so each has its own name and its own fresh database."""

    @schema.include(name=label).parametrize()
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def test(case, seeded_app, operator):
        case.call_and_validate(app=seeded_app, headers=operator.headers, checks=CHECKS)

    return test


def _test_name(label: str) -> str:
    method, path = label.split(" ", 1)
    words = [w.strip("{}") for w in path.removeprefix("/api/v1/").split("/")]
    return "test_" + method.lower() + "_" + "_".join(words).replace("-", "_")


# pytest ≥ 9.2 gives every operation of one ``schema.parametrize()`` test the same
# node id, so each operation gets a test function (and a name) of its own.
OPERATIONS = [result.ok().label for result in schema.get_all_operations()]
for _label in OPERATIONS:
    globals()[_test_name(_label)] = _operation_test(_label)
del _label


def test_every_operation_has_a_test():
    assert len(OPERATIONS) == len({_test_name(label) for label in OPERATIONS}) >= 22
