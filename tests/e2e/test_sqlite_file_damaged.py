"""A SQLite file found damaged (a page written over, the file cut short, a ``-wal`` of another
database beside it, a file that is no database) is the operator's to restore from a backup:
a request that reads a damaged page is answered 503 saying so, while those that read sound
pages are served, and a command stops with one line naming the file and what to do. The
requests were 500s, a command a traceback, and ``db check`` found a file sound whose index
of lots by member was written over, its statements reading none of that index's pages.

Each test writes over one page of a real coalition's file, as ``dd`` over the middle of a
file does: the page of one table or index, found by its name in SQLite's schema.
"""

import sqlite3

import pytest
from click.testing import CliRunner

from coalition import create_app, database_of
from coalition.cli import main
from tests.conftest import POSTGRES_URL, Caller, days_ago
from tests.e2e.helpers import add_rate, coalition_in_a_file, earn, expect

pytestmark = pytest.mark.skipif(POSTGRES_URL is not None, reason="SQLite's: run with the SQLite suite")

RESTORE = 'restore it from a backup (docs/operations.md, "Data to keep")'


@pytest.fixture
def coalition_file(tmp_path, monkeypatch):
    """The coalition of :func:`coalition_in_a_file`, its WAL folded in; its path and the
    operator's key."""
    path = tmp_path / "coalition.sqlite3"
    key = coalition_in_a_file(path, monkeypatch)
    assert not path.with_name(path.name + "-wal").exists()
    return path, key


def written_over(path, name: str) -> None:
    """Write over the first page of the table or index ``name`` (the whole of it, in a
    coalition this small) with bytes that are no page of SQLite's."""
    with sqlite3.connect(path) as connection:
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        page = connection.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (name,)).fetchone()[0]
    connection.close()
    with open(path, "r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\xa5" * size)


def test_a_request_reading_a_damaged_page_is_503_saying_so_and_others_are_served(coalition_file):
    path, key = coalition_file
    written_over(path, "ix_lots_member")  # read by a member's balance and written by an earn
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    operator = Caller(app.test_client(), key)
    for response in (operator.get("/api/v1/members/card-1/balance"),
                     earn(operator, "e-2", "card-1", "50.00", occurred_at=days_ago(1))):
        assert response.status_code == 503, response.get_json()
        assert response.get_json()["reason"] == "database_unavailable"
        assert response.get_json()["message"].startswith(
            "the service's database is damaged and this request read a damaged part of it; its operator"
            " restores it from a backup; try again once it is restored (asked sooner, the request reads the"
            " same damage): ")
    assert expect(operator.get("/api/v1/partners/aroma"), 200)["currency"] == "RUB"
    assert expect(app.test_client().get("/readyz"), 200)["status"] == "ready"
    database_of(app).dispose()


@pytest.mark.parametrize("name", [
    "ix_lots_member",  # read by none of the ledger's checks: it said "the ledger adds up"
    "lots",  # read by them: it ended in a traceback
])
def test_db_check_finds_a_damaged_page_and_says_so_in_one_line(coalition_file, name):
    path, _ = coalition_file
    written_over(path, name)
    result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.stderr) == (
        1, f"Error: the database file {path} is damaged (database disk image is malformed): {RESTORE}\n")
    assert "adds up" not in result.stdout


def test_db_check_lists_what_sqlites_check_finds_out_of_step_in_sound_pages(coalition_file):
    """A lot's member written over in its row (a bit flipped, say), where the index of lots by
    member still holds the member written: every page is sound, and only SQLite's check of
    the index against its table finds it."""
    path, _ = coalition_file
    data = path.read_bytes()
    with sqlite3.connect(path) as connection:
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        page = connection.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'lots'").fetchone()[0]
    connection.close()
    at = data.index(b"card-1", (page - 1) * size, page * size)
    path.write_bytes(data[:at] + b"card-9" + data[at + 6:])
    result = CliRunner().invoke(main, ["db", "check"])
    assert result.exit_code == 1
    assert "row 1 missing from index ix_lots_member" in result.stdout.splitlines()
    assert result.stderr == (
        f"Error: the database file {path} is damaged (SQLite's integrity check, above): {RESTORE}\n")


def test_a_command_reading_a_damaged_page_is_one_line_naming_the_file(coalition_file):
    path, _ = coalition_file
    written_over(path, "ix_lots_live_expiry")  # the lots past their date, which `expire` reads
    result = CliRunner().invoke(main, ["expire"])
    assert (result.exit_code, result.stderr) == (
        1, f"Error: the database file {path} is damaged (database disk image is malformed): {RESTORE}\n")



def test_a_batch_item_reading_a_damaged_page_is_its_own_503_and_the_others_are_posted(coalition_file):
    """A burn reads and writes the index of members' burns, an earn neither: posted alone, the
    burn is 503 and the earn 201, and so in one batch, where the batch stopped at the burn."""
    path, key = coalition_file
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    operator = Caller(app.test_client(), key)
    add_rate(operator, "redemption", "0.01")
    database_of(app).dispose()
    written_over(path, "ix_transactions_member_burns")
    items = [{"type": "burn", "partner_id": "aroma", "member_id": "card-1", "points": 5, "external_id": "b-1",
              "occurred_at": days_ago(0.5)},
             {"type": "earn", "partner_id": "aroma", "member_id": "card-1", "amount": "50.00", "currency": "RUB",
              "external_id": "e-2", "occurred_at": days_ago(0.5)}]
    results = expect(operator.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [503, 201]
    assert results[0]["error"]["message"].startswith("the service's database is damaged")
    assert results[1]["transaction"]["points"] == 5
    database_of(app).dispose()
