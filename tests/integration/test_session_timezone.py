"""PostgreSQL sessions work in UTC, whatever time zone the server is set to.

Instants are stored as ``timestamptz`` and psycopg reads them back in the
session's time zone. West of UTC, the first instant of year 1 (a rate in
force "since ever") has no local form: psycopg could not read it, and every
read of the rate catalogue would fail. The service opens its sessions in UTC.
"""

import pytest
from sqlalchemy import create_engine, text

from coalition import auth, create_app, database_of
from coalition.db import Database
from tests.conftest import copy_of

pytestmark = pytest.mark.postgres


def test_a_rate_from_the_first_instant_of_year_one_reads_back_west_of_utc(template, tmp_path):
    with copy_of(template, tmp_path) as url:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = connection.execute(text("SELECT current_database()")).scalar_one()
            connection.execute(
                text(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
            )
        admin.dispose()
        app = create_app({"DATABASE_URL": url, "TESTING": True})
        database = database_of(app)
        try:
            _, key = database.run(lambda session: auth.create_key(session, "operator", None, "tz"))
            client = app.test_client()
            headers = {"Authorization": f"Bearer {key}"}
            rate = {
                "kind": "fx",
                "value": "1.1",
                "currency": "USD",
                "effective_from": "0001-01-01T00:00:00Z",
            }
            assert client.post("/api/v1/rates", json=rate, headers=headers).status_code == 201
            listed = client.get("/api/v1/rates", headers=headers)
            assert listed.status_code == 200, listed.get_json()
            assert [r["effective_from"] for r in listed.get_json()] == ["0001-01-01T00:00:00+00:00"]
        finally:
            database.dispose()


def test_the_urls_own_session_options_still_apply(template, tmp_path):
    with copy_of(template, tmp_path) as url:
        database = Database(url + "?options=-c%20statement_timeout%3D4321")
        try:
            with database.engine.connect() as connection:
                shown = [connection.exec_driver_sql(f"SHOW {name}").scalar_one()
                         for name in ("statement_timeout", "TimeZone")]
            assert shown == ["4321ms", "UTC"]
        finally:
            database.dispose()
