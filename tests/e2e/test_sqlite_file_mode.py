"""A SQLite file the service creates is its owner's alone (decisions.md, "A SQLite file the
service creates is its owner's alone"): it holds every member's movements, and the umask
would have made it, its WAL and its shared memory readable by every user of the machine."""

import os
import stat

import pytest
from click.testing import CliRunner

from coalition import create_app, database_of
from coalition.cli import main
from tests.conftest import POSTGRES_URL, Caller
from tests.e2e.helpers import add_partner

pytestmark = pytest.mark.skipif(POSTGRES_URL is not None, reason="SQLite's: run with the SQLite suite")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def readable_by_all():
    """The umask most systems give a user's files: readable by everyone."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_new_database_its_wal_and_its_shared_memory_are_its_owners_alone(tmp_path, readable_by_all, monkeypatch):
    path = tmp_path / "coalition.sqlite3"
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    key = CliRunner().invoke(main, ["keys", "create", "--role", "operator"]).output.split()[-1]
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True, "SCHEDULER": False})
    try:
        add_partner(Caller(app.test_client(), key), "aroma")
        # the service's connections are open: the WAL holds the partner, not yet checkpointed
        modes = {name: _mode(tmp_path / name) for name in os.listdir(tmp_path)}
    finally:
        database_of(app).dispose()

    assert modes == {"coalition.sqlite3": 0o600, "coalition.sqlite3-wal": 0o600, "coalition.sqlite3-shm": 0o600}


def test_a_file_that_is_there_keeps_the_mode_its_operator_gave_it(tmp_path, readable_by_all, monkeypatch):
    # a group that backs the file up was given read: not taken away by the next start
    path = tmp_path / "coalition.sqlite3"
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    created = CliRunner().invoke(main, ["db", "upgrade"])
    assert created.exit_code == 0, created.output
    os.chmod(path, 0o640)

    again = CliRunner().invoke(main, ["db", "upgrade"])

    assert (again.exit_code, _mode(path)) == (0, 0o640)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_makes_no_file(tmp_path, monkeypatch, url):
    # the file made 0600 before SQLite opens it is for a path: ":memory:" is none
    monkeypatch.chdir(tmp_path)
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SCHEDULER": False})
    try:
        assert database_of(app).peek("SELECT 1") == 1
    finally:
        database_of(app).dispose()
    assert os.listdir(tmp_path) == []
