"""A SQLite file removed under a running service is not made again, empty, by the service's
next connection: that empty file answered ``schema_not_current``, whose remedy, `coalition
db upgrade`, made a new, empty coalition where the ledger had been. The service answers 503
until its file is back, and serves it again then."""

import shutil

import pytest

from coalition import auth, create_app, database_of
from coalition.db import migrate
from tests.conftest import POSTGRES_URL, Caller, days_ago
from tests.e2e.helpers import add_partner, add_rate, earn, expect

pytestmark = pytest.mark.skipif(POSTGRES_URL is not None, reason="SQLite's: run with the SQLite suite")


def test_a_removed_file_is_503_not_made_again_and_served_once_it_is_back(tmp_path):
    path = tmp_path / "coalition.sqlite3"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    database = database_of(app)
    migrate.upgrade(database)
    _, key = database.run(lambda session: auth.create_key(session, "operator"))
    operator = Caller(app.test_client(), key)
    add_partner(operator, "aroma", "RUB")
    add_rate(operator, "earn", "0.1", partner_id="aroma")
    expect(earn(operator, "e-1", "card-1", "100.00", occurred_at=days_ago(1)))
    database.dispose()
    shutil.move(path, tmp_path / "aside.sqlite3")

    balance = operator.get("/api/v1/members/card-1/balance")
    assert (balance.status_code, balance.get_json()["reason"]) == (503, "database_unavailable")
    assert app.test_client().get("/readyz").status_code == 503
    assert not path.exists()

    database.dispose()
    shutil.move(tmp_path / "aside.sqlite3", path)
    assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10
