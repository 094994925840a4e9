"""``coalition db copy``: a coalition run on SQLite moved into the suite's database.

The source is a pilot on a SQLite file of its own; the target is the test's
database (PostgreSQL in the PostgreSQL suite: the move the command is for), as
new as the migrations leave it. After the copy every answer of the API that
reads what was stored is the same from both, byte for byte for documents, the
pilot's keys work on the copy, and the next posting gets the id the pilot
would have given it.
"""

import os
import sqlite3

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, make_url, select
from sqlalchemy.engine import Engine

from coalition import auth, create_app, database_of
from coalition.cli import main
from coalition.db import copy, migrate, models, period_totals
from tests.conftest import Caller
from tests.e2e.helpers import bonus, burn, burn_reversal, days_ago, earn, earn_reversal, expect, list_all
from tests.e2e.settlement_world import at, current_month_id, previous_month, small_closed_month

SETTINGS = {"base_currency": "EUR", "timezone": "UTC", "period": "monthly", "points_ttl_days": 400,
            "max_backdate_days": 90, "auto_close_after_hours": 72}


@pytest.fixture
def pilot(tmp_path):
    """A coalition on a SQLite file: a closed month with statements, an open one with a
    till's postings, a return, a bonus, a burn reversal and late items; its operator and
    aroma's till as callers, and its URL."""
    url = f"sqlite:///{tmp_path / 'pilot.sqlite3'}"
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SCHEDULER": False})
    database = database_of(app)
    migrate.upgrade(database)
    client = app.test_client()
    operator = Caller(client, database.run(lambda session: auth.create_key(session, "operator", None))[1])
    expect(operator.put("/api/v1/settings", json=SETTINGS), 200)
    closed = small_closed_month(operator)
    till = Caller(client, expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "aroma"}))["key"])
    expect(earn(till, "t-1", "m3", "500.00", occurred_at=days_ago(0.5)))
    expect(earn(till, "t-2", "m2", "90.00"))
    late = expect(earn(till, "t-0", "m2", "40.00", occurred_at=at(previous_month()[0], 20)))
    assert late["late"] and late["period_id"] == current_month_id()
    expect(earn_reversal(till, "t-3", "t-1", occurred_at=days_ago(0.2), amount="100.00"))
    expect(bonus(operator, "b-1", "m3", 25, occurred_at=days_ago(0.4)))
    expect(burn(till, "t-4", "m3", 60, occurred_at=days_ago(0.1)))
    expect(burn_reversal(till, "t-5", "t-4", occurred_at=days_ago(0.05), points=15))
    yield url, operator, till, closed
    database.dispose()


@pytest.fixture
def copy_from(database_url, monkeypatch):
    """``coalition db copy SOURCE`` into the test's database: its exit code and output."""
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)

    def run(source: str):
        result = CliRunner().invoke(main, ["db", "copy", source], catch_exceptions=False)
        return result.exit_code, result.output

    return run


def stored(caller, closed: str) -> dict:
    """Everything the API answers from what is stored, as the operator reads it."""
    statements = list_all(caller, "/api/v1/statements")
    answers = {
        path: caller.get(path).data
        for path in ("/api/v1/settings", "/api/v1/partners", "/api/v1/rates", "/api/v1/keys",
                     "/api/v1/periods", f"/api/v1/settlements/{closed}",
                     f"/api/v1/settlements/{current_month_id()}", "/api/v1/transactions/csv",
                     *(f"/api/v1/members/{member}/history" for member in ("m1", "m2", "m3")),
                     *(f"/api/v1/statements/{statement['id']}{document}"
                       for statement in statements for document in ("", "/pdf", "/csv")))
    }
    balances = {member: expect(caller.get(f"/api/v1/members/{member}/balance"), 200) for member in ("m1", "m2", "m3")}
    for balance in balances.values():
        del balance["as_of"]  # when it was asked
    return {"answers": answers, "balances": balances, "transactions": list_all(caller),
            "changes": list_all(caller, "/api/v1/changes")}


def test_a_copy_answers_as_the_pilot_did_and_posts_on_from_its_ids(pilot, copy_from, client):
    url, operator, till, closed = pilot
    before = stored(operator, closed)
    assert len(before["transactions"]) == 11 and before["balances"]["m3"]["available"] > 0

    status, output = copy_from(url)

    assert status == 0, output
    assert "  transactions                 11\n" in output and "  statements                    3\n" in output
    copied_operator, copied_till = Caller(client, operator.headers["Authorization"][7:]), Caller(
        client, till.headers["Authorization"][7:])
    assert stored(copied_operator, closed) == before
    after_pilot = expect(burn(till, "t-6", "m3", 10, occurred_at=days_ago(0.01)))
    after_copy = expect(burn(copied_till, "t-6", "m3", 10, occurred_at=days_ago(0.01)))
    assert after_copy["id"] == after_pilot["id"] == before["transactions"][-1]["id"] + 1
    assert after_copy["allocations"] == after_pilot["allocations"]


def test_a_copy_holds_a_few_documents_at_a_time(pilot, copy_from, monkeypatch):
    # a large coalition's settlements and statements are megabytes each: CHUNK of them at once
    # would hold them all (here one statement a write, of the pilot's three)
    monkeypatch.setitem(copy.DOCUMENT_CHUNKS, models.Statement.__table__, 1)
    written = []

    def count(conn, clauseelement, multiparams, params, execution_options):
        if getattr(clauseelement, "table", None) is models.Statement.__table__:
            written.append(len(multiparams) or 1)

    event.listen(Engine, "before_execute", count)
    try:
        status, output = copy_from(pilot[0])
    finally:
        event.remove(Engine, "before_execute", count)

    assert status == 0, output
    assert written == [1, 1, 1]


@pytest.fixture
def one_stripe(monkeypatch):
    """Every posting counted into stripe 0 of its period totals (a stripe is drawn at random)."""
    monkeypatch.setattr(period_totals.random, "randrange", lambda _: 0)


def test_one_rate_written_two_ways_on_sqlite_is_one_counter_in_the_copy(one_stripe, pilot, copy_from, client):
    # m3 holds 20 points of coalition's; aroma's own redemption rate "0.010" from now on: its
    # burn is counted at "0.010" beside t-4's and t-5's "0.01", two rows on SQLite, one rate
    url, operator, till, closed = pilot
    expect(operator.post("/api/v1/rates", json={"kind": "redemption", "value": "0.010", "partner_id": "aroma",
                                                "effective_from": days_ago(0.02)}))
    assert expect(burn(till, "t-6", "m3", 10, occurred_at=days_ago(0.01)))["allocations"][0]["issuer_id"] == "coalition"
    before = stored(operator, closed)

    status, output = copy_from(url)

    assert status == 0, output
    assert stored(Caller(client, operator.headers["Authorization"][7:]), closed) == before
    assert CliRunner().invoke(main, ["db", "check"]).exit_code == 0


def test_a_database_that_holds_anything_is_not_copied_into(pilot, copy_from, operator):
    url = pilot[0]
    expect(operator.post("/api/v1/partners", json={"id": "gym", "name": "Gym", "category": "gym", "currency": "EUR"}))

    status, output = copy_from(url)

    assert status == 1
    assert output == ("Error: the database to copy into is not new: it holds changes, partners, api_keys; copy into one"
                      " that nothing but `coalition db upgrade` has written to; nothing was copied\n")
    assert [partner["id"] for partner in expect(operator.get("/api/v1/partners"), 200)] == ["coalition", "gym"]
    assert list_all(operator) == []


def test_a_source_that_is_not_there_is_not_made(tmp_path, copy_from):
    path = tmp_path / "typo.sqlite3"

    status, output = copy_from(f"sqlite:///{path}")

    assert (status, output) == (1, f"Error: there is no database at {path} (SOURCE_URL)\n")
    assert not path.exists()


@pytest.mark.parametrize(("url", "said"), [
    ("sqlite://", "Error: SOURCE_URL names an in-memory SQLite database, which is gone when the command ends:"
                  " name a file (sqlite:///path/to/coalition.sqlite3)\n"),
    ("no scheme here", "Error: SOURCE_URL cannot be used: Could not parse"),  # then SQLAlchemy's words
], ids=["in memory", "not a URL"])
def test_a_source_url_the_copy_cannot_use_is_refused_naming_source_url(copy_from, url, said):
    # the variable at fault named, not COALITION_DATABASE_URL, which is set and sound
    status, output = copy_from(url)
    assert (status, output.count("\n")) == (1, 1)
    assert output.startswith(said)


def test_a_source_without_this_releases_schema_is_refused_saying_how_to_upgrade_it(tmp_path, copy_from):
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()  # a file no migration has run on

    status, output = copy_from(f"sqlite:///{path}")

    assert status == 1
    assert output == ("Error: the database SOURCE_URL names does not have this release's schema: upgrade it first"
                      " (`coalition db upgrade` with COALITION_DATABASE_URL naming it)\n")


def test_a_source_that_cannot_be_read_is_refused_naming_it_and_what_to_do(tmp_path, copy_from):
    path = tmp_path / "notes.sqlite3"
    path.write_text("not a database, though named as one\n" * 200, encoding="utf-8")

    status, output = copy_from(f"sqlite:///{path}")

    assert status == 1
    assert output == (f"Error: the database file {path} is damaged (file is not a database): restore it from a"
                      ' backup (docs/operations.md, "Data to keep") (SOURCE_URL)\n')


def test_a_database_is_not_copied_into_itself(database_url, copy_from):
    assert copy_from(database_url) == (1, "Error: SOURCE_URL names the database COALITION_DATABASE_URL names\n")


def test_a_file_copied_into_itself_without_a_target_named_is_told_to_name_one(tmp_path, monkeypatch):
    # README's `coalition db copy sqlite:///coalition.sqlite3`, run beside the pilot's file with
    # COALITION_DATABASE_URL unset: the copy would go into that same file, which no variable named
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    database = database_of(create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'coalition.sqlite3'}"}))
    migrate.upgrade(database)
    database.dispose()

    result = CliRunner().invoke(main, ["db", "copy", "sqlite:///coalition.sqlite3"], catch_exceptions=False)

    assert (result.exit_code, result.output) == (1, (
        "Error: SOURCE_URL names coalition.sqlite3 here, which a command uses without"
        " COALITION_DATABASE_URL: set it to the new database to copy into\n"))


@pytest.mark.postgres
def test_a_ledger_postgresql_refuses_leaves_the_target_new(pilot, copy_from, database):
    # SQLite keeps no commit-time checks: a lot's remaining points changed by hand
    url = pilot[0]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        connection.execute("UPDATE lots SET remaining = remaining + 1 WHERE id = 1")

    status, output = copy_from(url)

    assert status == 1 and output.startswith("Error: nothing was copied: lot 1 "), output
    with database.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(models.Transaction)) == 0
        assert connection.scalars(select(models.Partner.id)).all() == ["coalition"]


@pytest.mark.postgres
def test_a_burn_from_many_lots_is_summed_once_not_once_an_allocation(pilot, copy_from, monkeypatch):
    # checked at commit one allocation at a time, a burn of 40 copied apart from its
    # allocations read its 40 allocations 40 times over (1,600 rows); each lot and each
    # transaction checked once read each allocation a few times. The checks are planned by
    # their indexes, as on a ledger of any size: on one this small PostgreSQL may read the
    # whole table for each instead (cheap here; CI met that plan, 4,421 rows), which says
    # nothing of how many times each allocation is summed.
    monkeypatch.setenv("PGOPTIONS", "-c enable_seqscan=off")
    url, _, till, _ = pilot
    lots = 40
    for number in range(lots):  # 10.00 RUB at 0.1 a RUB: a lot of 1 point each
        expect(earn(till, f"many-{number}", "m9", "10.00", occurred_at=days_ago(0.9 - number / 1000)))
    assert len(expect(burn(till, "many", "m9", lots, occurred_at=days_ago(0.01)))["allocations"]) == lots
    read = []

    def allocations_read_at_commit(connection):
        if connection.dialect.name == "postgresql":
            cursor = connection.connection.dbapi_connection.cursor()
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the checks queued for the commit
            cursor.execute("SELECT n_tup_ins, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                           " FROM pg_stat_xact_user_tables WHERE relid = 'allocations'::regclass")
            read.append(cursor.fetchone())

    event.listen(Engine, "commit", allocations_read_at_commit)
    try:
        status, output = copy_from(url)
    finally:
        event.remove(Engine, "commit", allocations_read_at_commit)

    assert status == 0, output
    (copied,) = [rows for inserted, rows in read if inserted > 0]
    assert copied < lots * lots / 2


@pytest.mark.postgres
def test_a_lot_said_to_hold_all_its_points_after_a_burn_is_refused(pilot, copy_from, database):
    # a spent lot has a check of its own, one holding all its points only its allocations'
    url = pilot[0]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        (lot,) = connection.execute("SELECT lot_id FROM allocations ORDER BY id LIMIT 1").fetchone()
        connection.execute("UPDATE lots SET remaining = points WHERE id = ?", (lot,))

    status, output = copy_from(url)

    assert (status, output) == (
        1, f"Error: nothing was copied: lot {lot} does not hold its points plus what its allocations moved\n")
    with database.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(models.Transaction)) == 0


@pytest.fixture
def not_the_owner(database_url, database, monkeypatch):
    """The test's database reached as a role that may write every table but owns none."""
    role = f"copier_{os.getpid()}"
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        connection.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    monkeypatch.setenv("COALITION_DATABASE_URL", make_url(database_url).set(username=role).render_as_string(False))
    yield
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
        connection.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_a_copy_by_a_role_that_does_not_own_the_tables_is_checked_an_allocation_at_a_time(
        pilot, database_url, not_the_owner, client):
    # only the owner may set a trigger aside: another role's copy keeps every check
    url, operator, _, closed = pilot
    before = stored(operator, closed)

    result = CliRunner().invoke(main, ["db", "copy", url], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert stored(Caller(client, operator.headers["Authorization"][7:]), closed) == before


def test_a_source_lost_while_it_is_read_is_named_and_leaves_the_target_new(pilot, copy_from, database):
    # both databases raise Unavailable: the one lost must be told, the source here (its lots' read fails)
    path = pilot[0].removeprefix("sqlite:///")

    def lost(connection, _cursor, statement, *_):
        if connection.engine.url.database == path and "FROM lots" in statement:
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = sqlite3.SQLITE_IOERR
            raise error

    event.listen(Engine, "before_cursor_execute", lost)
    try:
        status, output = copy_from(pilot[0])
    finally:
        event.remove(Engine, "before_cursor_execute", lost)

    assert status == 1
    assert output == "Error: the database file cannot be written (disk I/O error) (SOURCE_URL); nothing was copied\n"
    with database.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(models.Transaction)) == 0
        assert connection.scalars(select(models.Partner.id)).all() == ["coalition"]
