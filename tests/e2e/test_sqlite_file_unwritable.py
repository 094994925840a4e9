"""A SQLite file that cannot be written (made read-only, a full disk, an I/O error) is the
operator's to see to, as a PostgreSQL server gone read-only is: the API answers 503 and a
command stops with one line. Both were a traceback: the API's 500s, and an import's four
tracebacks a row, each row then failed as the database's fault.

The file is opened read-only through SQLite's own URI (``mode=ro``), which refuses every
write as a file the process may not write does (SQLITE_READONLY), whoever runs the tests;
where a file or a directory the process may not write is itself the case, root (CI) is kept
from writing it by the immutable attribute.
A full disk is a limit on the size of the files the process writes (``RLIMIT_FSIZE``).
"""

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from coalition import create_app, database_of
from coalition.cli import main
from coalition.db import checks, kept_counts
from tests.conftest import POSTGRES_URL, Caller, days_ago
from tests.e2e.helpers import balance, coalition_in_a_file, earn, expect
from tests.e2e.settlement_world import coalition_kpis, month_closed_uncounted

pytestmark = pytest.mark.skipif(POSTGRES_URL is not None, reason="SQLite's: run with the SQLite suite")

UNWRITABLE = "the database file cannot be written (attempt to write a readonly database)"


@contextmanager
def unwritable(path):
    """``path``, a file or a directory, made one this process may not write: by its mode, and
    for a process that may write whatever the mode (root, as CI runs) by the immutable
    attribute (``chattr +i``), where its filesystem has one; else the test is skipped."""
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = os.access(path, os.W_OK)
    if immutable and subprocess.run(["chattr", "+i", path], capture_output=True).returncode != 0:
        path.chmod(mode)
        pytest.skip("this process may write whatever a file's mode, and the filesystem has no chattr +i")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", path], check=True)
        path.chmod(mode)


def test_a_directory_left_unwritable_by_a_worker_killed_outright_is_removed_with_the_run(tmp_path):
    """A test worker killed outright inside :func:`unwritable` (a crash, the out-of-memory
    killer) leaves its directory immutable, or of mode 0555: the run's clean-up removed the
    rest of its temporary files under /dev/shm, and left that, which ``rm -rf`` could not
    remove either. It clears what it finds so in its own directory, and removes it whole."""
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("the tests' files are kept on /dev/shm only where there is one")
    (tmp_path / "test_killed.py").write_text(
        "import os\nimport signal\n\nfrom tests.e2e.test_sqlite_file_unwritable import unwritable\n\n\n"
        "def test_killed_inside_unwritable(tmp_path):\n"
        "    with unwritable(tmp_path):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n")
    root = Path(__file__).parents[2]
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-n", "1",
         "--max-worker-restart", "0", "-q", "test_killed.py"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = run.communicate(timeout=120)
    assert "worker 'gw0' crashed while running 'test_killed.py::test_killed_inside_unwritable'" in output
    assert not Path(f"/dev/shm/coalition-pytest-{run.pid}").exists()


@pytest.fixture
def coalition_file(tmp_path, monkeypatch):
    """The coalition of :func:`coalition_in_a_file`: the file, an app that writes it, and
    the operator's key."""
    path = tmp_path / "coalition.sqlite3"
    key = coalition_in_a_file(path, monkeypatch)
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
    yield path, app, key
    database_of(app).dispose()


@pytest.fixture
def read_only_url(coalition_file, monkeypatch):
    """The URL that opens the coalition's file read-only, and the operator's key; the app
    that writes it has let go of the file."""
    path, app, key = coalition_file
    database_of(app).dispose()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    monkeypatch.setenv("COALITION_DATABASE_URL", url)
    return url, key


def test_the_api_answers_writes_503_and_reads_as_ever(read_only_url):
    url, key = read_only_url
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    operator = Caller(app.test_client(), key)
    earn = {"type": "earn", "partner_id": "aroma", "member_id": "card-1", "amount": "50.00", "currency": "RUB",
            "external_id": "e-2", "occurred_at": days_ago(1)}
    for response in (operator.post("/api/v1/transactions", json=earn),
                     operator.post("/api/v1/transactions/batch", json={"transactions": [earn]})):
        assert response.status_code == 503, response.get_json()
        assert response.get_json()["reason"] == "database_unavailable"
        assert response.get_json()["message"].startswith("the service's database takes no writes just now")
    assert balance(operator, "card-1")["available"] == 10
    database_of(app).dispose()


@pytest.mark.parametrize("opens", ["mode=ro", "immutable=1"])
def test_readyz_says_a_file_opened_read_only_takes_no_writes(coalition_file, opens):
    """/readyz said ``"writes": true`` of a file whose every write was 503; it says what
    SQLite will do, writing nothing to find out."""
    path, app, _ = coalition_file
    database_of(app).dispose()
    reader = create_app({"DATABASE_URL": f"sqlite:///file:{path}?{opens}&uri=true", "TESTING": True})
    assert expect(reader.test_client().get("/readyz"), 200) == {"status": "ready", "writes": False}
    database_of(reader).dispose()


def test_readyz_says_a_file_this_process_may_not_write_takes_no_writes(coalition_file):
    """A file of mode 0444, which SQLite opens read-only for a process that may not write it
    (so does a read-only mount, for every process)."""
    path, app, key = coalition_file
    database_of(app).dispose()
    with unwritable(path):
        reader = create_app({"DATABASE_URL": f"sqlite:///{path}", "TESTING": True})
        assert expect(reader.test_client().get("/readyz"), 200) == {"status": "ready", "writes": False}
        earn = {"type": "earn", "partner_id": "aroma", "member_id": "card-1", "amount": "50.00",
                "currency": "RUB", "external_id": "e-2", "occurred_at": days_ago(1)}
        expect(Caller(reader.test_client(), key).post("/api/v1/transactions", json=earn), 503)
        database_of(reader).dispose()


def test_writes_are_served_again_as_soon_as_the_file_may_be_written_again(coalition_file):
    """SQLite opens a file it may not write read-only, and the connection stayed so: once the
    file's mode was put right, /readyz said ``"writes": true`` and every write was 503 until
    the pool recycled its connections, an hour on. The next write opens the file anew."""
    path, app, key = coalition_file
    operator = Caller(app.test_client(), key)
    database_of(app).dispose()  # the file opened anew from here on, as by a worker booted again
    earn = {"type": "earn", "partner_id": "aroma", "member_id": "card-1", "amount": "50.00", "currency": "RUB",
            "occurred_at": days_ago(1)}
    with unwritable(path):
        expect(operator.post("/api/v1/transactions", json={**earn, "external_id": "e-2"}), 503)
    assert expect(operator.get("/readyz"), 200) == {"status": "ready", "writes": True}
    expect(operator.post("/api/v1/transactions", json={**earn, "external_id": "e-3"}), 201)
    assert balance(operator, "card-1")["available"] == 15


def test_kpis_of_a_closed_month_not_kept_yet_are_answered_from_a_read_only_file(coalition_file, read_only_url):
    """The first KPI request for a closed period keeps its counts: a write inside a read, which
    the file refused, and the whole answer was 503 although every figure was counted. It is
    answered, keeping nothing; the first request on a writable file keeps them."""
    _, app, key = coalition_file
    operator = Caller(app.test_client(), key)
    month = month_closed_uncounted(operator)
    database_of(app).dispose()  # the writer lets go of the file, as before read_only_url
    url, _ = read_only_url
    reader = create_app({"DATABASE_URL": url, "TESTING": True})
    figures = coalition_kpis(Caller(reader.test_client(), key), month)
    assert (figures["active_members"], figures["purchases"], figures["points_issued"]) == (1, 1, 20)
    assert database_of(reader).run_reading(kept_counts.committed_of_closed, month) is None
    database_of(reader).dispose()
    assert coalition_kpis(operator, month) == figures
    assert database_of(app).run_reading(kept_counts.committed_of_closed, month) is not None


@contextmanager
def no_file_grows():
    """No file this process writes grows meanwhile (``RLIMIT_FSIZE`` 0), as on a full disk:
    SQLite's write past a file's end is refused (SQLITE_IOERR_WRITE; ENOSPC is SQLITE_FULL)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_kpis_of_a_closed_month_not_kept_yet_are_answered_when_the_file_cannot_grow(coalition_file):
    """SQLite writes a transaction's pages at its commit: on a full disk the first KPI request
    for a closed period kept its counts until its commit, which failed, and the answer with
    it (503, every figure counted). It is answered; the next request with room keeps them."""
    path, app, key = coalition_file
    operator = Caller(app.test_client(), key)
    month = month_closed_uncounted(operator)
    database_of(app).dispose()  # the file's -wal is checkpointed and gone
    expect(operator.get("/api/v1/periods"), 200)  # and made anew, empty, with its -shm
    assert path.with_name(path.name + "-wal").stat().st_size == 0
    with no_file_grows():
        figures = coalition_kpis(operator, month)
    assert (figures["active_members"], figures["purchases"], figures["points_issued"]) == (1, 1, 20)
    assert database_of(app).run_reading(kept_counts.committed_of_closed, month) is None
    assert coalition_kpis(operator, month) == figures
    assert database_of(app).run_reading(kept_counts.committed_of_closed, month) is not None


def test_a_command_that_writes_stops_with_one_line(read_only_url):
    result = CliRunner().invoke(main, ["keys", "create", "--role", "finance"])
    assert (result.exit_code, result.stderr) == (1, f"Error: {UNWRITABLE}; run the command again once it is back\n")
    assert "created 0" not in result.stdout and "coal_" not in result.stdout


def test_an_import_stops_at_its_first_slice_with_one_line_not_a_traceback_a_row(read_only_url, tmp_path):
    rows = [f"b-{number},bonus,coalition,m-{number},{days_ago(1)},10,welcome" for number in range(300)]
    csv = tmp_path / "bonuses.csv"
    csv.write_text("external_id,type,partner_id,member_id,occurred_at,points,reason\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["import", str(csv), "--jobs", "1"])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and "line 2:" not in result.stderr
    assert f"the import stopped: {UNWRITABLE}." in result.stderr
    assert result.stdout.splitlines()[-1] == "0 created, 0 replayed, 0 failed"


@pytest.fixture
def backup(tmp_path, monkeypatch):
    """A coalition's file in WAL mode, as the service leaves it, alone in a directory of
    backups, named by ``COALITION_DATABASE_URL``."""
    kept = tmp_path / "backups"
    kept.mkdir()
    path = kept / "coalition.sqlite3"
    coalition_in_a_file(path, monkeypatch)
    return path


#: A backup named by its path, and by a file: URI (which, until 2026-12-07, SQLite was left
#: to open as ever there, and could not)
NAMED = ["sqlite:///{}", "sqlite:///file:{}?mode=ro&uri=true"]


@pytest.mark.parametrize("named", NAMED)
def test_db_check_reads_a_backup_kept_in_a_directory_it_may_not_write(backup, named, monkeypatch):
    """An operator checks a backup before restoring it (operations.md, "Data to keep"): one
    kept read-only was "attempt to write a readonly database", SQLite needing to make its
    -shm beside a file in WAL mode even to read it. It is read as on read-only media, and
    nothing is made beside it."""
    monkeypatch.setenv("COALITION_DATABASE_URL", named.format(backup))
    with unwritable(backup.parent):
        result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.output) == (
        0, "the ledger adds up: lots, allocations, movements, period totals, closes, rates and statements\n")
    assert [each.name for each in backup.parent.iterdir()] == ["coalition.sqlite3"]


@pytest.mark.parametrize("args", [("keys", "list"), ("expire",)], ids=" ".join)
def test_only_db_check_reads_a_file_kept_read_only_as_on_read_only_media(backup, monkeypatch, args):
    """Read as on read-only media, SQLite takes no locks and assumes nothing writes the file:
    right for a backup before it is restored, not for the coalition's own file, which the
    service may be writing. Any other command opens it as SQLite does, which cannot there,
    and says so in one line (_why's words for SQLITE_CANTOPEN), rather than list the keys of a
    file read without locks, or say it expired no lot in a file it could not have written."""
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{backup}")
    with unwritable(backup.parent):
        result = CliRunner().invoke(main, list(args))
    assert (result.exit_code, result.output) == (
        1, f"Error: cannot open the database {backup}: unable to open database file (SQLite needs its"
           " directory to exist and to be writable)\n")
    assert [each.name for each in backup.parent.iterdir()] == ["coalition.sqlite3"]


def test_db_check_of_a_file_it_may_write_reads_it_as_of_one_instant_beside_a_service_writing_it(
        coalition_file, monkeypatch):
    """``db check`` reads the ledger as of one instant, beside a running service (its
    docstring): a file in a directory it may write is opened as SQLite opens one, with its
    locks, and a posting the service makes meanwhile is left out of what it reads, not said
    to have been written while it was checked, as of a backup read without locks."""
    path, app, key = coalition_file
    database_of(app).dispose()  # the -wal folded into the file: none beside it as the check opens it
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    operator = Caller(app.test_client(), key)
    damage = checks.damage

    def posted_meanwhile(connection):
        expect(earn(operator, "e-meanwhile", "card-2", "100.00", occurred_at=days_ago(0.5)))
        return damage(connection)

    monkeypatch.setattr(checks, "damage", posted_meanwhile)
    result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.output) == (
        0, "the ledger adds up: lots, allocations, movements, period totals, closes, rates and statements\n")
    assert balance(operator, "card-2")["available"] == 10  # posted: 100.00 RUB at aroma's 0.1 a RUB


@pytest.mark.parametrize("named", NAMED)
def test_db_check_does_not_read_a_backup_kept_read_only_without_its_wal(backup, named, monkeypatch):
    """Read as on read-only media, SQLite leaves a -wal unread, and with it the postings it
    holds: a check of the file alone could say a backup adds up that is not what it holds."""
    monkeypatch.setenv("COALITION_DATABASE_URL", named.format(backup))
    backup.with_name("coalition.sqlite3-wal").touch()
    with unwritable(backup.parent):
        result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.stderr.rpartition(": ")[2]) == (
        1, "unable to open database file (SQLite needs its directory to exist and to be writable)\n")


def test_db_check_does_not_read_a_backup_named_by_a_percent_encoded_uri_without_its_wal(
        backup, tmp_path, monkeypatch):
    """A file: URI's path is percent-encoded as SQLite reads it, and written into the URL so
    (its "%" encoded again, a space as %2520): SQLAlchemy decodes the URL, SQLite the URI's
    path. The -wal beside the file SQLite opens is looked for beside that file, the one
    decoded twice, and the file is not read without it, as when it is named by its path."""
    kept = tmp_path / "kept backups"
    kept.mkdir()
    copy = Path(shutil.copy(backup, kept / backup.name))
    copy.with_name(f"{copy.name}-wal").touch()
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///file:{quote(quote(str(copy)))}?mode=ro&uri=true")
    with unwritable(kept):
        result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.stderr.rpartition(": ")[2]) == (
        1, "unable to open database file (SQLite needs its directory to exist and to be writable)\n")


def test_db_check_does_not_read_a_backup_kept_read_only_with_a_transaction_left_in_its_journal(
        backup, tmp_path, monkeypatch):
    """A file in rollback mode copied, with its -journal, while a transaction was writing it
    (as `sqlite3 .backup` leaves one it was stopped in): SQLite rolls the transaction back
    before it reads. Read as on read-only media, it read the pages never committed, and
    said a sound backup was damaged and to restore one; it is not read, as before."""
    writer = sqlite3.connect(backup, isolation_level=None)
    writer.execute("PRAGMA journal_mode = DELETE")
    writer.execute("PRAGMA cache_size = 1")  # so its pages are written to the file before a commit
    writer.execute("BEGIN")
    writer.execute("CREATE TABLE scratch (x)")
    writer.executemany("INSERT INTO scratch VALUES (?)", [("x" * 500,)] * 3000)
    copied = tmp_path / "copied"
    copied.mkdir()
    for each in (backup, backup.with_name(f"{backup.name}-journal")):
        shutil.copy(each, copied / each.name)
    writer.execute("ROLLBACK")
    writer.close()
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{copied / backup.name}")
    with unwritable(copied):
        result = CliRunner().invoke(main, ["db", "check"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot open the database {copied / backup.name}: ")


def test_db_check_says_a_backup_kept_read_only_was_written_while_it_was_checked(
        coalition_file, tmp_path, monkeypatch):
    """Read as on read-only media, SQLite takes no locks and reads the file as if nothing wrote
    it: the next night's backup, copied over it in place (as cp writes) while the check ran,
    was read half the one and half the other, and a sound backup said to be damaged, to be
    restored from a backup. What the check found is not said, but that the file was written."""
    path, app, key = coalition_file
    database_of(app).dispose()  # the -wal folded into the file, as a backup is taken
    kept = tmp_path / "backups"
    kept.mkdir()
    backup = shutil.copy(path, kept / path.name)
    operator = Caller(app.test_client(), key)
    for number in range(20):
        expect(earn(operator, f"n-{number}", f"card-{number}", "100.00", occurred_at=days_ago(0.5)))
    database_of(app).dispose()
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{backup}")
    damage = checks.damage

    def copied_over_meanwhile(connection):
        shutil.copyfile(path, backup)
        return damage(connection)

    monkeypatch.setattr(checks, "damage", copied_over_meanwhile)
    with unwritable(kept):
        result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.output) == (
        1, f"Error: {backup} was written while it was checked, which reads it without locks: what the check"
           " found may be neither what it held before nor after; stop what writes it, or check a copy\n")


@contextmanager
def written_by_its_owner(directory):
    """``directory``, made :func:`unwritable`, open to writes for a while, as it is to its owner
    (the service's user, where ``db check`` runs as another)."""
    immutable = "i" in subprocess.run(["lsattr", "-d", directory], capture_output=True, text=True).stdout.split()[0]
    if immutable:
        subprocess.run(["chattr", "-i", directory], check=True)
    directory.chmod(0o755)
    try:
        yield
    finally:
        directory.chmod(0o555)
        if immutable:
            subprocess.run(["chattr", "+i", directory], check=True)


@pytest.mark.parametrize("left", ["wal", "journal"])
def test_db_check_says_a_backup_kept_read_only_was_written_where_a_writer_left_a_file_beside_it(
        backup, monkeypatch, left):
    """A writer that opened the backup while the check ran leaves its -wal (WAL mode) or its
    -journal (a transaction in rollback mode) beside the file, and may not have touched the
    file itself yet: what it wrote there, SQLite read as on read-only media leaves unread, or
    reads half-done. What the check found is not said, but that the file was written."""
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{backup}")
    damage = checks.damage

    def opened_meanwhile(connection):
        with written_by_its_owner(backup.parent):
            backup.with_name(f"{backup.name}-{left}").touch()
        return damage(connection)

    monkeypatch.setattr(checks, "damage", opened_meanwhile)
    with unwritable(backup.parent):
        result = CliRunner().invoke(main, ["db", "check"])
    assert (result.exit_code, result.output) == (
        1, f"Error: {backup} was written while it was checked, which reads it without locks: what the check"
           " found may be neither what it held before nor after; stop what writes it, or check a copy\n")
