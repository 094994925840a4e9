"""A SQLite file removed under a running service is not made again, empty, by the service's
next connection: that empty file answered ``schema_not_current``, whose remedy, `coalition
db upgrade`, made a new, empty coalition where the ledger had been. The service answers 503
until its file is back, and serves it again then."""

import shutil

import pytest

from coalition import create_app, database_of
from tests.conftest import POSTGRES_URL, Caller
from tests.e2e.helpers import coalition_in_a_file, expect

pytestmark = pytest.mark.skipif(POSTGRES_URL is not None, reason="SQLite's: run with the SQLite suite")


def test_a_removed_file_is_503_not_made_again_and_served_once_it_is_back(tmp_path, monkeypatch):
    path = tmp_path / "coalition.sqlite3"
    key = coalition_in_a_file(path, monkeypatch)
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    operator = Caller(app.test_client(), key)
    assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10
    database = database_of(app)
    database.dispose()
    shutil.move(path, tmp_path / "aside.sqlite3")

    balance = operator.get("/api/v1/members/card-1/balance")
    assert (balance.status_code, balance.get_json()["reason"]) == (503, "database_unavailable")
    assert app.test_client().get("/readyz").status_code == 503
    assert not path.exists()

    database.dispose()
    shutil.move(tmp_path / "aside.sqlite3", path)
    assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10
