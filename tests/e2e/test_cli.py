"""The ``coalition`` command: keys, import, expire and close call the same use cases as the API."""

import errno
import os
import pty
import random
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import Executor, Future
from contextlib import ExitStack, contextmanager
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner
import psycopg
import sqlalchemy.exc
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from coalition import auth, config, demo
from coalition.cli import databases as cli_databases
from coalition.cli import imports as cli_imports
from coalition.cli import main, transaction_file
from coalition.db import SCHEMA_IS_NEWER, Database, SchemaNotCurrent, migrate, models
from coalition.domain.errors import Invalid
from coalition.services import batches, imports, settlement
from tests.conftest import connections_refused, days_ago, empty_database, held_for_writing, read_only
from tests.e2e.helpers import add_partner, add_rate, balance, bonus, expect, list_all
from tests.e2e.processes import children
from tests.e2e.settlement_world import at, previous_month, small_closed_month, small_month
from tests.threads import until_waiting_on_locks


@pytest.fixture(autouse=True)
def hangups_heard():
    """SIGHUP at its default, as a command started in a terminal has it: the suite itself may
    run under nohup (CI started in the background), whose ignored SIGHUP the commands keep,
    as they must, and a test of a hangup would find none heard. The tests of nohup ignore it
    themselves (:func:`_started_under_nohup`)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, before)


@pytest.fixture
def cli(database_url, monkeypatch):
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def aroma(operator):
    """Кофейня Арома earns 0.1 point per RUB; redemption 0.01 EUR per point."""
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    body = {"id": "aroma", "name": "Кофейня Арома", "category": "cafe", "currency": "RUB"}
    assert operator.post("/api/v1/partners", json=body).status_code == 201
    for rate in ({"kind": "earn", "value": "0.1", "partner_id": "aroma"}, {"kind": "redemption", "value": "0.01"}):
        assert operator.post("/api/v1/rates", json={**rate, "effective_from": since}).status_code == 201


def test_keys_create_prints_a_working_key_as_its_last_line(cli, client):
    result = cli("keys", "create", "--role", "operator")
    key = result.output.strip().splitlines()[-1]
    assert result.exit_code == 0
    assert client.get("/api/v1/settings", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_keys_create_binds_a_partner_key_by_either_spelling_of_the_option(cli, aroma, client):
    for option in ("--partner", "--partner-id"):
        key = cli("keys", "create", "--role", "partner", option, "aroma").output.strip().splitlines()[-1]
        assert client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {key}"}).status_code == 200


@pytest.mark.parametrize(("args", "said"), [
    (["--name", "\udcff"], "Error: --name: must be valid Unicode (a lone surrogate is not)\n"),  # a byte not UTF-8
    (["--name", "x" * 201], "Error: --name: must be 1 to 200 characters\n"),
    (["--partner", "Aroma Cafe"], "Error: --partner: must be a slug: a-z, 0-9 and '-', 2 to 63 characters\n"),
    (["--name", "x" * 201, "--partner", "Aroma Cafe"],
     "Error: --partner: must be a slug: a-z, 0-9 and '-', 2 to 63 characters; --name: must be 1 to 200 characters\n"),
], ids=["not unicode", "too long", "not a slug", "two at once"])
def test_keys_create_checks_its_options_as_the_api_checks_a_key(database_url, database, monkeypatch, operator, args,
                                                               said):
    # the name went to the database unchecked: a traceback, or a name the API would refuse
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["keys", "create", "--role", "finance", *args])
    assert (result.exit_code, result.stderr, result.stdout) == (1, said, "")
    assert database.run(lambda session: session.scalar(text("SELECT count(*) FROM api_keys"))) == 1  # the operator's


def test_keys_create_without_a_role_is_a_usage_error_naming_the_roles(database_url, monkeypatch):
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["keys", "create", "--name", "till 7"])
    assert result.exit_code == 2
    assert "Error: Missing option '--role'. Choose from:\n\toperator,\n\tfinance,\n\tpartner\n" in result.stderr


def _listed(cli, *args) -> list[list[str]]:
    """``keys list``'s lines split on runs of two or more spaces (a name may hold one)."""
    result = cli("keys", "list", *args)
    assert result.exit_code == 0, result.output
    return [re.split(r"  +", line.rstrip()) for line in result.output.splitlines()]


def test_keys_list_shows_each_key_under_a_header_and_never_the_key(cli, aroma, operator):
    till = expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "aroma", "name": "till 7"}))
    lines = _listed(cli)
    assert lines[0] == ["ID", "ROLE", "PARTNER", "CREATED (UTC)", "REVOKED (UTC)", "NAME"]
    assert [line[1:3] + line[4:] for line in lines[1:]] == [
        ["operator", "-", "-", "-"],  # the operator's key: no partner, never revoked, no name
        ["partner", "aroma", "-", "till 7"],
    ]
    assert lines[-1][0] == till["id"]
    created = datetime.strptime(lines[-1][3], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(created - datetime.fromisoformat(till["created_at"])) < timedelta(seconds=1)
    assert till["key"] not in cli("keys", "list").output


def test_keys_list_writes_a_names_control_characters_as_escapes_one_line_a_key(cli, operator, database):
    # a newline split the key's line; an escape sequence reached the operator's terminal.
    # The API refuses such a name now; an earlier release stored it.
    made = expect(operator.post("/api/v1/keys", json={"role": "finance", "name": "till 7"}))
    with database.engine.begin() as connection:
        renamed = text("UPDATE api_keys SET name = :name WHERE id = :id")
        connection.execute(renamed, {"name": "till\n7 \x1b[31mred", "id": made["id"]})
    output = cli("keys", "list").output
    (line,) = [line for line in output.splitlines() if line.startswith(made["id"])]
    assert line.endswith("till\\n7 \\x1b[31mred") and "\x1b" not in output


def test_keys_revoke_refuses_the_key_from_then_on_and_list_shows_when(cli, aroma, operator, client):
    till = expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "aroma", "name": "till 7"}))
    assert client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {till['key']}"}).status_code == 200
    result = cli("keys", "revoke", till["id"])
    assert result.exit_code == 0 and result.output.startswith(f"revoked partner key {till['id']} (till 7) in ")
    assert client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {till['key']}"}).status_code == 401
    revoked = expect(operator.get(f"/api/v1/keys/{till['id']}"), 200)["revoked_at"]
    assert _listed(cli, "--status", "revoked")[1:] == [
        [till["id"], "partner", "aroma", _listed(cli)[-1][3], f"{datetime.fromisoformat(revoked):%Y-%m-%d %H:%M:%S}",
         "till 7"]]
    assert [line[0] for line in _listed(cli, "--status", "active")[1:]] == [_listed(cli)[1][0]]  # the operator's


def test_keys_revoke_takes_a_leaked_key_itself_and_says_when_one_was_revoked_already(cli, aroma, operator, client):
    # an operator holding a leaked key has no id for it: keys list never shows keys
    leaked = expect(operator.post("/api/v1/keys", json={"role": "partner", "partner_id": "aroma", "name": "till 7"}))
    result = cli("keys", "revoke", f" Bearer {leaked['key']} ")  # as pasted from a request's header
    assert result.exit_code == 0 and result.output.startswith(f"revoked partner key {leaked['id']} (till 7) in ")
    assert leaked["key"] not in result.output
    assert client.get("/api/v1/transactions", headers={"Authorization": f"Bearer {leaked['key']}"}).status_code == 401
    revoked = datetime.fromisoformat(expect(operator.get(f"/api/v1/keys/{leaked['id']}"), 200)["revoked_at"])

    again = cli("keys", "revoke", leaked["id"])
    assert again.output.endswith(f"was revoked already, at {revoked.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
    assert f"partner key {leaked['id']} (till 7) in " in again.output


def test_keys_revoke_of_a_key_without_a_name_says_so_and_when_it_was_revoked(cli, operator, database):
    made = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    result = cli("keys", "revoke", made["id"])
    revoked = datetime.fromisoformat(expect(operator.get(f"/api/v1/keys/{made['id']}"), 200)["revoked_at"])
    assert result.output == (
        f"revoked finance key {made['id']} (no name) in {cli_databases.shown(database)}"
        f" at {revoked.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
    )


def test_keys_list_filters_as_the_api_does(cli, aroma, operator):
    made = [expect(operator.post("/api/v1/keys", json=body))["id"] for body in (
        {"role": "partner", "partner_id": "aroma"}, {"role": "finance"}, {"role": "finance", "partner_id": "aroma"})]
    assert [line[0] for line in _listed(cli, "--partner", "aroma")[1:]] == [made[0], made[2]]
    assert [line[0] for line in _listed(cli, "--role", "finance", "--partner-id", "aroma")[1:]] == [made[2]]
    assert _listed(cli, "--partner", "nobody") == [["ID", "ROLE", "PARTNER", "CREATED (UTC)", "REVOKED (UTC)", "NAME"]]


@pytest.mark.parametrize(("args", "said"), [
    (("keys", "revoke", "key_000000000000"), "Error: no key 'key_000000000000'\n"),
    (("keys", "revoke", "coal_not-a-key-of-this-database"), "Error: no key matches the key given\n"),
    (("keys", "revoke", "oal_half-of-a-secret"), "Error: that is neither a key's id (key_…) nor a key (coal_…)\n"),
    (("keys", "revoke", "key_doesnotexist"), "Error: a key's id is key_ and 12 hex digits, as `keys list` shows\n"),
    (("keys", "list", "--partner", "Aroma Cafe"),
     "Error: --partner: must be a slug: a-z, 0-9 and '-', 2 to 63 characters\n"),
], ids=["unknown key", "unknown key itself", "neither", "not an id", "not a slug"])
def test_keys_list_and_revoke_say_what_is_wrong_in_one_line(database_url, monkeypatch, operator, args, said):
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, list(args))
    assert (result.exit_code, result.stderr, result.stdout) == (1, said, "")


@pytest.mark.parametrize(("value", "runs"), [
    ("on", True), ("ON", True), ("true", True), ("yes", True), ("1", True), ("", True),
    ("off", False), ("Off", False), ("false", False), ("no", False), ("0", False), (" off ", False),
])
def test_the_scheduler_switch_reads_on_and_off_as_people_write_them(monkeypatch, value, runs):
    monkeypatch.setenv("COALITION_SCHEDULER", value)
    assert config.scheduler() is runs


@pytest.mark.parametrize("value", ["disabled", "none", "of"])
def test_a_scheduler_switch_neither_on_nor_off_is_refused_before_serving(database_url, monkeypatch, value):
    # read as on, a scheduler meant to be off went on closing periods
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    monkeypatch.setenv("COALITION_SCHEDULER", value)
    monkeypatch.setattr("coalition.server.run", lambda *args: pytest.fail("it served"))
    result = CliRunner().invoke(main, ["serve"])
    assert (result.exit_code, result.stderr) == (
        1, f"Error: COALITION_SCHEDULER={value!r} is neither on nor off (on, true, yes, 1; off, false, no, 0)\n")


def test_a_scheduler_switch_misread_stops_only_what_would_run_the_jobs(cli, monkeypatch, operator):
    # it stopped keys list, close and expire, which never run them, and serve --no-scheduler
    monkeypatch.setenv("COALITION_SCHEDULER", "disabled")
    assert _listed(cli, "--role", "operator")[1][1] == "operator"
    served = []
    monkeypatch.setattr("coalition.server.run", lambda *args: served.append(args))
    monkeypatch.setattr("coalition.server.check_listening", lambda *args: None)  # 5000 may be taken
    assert cli("serve", "--no-scheduler").exit_code == 0
    assert [args[3] for args in served] == [False]  # host, port, workers, scheduler


def test_serve_on_a_database_that_takes_no_writes_nor_has_an_operator_key_serves_saying_so(
        database_url, operator, monkeypatch):
    """Where every operator key is revoked, serve makes one at its start: a database that
    takes no writes (a standby after a failover, a file made read-only) refused it, and
    serve exited ("run the command again once it is back"), serving none of the reads
    the database answers. It serves them, and says in one line why no key was made."""
    CliRunner().invoke(main, ["keys", "revoke", operator.headers["Authorization"].removeprefix("Bearer ")],
                       env={"COALITION_DATABASE_URL": database_url}, catch_exceptions=False)
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        read_only = url.update_query_dict({"options": "-c default_transaction_read_only=on"}).render_as_string(
            hide_password=False)
        refused = "the database takes no writes now (cannot execute SELECT FOR UPDATE in a read-only transaction)"
    else:
        read_only = f"sqlite:///file:{url.database}?mode=ro&uri=true"
        refused = "the database file cannot be written (attempt to write a readonly database)"
    monkeypatch.setenv("COALITION_DATABASE_URL", read_only)
    served = []
    monkeypatch.setattr("coalition.server.run", lambda *args: served.append(args))
    monkeypatch.setattr("coalition.server.check_listening", lambda *args: None)  # 5000 may be taken
    result = CliRunner().invoke(main, ["serve", "--no-scheduler"])
    assert (result.exit_code, result.stdout, len(served)) == (0, "", 1)
    assert result.stderr == (
        f"the coalition has no operator key that is not revoked, and none could be made: {refused}; reads are"
        " served; once it takes writes, `coalition keys create --role operator` makes one\n")


def test_import_posts_each_row_and_a_rerun_replays(cli, aroma, operator, tmp_path):
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "transactions.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points\n"
        f"i-1,earn,aroma,card-1,{when},350.00,RUB,\n"  # 350.00 × 0.1 = 35 points
        f"i-2,burn,aroma,card-1,{when},,,20\n"  # 35 − 20 = 15 left
        f"i-3,burn,aroma,card-1,{when},,,500\n",  # more than 15: refused
        encoding="utf-8",
    )
    first = cli("import", str(path))
    again = cli("import", str(path))
    assert "2 created, 0 replayed, 1 failed" in first.output
    assert "0 created, 2 replayed, 1 failed" in again.output
    assert (first.exit_code, again.exit_code) == (1, 1)
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 15
    # posted by a command, not through a key (an earn, its expiry job's kin, names none)
    imported = operator.get("/api/v1/transactions?partner_id=aroma").get_json()["items"]
    assert [(row["external_id"], row["key_id"]) for row in imported] == [("i-1", None), ("i-2", None)]


@pytest.mark.parametrize(("cpus", "jobs"), [(None, 1), (3, 3), (64, cli_imports.IMPORT_LANES_MAX)])
def test_import_counts_the_cpus_where_the_system_cannot_say_which_it_may_use(monkeypatch, cpus, jobs):
    # macOS has no sched_getaffinity: os.cpu_count() is what there is (None when unknown)
    monkeypatch.delattr("os.sched_getaffinity", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: cpus)

    class Server:  # a PostgreSQL database, as far as choosing lanes goes
        engine = SimpleNamespace(dialect=SimpleNamespace(name="postgresql"))

    assert cli_imports._import_jobs(Server(), None, cli_imports.IMPORT_LANES_FROM) == jobs


def test_import_counts_only_the_cpus_it_may_run_on(monkeypatch):
    """A container or ``taskset`` lets the import run on 3 of the machine's 64 CPUs: 3
    processes, not 8 sharing them (the affinity asked of this process, pid 0; another
    process's, pid 1's, is the whole machine's)."""
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {4, 5, 6} if pid == 0 else set(range(64)),
                        raising=False)

    class Server:  # a PostgreSQL database, as far as choosing lanes goes
        engine = SimpleNamespace(dialect=SimpleNamespace(name="postgresql"))

    assert cli_imports._import_jobs(Server(), None, cli_imports.IMPORT_LANES_FROM) == 3


def test_import_uses_a_process_per_cpu_from_a_file_size_and_one_on_sqlite(
    cli, aroma, database, tmp_path, monkeypatch
):
    """SQLite lets one writer in at a time: asked for more, it says so; PostgreSQL
    posts a large enough file in one process per CPU, a small one in one."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_LANES_FROM", 3)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    rows = "".join(f"c-{n},earn,aroma,card-{n},{when},100.00,RUB\n" for n in range(3))
    header = "external_id,type,partner_id,member_id,occurred_at,amount,currency\n"
    (tmp_path / "two.csv").write_text(header + rows.split("\n", 1)[1], encoding="utf-8")
    (tmp_path / "three.csv").write_text(header + rows, encoding="utf-8")
    small = cli("import", str(tmp_path / "two.csv"))
    large = cli("import", str(tmp_path / "three.csv"))
    assert small.output.splitlines()[0] == "Importing 2 rows"
    assert "1 created, 2 replayed, 0 failed" in large.output  # two.csv is its last two rows
    if database.engine.dialect.name == "sqlite":
        assert large.output.splitlines()[0] == "Importing 3 rows"
        assert "one process" not in large.output  # nothing to say when nothing was asked
        asked = cli("import", "--jobs", "2", str(tmp_path / "three.csv"))
        assert asked.stderr == "SQLite lets one writer in at a time: importing in one process\n"
        assert "Importing 3 rows" in asked.output and "processes" not in asked.output
    else:
        assert large.output.splitlines()[0] == "Importing 3 rows in 2 processes"
        asked = cli("import", "--jobs", "3", str(tmp_path / "three.csv"))  # more than the CPUs: as asked
        assert asked.output.splitlines()[0] == "Importing 3 rows in 3 processes"
        assert (asked.exit_code, asked.output.splitlines()[-1]) == (0, "0 created, 3 replayed, 0 failed")


def test_import_names_the_file_line_of_each_failure_across_slices(
    cli, aroma, operator, tmp_path, monkeypatch
):
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 2)
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "transactions.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points,reason\n"
        f"s-1,earn,aroma,card-2,{when},100.00,RUB,,\n"  # line 2: 10 points
        f'"s-2",bonus,aroma,card-2,{when},,,5,"welcome,\nsecond line"\n'  # lines 3-4: 15
        f"s-3,burn,aroma,card-2,{when},,,99,\n"  # line 5: more than 15, refused
        "\n"  # line 6: blank, skipped
        f"s-4,earn,aroma,card-2,{when},20.00,RUB,,\n"  # line 7: 2 points, 17 in all
        f'"s-5",burn,aroma,card-2,{when},,,-4,"a reason\non two lines"\n'  # lines 8-9: refused
        f"s-6,burn,aroma,card-2,{when},,,4,\n",  # line 10: 17 − 4 = 13 left
        encoding="utf-8",
    )
    result = cli("import", str(path))
    failed = sorted(line.split(":")[0] for line in result.output.splitlines() if line.startswith("line "))
    assert failed == ["line 5", "line 8"]
    assert "Importing 6 rows" in result.output
    assert "4 created, 0 replayed, 2 failed" in result.output
    assert operator.get("/api/v1/members/card-2/balance").get_json()["available"] == 13


def test_a_failed_row_says_the_field_at_fault_and_the_reason_as_the_api_does(cli, aroma, operator, tmp_path):
    """e-1 earns card-1 floor(100.00 × 0.1) = 10 points; a burn of 99 is more than that;
    a return dated before e-1 is refused on its occurred_at; RUB has 2 decimals."""
    path = tmp_path / "rows.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points,original_external_id\n"
        f"e-1,earn,aroma,card-1,{days_ago(2)},100.00,RUB,,\n"
        f"b-1,burn,aroma,card-1,{days_ago(2)},,,99,\n"
        f"r-1,earn_reversal,aroma,card-1,{days_ago(3)},,,5,e-1\n"
        f"e-2,earn,aroma,card-1,{days_ago(2)},1.001,RUB,,\n",
        encoding="utf-8",
    )
    result = cli("import", str(path))
    lines = {line.split(":")[0]: line for line in result.output.splitlines() if line.startswith("line ")}
    assert lines["line 3"].endswith("(insufficient_points)")
    assert lines["line 4"].startswith("line 4: occurred_at: ") and lines["line 4"].endswith("(before_original)")
    assert lines["line 5"].startswith("line 5: amount: ")
    assert result.output.splitlines()[-1] == "1 created, 0 replayed, 3 failed"


def test_a_refused_rows_line_is_said_on_stderr_and_the_counts_on_stdout(cli, aroma, operator, tmp_path):
    """README: each failure is a line on standard error; what the import posted is counted on
    standard output, which a script may read alone. Line 2's bonus of 4 posts, line 3's of -3
    is refused for its value."""
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + f"g-1,bonus,aroma,card-1,{_when()},,,4,gift\n"
                    f"g-2,bonus,aroma,card-1,{_when()},,,-3,gift\n", encoding="utf-8")
    result = cli("import", str(path))
    assert result.exit_code == 1
    assert result.stderr == "line 3: points: must be at least 1 and at most 1000000000000\n"
    assert result.stdout.splitlines() == ["Importing 2 rows", "1 created, 0 replayed, 1 failed"]


def _on_a_terminal(args: list[str], env: dict, cwd, stdout_tty: bool, stderr_tty: bool) -> tuple[int, str, str, str]:
    """``args`` run with its standard output, its standard error or both on a terminal (a
    pseudo-terminal), the others to pipes: its exit code, what the terminal showed (its
    line ends as written), and the pipes' stdout and stderr."""
    terminal, its_end = pty.openpty()
    process = subprocess.Popen(args, env=env, cwd=cwd, text=True, stdin=subprocess.DEVNULL,
                               stdout=its_end if stdout_tty else subprocess.PIPE,
                               stderr=its_end if stderr_tty else subprocess.PIPE)
    os.close(its_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the process closed the terminal's other end
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, shown.decode().replace("\r\n", "\n"), stdout or "", stderr or ""


@pytest.mark.parametrize(("stdout_tty", "stderr_tty"), [(True, True), (True, False), (False, True)],
                         ids=["both on a terminal", "stderr to a file", "stdout to a file"])
def test_on_a_terminal_a_refused_row_is_said_below_the_progress_bar_which_ends_full(
        aroma, database_url, tmp_path, stdout_tty, stderr_tty):
    """The bar is drawn on a terminal only, on a line it keeps rewriting: a refused row said
    on the same terminal starts on a line of its own, not after the bar; said to a file, or
    with no bar above it, it starts no blank line. The bar ends at 100%, both rows counted.
    Line 2's bonus of 4 posts, line 3's of -3 is refused for its value."""
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + f"p-1,bonus,aroma,card-1,{_when()},,,4,gift\n"
                    f"p-2,bonus,aroma,card-1,{_when()},,,-3,gift\n", encoding="utf-8")
    refused = "line 3: points: must be at least 1 and at most 1000000000000\n"
    code, shown, stdout, stderr = _on_a_terminal(
        [str(Path(sys.executable).parent / "coalition"), "import", str(path)],
        {**os.environ, "COALITION_DATABASE_URL": database_url}, tmp_path, stdout_tty, stderr_tty)
    assert code == 1, (shown, stderr)
    if stdout_tty and stderr_tty:
        assert f"%\n{refused}" in shown  # below the bar's "0%", which it does not run on from
        assert "100%" in shown.rsplit(refused, 1)[1]
    elif stdout_tty:
        assert stderr == refused
        assert "100%" in shown
    else:
        assert shown == refused
        assert stdout.splitlines()[-1] == "1 created, 0 replayed, 1 failed"


def test_import_reads_excels_csv_utf8_with_its_byte_order_mark(cli, aroma, operator, tmp_path):
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffexternal_id,type,partner_id,member_id,occurred_at,amount,currency\n"
        f"x-1,earn,aroma,карта-1,{when},100.00,RUB\n".encode()  # 100.00 × 0.1 = 10 points
    )
    result = cli("import", str(path))
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "1 created, 0 replayed, 0 failed")
    assert operator.get("/api/v1/members/карта-1/balance").get_json()["available"] == 10


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_import_of_a_file_that_is_not_utf8_is_refused_before_posting_anything(
    cli, aroma, operator, tmp_path, newline
):
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "latin1.csv"
    path.write_bytes(newline.join([
        "external_id,type,partner_id,member_id,occurred_at,amount,currency",
        f"l-1,earn,aroma,card-1,{when},100.00,RUB",
        f"l-2,earn,aroma,José,{when},100.00,RUB",
        "",
    ]).encode("latin-1"))
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert f"Error: {path} is not UTF-8 text (invalid continuation byte, line 3)" in result.output
    assert result.output.endswith(": save it as CSV UTF-8; nothing was posted\n")  # as README says of a refused file
    assert "Traceback" not in result.output
    assert list_all(operator, partner_id="aroma") == []


def test_import_reports_odd_cells_as_failed_rows_and_posts_the_rest(cli, aroma, operator, tmp_path):
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "odd.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points,reason\n"
        f"o-1,bonus,aroma,card-1,{when},,,²,gift\n"  # line 2: a superscript two is no number
        f"o-2,earn,aroma,card-1,{when},100.00,RUB,,,surplus\n"  # line 3: a cell past the header
        f"o-3,bonus,aroma,card-1,{when},,,٣,gift\n"  # line 4: an Arabic-Indic three, refused as in JSON
        f"o-4,bonus,aroma,card-1,{when},,,３,gift\n"  # line 5: a fullwidth three, likewise
        f"o-5,bonus,aroma,card-1,{when},,,3,gift\n"  # line 6: 3 points
        f"o-6,earn,aroma,card-1,{when},100.00,RUB\n"  # line 7: cut short of points and reason
        f"o-7,bonus,aroma,card-1,{when},,,-3,gift\n"  # line 8: a number, refused for its value
        f"o-8,bonus,aroma,card-1,{when},,,2,gift,,\n",  # line 9: empty cells past the header hold nothing
        encoding="utf-8",
    )
    result = cli("import", str(path))
    lines = {line.split(":")[0]: line for line in result.output.splitlines() if line.startswith("line ")}
    assert sorted(lines) == ["line 2", "line 3", "line 4", "line 5", "line 7", "line 8"]
    assert lines["line 3"] == "line 3: (cells past the header): the header names no column for them"
    assert lines["line 4"] == lines["line 5"].replace("5:", "4:") == (
        "line 4: points: must be a whole number: write it in the digits 0-9, with no fraction, exponent or quotes")
    assert lines["line 7"] == ("line 7: points: the row ends before this column;"
                               " reason: the row ends before this column")
    assert lines["line 8"] == "line 8: points: must be at least 1 and at most 1000000000000"
    assert "" not in result.output.splitlines()  # no blank line before each failure
    assert result.output.splitlines()[-1] == "2 created, 0 replayed, 6 failed"
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 5  # 3 + 2


def test_an_import_from_a_line_past_the_files_last_row_says_there_is_none(cli, aroma, operator, tmp_path):
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "short.csv"
    path.write_text(f"external_id,type,partner_id,member_id,occurred_at,points,reason\nb-1,bonus,aroma,card-1,{when},4,gift\n")
    result = cli("import", str(path), "--from-line", "99")
    assert result.exit_code == 0
    assert result.stderr == f"no row of {path} starts on line 99 or after\n"
    assert result.stdout.splitlines()[-1] == "0 created, 0 replayed, 0 failed"
    assert list_all(operator, partner_id="aroma") == []


def test_an_import_from_line_2_of_a_header_without_rows_says_no_row_starts_there(cli, tmp_path):
    # line 2 is the first a row can start on: the first --from-line that names one
    path = tmp_path / "header.csv"
    path.write_text("external_id,type,partner_id,member_id,occurred_at,points\n", encoding="utf-8")
    result = cli("import", str(path), "--from-line", "2")
    assert (result.exit_code, result.stderr) == (0, f"no row of {path} starts on line 2 or after\n")
    assert result.stdout.splitlines()[-1] == "0 created, 0 replayed, 0 failed"


def test_an_import_from_the_line_a_row_starts_on_counts_and_posts_that_row(cli, aroma, operator, tmp_path):
    path = tmp_path / "two.csv"
    path.write_text(HEADER + "".join(f"f-{n},bonus,aroma,card-1,{_when()},,,4,gift\n" for n in (1, 2)),
                    encoding="utf-8")
    result = cli("import", str(path), "--from-line", "3")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == "Importing 1 row"
    assert result.stdout.splitlines()[-1] == "1 created, 0 replayed, 0 failed"
    whole = cli("import", str(path), "--from-line", "1")
    assert (whole.exit_code, whole.stdout.splitlines()[-1]) == (0, "1 created, 1 replayed, 0 failed")


def test_a_row_may_leave_out_the_cells_of_unnamed_columns_but_not_fill_them(cli, aroma, operator, tmp_path):
    # Excel's trailing ",," names no column: a row without those cells lacks nothing
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "excel.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,points,reason,,\n"
        f"x-1,bonus,aroma,card-1,{when},4,gift\n"
        f"x-2,bonus,aroma,card-1,{when},5,gift,surprise,\n",  # line 3: a cell under no name
        encoding="utf-8",
    )
    result = cli("import", str(path))
    (failure,) = [line for line in result.output.splitlines() if line.startswith("line ")]
    assert failure == "line 3: (cells under a column with no name): the header names no column for them"
    assert result.output.splitlines()[-1] == "1 created, 0 replayed, 1 failed"
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 4


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff", ",,\n"],
                         ids=["empty", "blank lines", "a BOM alone", "no column named"])
def test_import_of_a_file_without_a_header_row_is_refused(cli, tmp_path, content):
    # an export that wrote nothing has lost what it meant to hold
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert f"Error: {path}: it has no header row; nothing was posted" in result.output


def test_import_of_a_header_without_rows_posts_nothing(cli, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("external_id,type,partner_id,member_id,occurred_at,points\n", encoding="utf-8")
    result = cli("import", str(path))
    assert "Importing 0 rows" in result.output
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "0 created, 0 replayed, 0 failed")
    assert result.stderr == ""  # not "no row starts on line 1 or after": no line was named


def test_close_command_closes_the_period_and_issues_statements(cli, operator):
    period_id = small_month(operator)
    result = cli("close", period_id)
    assert result.exit_code == 0
    assert f"closed {period_id}" in result.output
    assert operator.get(f"/api/v1/settlements/{period_id}").get_json()["status"] == "final"
    issued = operator.get("/api/v1/statements", query_string={"period_id": period_id}).get_json()["items"]
    assert len(issued) > 1 and f"{len(issued)} statements, gross" in result.output


@pytest.mark.parametrize("months_before", [1, 2])
def test_close_says_the_earlier_open_periods_it_closed_first(cli, operator, months_before):
    start, _, period_id = previous_month()
    earlier = []
    for _ in range(months_before):
        start, _, before = previous_month(start)
        earlier.insert(0, before)
    expect(bonus(operator, "b-1", "m-1", 10, occurred_at=at(start, 25)), 201)  # the earliest of them, under 90 days ago
    lines = cli("close", period_id).output.splitlines()
    said = (f"closed {earlier[0]} first: the open period before {period_id}" if months_before == 1 else
            f"closed {earlier[0]} to {earlier[-1]} first: the {months_before} open periods before {period_id}")
    assert lines[1:3] == [said, f"closed {period_id}: 1 statement, gross 0.00 EUR, multilateral net 0.00 EUR,"
                                f" payments saved 0"]
    listed = expect(operator.get("/api/v1/periods"), 200)
    assert [item["id"] for item in listed if item["status"] == "closed"] == [*earlier, period_id]
    # closing it again closes nothing, and says so
    assert cli("close", period_id).output.splitlines()[1:] == [
        f"{period_id} was already closed: 1 statement, gross 0.00 EUR, multilateral net 0.00 EUR, payments saved 0"]


def _interrupt():
    """Ctrl-C, as Python's own SIGINT handler answers it (pytest-xdist's workers ignore
    the signal itself)."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("interrupt", [_interrupt, lambda: os.kill(os.getpid(), signal.SIGTERM),
                                       lambda: os.kill(os.getpid(), signal.SIGHUP)],
                         ids=["ctrl-c", "sigterm", "hangup"])
def test_a_close_interrupted_says_nothing_was_closed_and_closes_all_when_run_again(
    cli, operator, monkeypatch, interrupt
):
    """The interruption comes as the second of two open periods is closed: the close of
    both is one transaction, so neither is closed, and the command says so instead of
    ending in silence (SIGTERM, a hangup) or with click's bare "Aborted!" (Ctrl-C)."""
    start, _, period_id = previous_month()
    _, _, before = previous_month(start)
    expect(bonus(operator, "b-1", "m-1", 10, occurred_at=at(previous_month(start)[0], 25)), 201)
    close_one, closes = settlement._close_one, []

    def signalled_at_the_second(*args):
        closes.append(args)
        if len(closes) == 2:
            interrupt()
        return close_one(*args)

    monkeypatch.setattr(settlement, "_close_one", signalled_at_the_second)
    stopped = cli("close", period_id)
    assert stopped.exit_code == 1
    assert stopped.output.splitlines()[-1] == (
        "Error: interrupted: nothing was closed (a close and the earlier periods it closes are one"
        " transaction); run it again")
    assert [item["id"] for item in expect(operator.get("/api/v1/periods"), 200) if item["status"] == "closed"] == []
    monkeypatch.setattr(settlement, "_close_one", close_one)
    assert cli("close", period_id).exit_code == 0
    listed = expect(operator.get("/api/v1/periods"), 200)
    assert [item["id"] for item in listed if item["status"] == "closed"] == [before, period_id]


@contextmanager
def _started_under_nohup():
    """SIGHUP ignored, as ``nohup`` starts a command so that it outlives its terminal."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_close_started_under_nohup_goes_on_through_a_hangup(cli, operator, monkeypatch):
    """The operator closed two months under nohup from an SSH session that then dropped:
    the close was interrupted by the hangup nohup was there to keep from it, and rolled
    back."""
    start, _, period_id = previous_month()
    _, _, before = previous_month(start)
    expect(bonus(operator, "b-1", "m-1", 10, occurred_at=at(previous_month(start)[0], 25)), 201)
    close_one = settlement._close_one

    def hung_up(*args):
        os.kill(os.getpid(), signal.SIGHUP)
        return close_one(*args)

    monkeypatch.setattr(settlement, "_close_one", hung_up)
    with _started_under_nohup():
        closed = cli("close", period_id)
    assert closed.exit_code == 0, closed.output
    listed = expect(operator.get("/api/v1/periods"), 200)
    assert [item["id"] for item in listed if item["status"] == "closed"] == [before, period_id]


def test_close_of_one_partners_period_says_one_statement(cli, operator):
    *_, period_id = previous_month()
    result = cli("close", period_id)
    # nothing posted: only the operator's own account, with one statement
    assert result.exit_code == 0, result.output
    assert f"closed {period_id}: 1 statement, gross 0.00 EUR" in result.output



def test_demo_loads_closed_periods_whose_statements_download_at_once(cli, operator):
    result = cli("demo")
    assert result.exit_code == 0, result.output
    closed = re.findall(r"^Closed (\S+)\.$", result.output, re.MULTILINE)
    assert closed
    listed = expect(operator.get("/api/v1/statements", query_string={"period_id": closed[-1]}), 200)["items"]
    assert {item["partner_id"] for item in listed} >= {"aroma", "freshmart", "grandhotel"}
    pdf = operator.get(f"/api/v1/statements/{listed[0]['id']}/pdf")
    assert (pdf.status_code, pdf.data[:5]) == (200, b"%PDF-")


def test_demo_run_again_says_it_is_loaded_and_posts_nothing(cli, operator):
    assert cli("demo").exit_code == 0
    posted = len(list_all(operator))
    again = cli("demo")
    assert again.exit_code == 0
    assert "The demo coalition is loaded already." in again.output
    assert "Posting days" not in again.output
    assert len(list_all(operator)) == posted


def test_demo_interrupted_while_posting_goes_on_when_run_again(cli, operator, monkeypatch):
    # it said "loaded already", with no period closed and no statement to download
    posted, try_post = [], demo._try_post

    def interrupted(*args):
        if len(posted) == 400:
            raise KeyboardInterrupt
        posted.append(try_post(*args))
        return posted[-1]

    monkeypatch.setattr(demo, "_try_post", interrupted)
    assert cli("demo").exit_code != 0
    before = {item["external_id"]: item for item in list_all(operator)}
    assert len(before) == sum(posted) and expect(operator.get("/api/v1/statements"), 200)["items"] == []
    monkeypatch.setattr(demo, "_try_post", try_post)

    result = cli("demo")

    assert result.exit_code == 0, result.output
    assert "Going on with a load of the demo that stopped before it closed its periods." in result.output
    after = {item["external_id"]: item for item in list_all(operator)}
    # what was posted before is there once, as it was; the rest posted from the same first day
    assert {key: after[key] for key in before} == before
    assert int(re.search(r"^Posted (\d+) transactions", result.output, re.MULTILINE)[1]) == len(after) - len(before)
    # every transaction a whole number of minutes after the first: one history, not two a moment apart
    first = min(datetime.fromisoformat(item["occurred_at"]) for item in after.values())
    assert {(datetime.fromisoformat(item["occurred_at"]) - first) % timedelta(minutes=1)
            for item in after.values()} == {timedelta(0)}
    closed = re.findall(r"^Closed (\S+)\.$", result.output, re.MULTILINE)
    assert closed and expect(operator.get("/api/v1/statements", query_string={"period_id": closed[-1]}), 200)["items"]


def test_demo_where_partners_made_by_hand_have_all_its_ids_is_refused_not_gone_on_with(cli, operator):
    # taken for a demo load that stopped, it posted 223 transactions into a USD coalition,
    # then failed to close for want of fx rates
    expect(operator.put("/api/v1/settings", json={"base_currency": "USD"}), 200)
    for partner_id, name, category, currency, *_ in demo.PARTNERS:
        add_partner(operator, partner_id, currency, category, name=name)
        add_rate(operator, "earn", demo.EARN[partner_id], partner_id=partner_id)
    result = cli("demo")
    assert result.exit_code == 1
    assert "Error: the demo coalition settles in EUR and this one in USD" in result.output
    assert list_all(operator) == []


def test_demo_on_a_coalition_settling_in_another_currency_is_refused_before_writing(cli, operator):
    # its fx rates are quoted in EUR: in USD its periods could not close, and the
    # transactions posted before finding out would have fixed the base currency
    expect(operator.put("/api/v1/settings", json={"base_currency": "USD"}), 200)
    result = cli("demo")
    assert result.exit_code == 1
    assert "Error: the demo coalition settles in EUR and this one in USD" in result.output
    assert [p["id"] for p in expect(operator.get("/api/v1/partners"), 200)] == ["coalition"]
    assert list_all(operator) == []
    expect(operator.put("/api/v1/settings", json={"base_currency": "EUR"}), 200)  # still free


def test_demo_on_a_coalition_with_a_closed_period_is_refused_before_writing(cli, operator):
    # its rates begin 75 days ago, inside the closed month: it used to fail half-way, on a rate
    period_id = small_closed_month(operator)
    partners_before = expect(operator.get("/api/v1/partners"), 200)
    result = cli("demo")
    assert result.exit_code == 1
    assert f"Error: period {period_id} is closed here" in result.output
    assert "load the demo into a new database" in result.output
    assert "Posting days" not in result.output
    assert expect(operator.get("/api/v1/partners"), 200) == partners_before


def test_demo_on_a_coalition_with_transactions_is_refused_before_writing(cli, operator):
    """Its redemption and fee rates begin 75 days ago: they would settle what is posted here
    (SPEC §7, the rates in force at each burn's date), where the coalition's own 0.01 and
    0.001 valued it, and the demo then closes the past periods for good."""
    small_month(operator)
    draft_before = expect(operator.get(f"/api/v1/settlements/{previous_month()[2]}"), 200)
    result = cli("demo")
    assert result.exit_code == 1
    assert "Error: transactions are posted here" in result.output
    assert "load the demo into a new database" in result.output
    assert expect(operator.get(f"/api/v1/settlements/{previous_month()[2]}"), 200) == draft_before
    assert "skyair" in {p["id"] for p in expect(operator.get("/api/v1/partners"), 200)}
    assert "freshmart" not in {p["id"] for p in expect(operator.get("/api/v1/partners"), 200)}


def test_demo_where_one_of_its_partner_ids_is_taken_is_refused_not_taken_for_loaded(cli, aroma, operator):
    # "aroma" alone used to be taken for the demo loaded: it printed keys and posted nothing
    result = cli("demo")
    assert result.exit_code == 1
    assert "Error: the demo's partner ids aroma are taken here" in result.output
    assert [p["id"] for p in expect(operator.get("/api/v1/partners"), 200)] == ["aroma", "coalition"]


def _next_month() -> str:
    """A period that has not ended, whatever the programme's timezone."""
    return (datetime.now(UTC).replace(day=1) + timedelta(days=32)).strftime("%Y-%m")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "create", "--role", "partner"), "Error: --partner: a partner key needs the partner it is bound to"),
        (("keys", "create", "--role", "partner", "--partner", "nobody"), "Error: --partner: unknown partner 'nobody'"),
        (("close", "garbage"), "Error: 'garbage' is not a monthly period id, such as 2026-10"),
        (("close", "next-month"), "Error: period {period} ends "),
    ],
    ids=["partner key without partner", "unknown partner", "malformed period", "period not ended"],
)
def test_a_user_error_is_one_line_on_stderr_without_a_traceback(cli, args, message):
    period = _next_month()
    result = cli(*[period if arg == "next-month" else arg for arg in args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message.format(period=period))
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("period_id", "said"),
    [
        ("2026-13", "'2026-13' is not a monthly period id, such as 2026-10"),
        # it would end on 10000-01-01, which no date holds
        ("9999-12", "period 9999-12 has no bounds in UTC"),
    ],
)
def test_close_command_refuses_an_invalid_period_id_with_a_message(cli, database_url, period_id, said):
    result = cli("close", period_id)
    assert result.exit_code == 1
    assert said in result.output
    assert "Closing" not in result.output  # it said it was closing, then that it could not


def _random_file(path, partner: str, rng: random.Random, start: datetime, rows: int = 400) -> None:
    """A file whose rows interact: few members; some rows repeated (replays), some keys used
    again with another body (conflicts, or the posting if the first was refused),
    reversals naming earlier rows, later rows or nothing; a few invalid rows."""
    kinds = ["earn", "burn", "earn_reversal", "burn_reversal"]
    written: list[str] = []
    for row in range(rows):
        if written and rng.random() < 0.08:
            written.append(rng.choice(written))
            continue
        kind = rng.choices(kinds, weights=[3, 3, 2, 2])[0]
        key = f"t-{rng.randrange(row)}" if row and rng.random() < 0.1 else f"t-{row}"
        when = (start + timedelta(minutes=row + rng.randrange(-30, 30))).isoformat()
        member = f"{partner}-card-{rng.randrange(3)}" if kind in ("earn", "burn") else ""
        amount = f"{rng.randrange(50, 900)}.00" if kind == "earn" else ""
        points = {"earn": "", "burn": rng.randrange(1, 60), "earn_reversal": rng.randrange(1, 30),
                  "burn_reversal": rng.choice(["", rng.randrange(1, 30)])}[kind]
        original = f"t-{rng.randrange(row + 20)}" if kind.endswith("reversal") else ""
        if rng.random() < 0.03:
            points = -5  # refused by validation
        named = "" if rng.random() < 0.02 else partner  # refused: an operator must name one
        written.append(f"{key},{kind},{named},{member},{when},{amount},{'RUB' if amount else ''},"
                       f"{points},{original}\n")
    header = "external_id,type,partner_id,member_id,occurred_at,amount,currency,points,original_external_id\n"
    path.write_text(header + "".join(written), encoding="utf-8")


def _ledger(operator, partner: str) -> tuple[list, list]:
    """A partner's transactions, by what a partner sees (external ids, never row ids),
    and its members' balances (as of any moment)."""
    posted = list_all(operator, partner_id=partner, limit=1000)
    key_of = {item["id"]: item["external_id"] for item in posted}
    lot_of = {item["lot_id"]: item["external_id"] for item in posted if item["lot_id"]}
    ledger = sorted(
        (item["external_id"], item["type"], item["member_id"], item["points"], item["shortfall_points"],
         key_of.get(item["original_id"]),
         [(lot_of[move["lot_id"]], move["points"]) for move in item["allocations"]])
        for item in posted
    )
    members = sorted({item["member_id"] for item in posted})
    balances = [{**balance(operator, member), "as_of": None} for member in members]
    return ledger, balances


def _partners_alike(operator, *partners) -> None:
    for partner in partners:
        add_partner(operator, partner, "RUB")
        add_rate(operator, "earn", "0.1", partner_id=partner)
    add_rate(operator, "redemption", "0.01")


def _anonymous(text, partner: str) -> str:
    return str(text).replace(partner, "PARTNER")


@pytest.mark.postgres
def test_import_in_lanes_ends_as_posting_one_row_after_another(cli, operator, tmp_path, monkeypatch):
    """One random file imported by one process for aroma, and in three lanes for brew
    (the same rates): every row has the same outcome, the ledgers are the same."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 16)  # many slices: reversals of earlier ones
    _partners_alike(operator, "aroma", "brew")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    outputs, ledgers = {}, {}
    for partner, jobs in (("aroma", "1"), ("brew", "3")):
        _random_file(tmp_path / f"{partner}.csv", partner, random.Random(1130), start)
        result = cli("import", "--jobs", jobs, str(tmp_path / f"{partner}.csv"))
        label, *lines = _anonymous(result.output, partner).splitlines()
        assert label == "Importing 400 rows" + ("" if jobs == "1" else " in 3 processes")
        outputs[partner] = lines
        ledgers[partner] = _anonymous(_ledger(operator, partner), partner)
    summary = outputs["aroma"][-1]
    created, replayed, failed = (int(part.split()[0]) for part in summary.split(", "))
    assert created > 100 and replayed > 5 and failed > 20, summary  # the file exercises all three
    assert outputs["brew"] == outputs["aroma"]
    assert ledgers["brew"] == ledgers["aroma"]


class _LanesInTurn(Executor):
    """Posts a slice's lanes one after another, in lane order or backwards, when
    the first result is asked for: a lane that should have waited for another
    then runs before it, every time, not only when processes race."""

    def __init__(self, backwards: bool, dies_at_slice: int | None = None):
        self.backwards, self.pending = backwards, []
        self.slices, self.dies_at_slice = 0, dies_at_slice

    def submit(self, fn, *args):
        future = _Deferred(self)
        self.pending.append((future, fn, args))
        return future

    def run_pending(self) -> None:
        if not self.pending:
            return
        self.slices += 1
        for lane, (future, fn, args) in enumerate(
            reversed(self.pending) if self.backwards else self.pending
        ):
            if self.slices == self.dies_at_slice and lane > 0:  # the first lane got its work done
                future.set_exception(BrokenProcessPool("a worker process died"))
            else:
                future.set_result(fn(*args))
        self.pending.clear()


class _Deferred(Future):
    def __init__(self, lanes: _LanesInTurn):
        super().__init__()
        self.lanes = lanes

    def result(self, timeout=None):
        self.lanes.run_pending()
        return super().result(timeout)


@pytest.mark.parametrize("backwards", [False, True], ids=["lane order", "backwards"])
def test_lanes_posted_in_turn_end_as_posting_one_row_after_another(
    database, operator, tmp_path, monkeypatch, backwards
):
    """Rows that must keep their order share a lane, whatever order the lanes run in
    (here one after another, so on SQLite too)."""
    monkeypatch.setattr(imports, "_database_at", lambda url: database)
    _partners_alike(operator, "aroma", "brew")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    reports, ledgers = {}, {}
    for partner, jobs, pool in (("aroma", 1, None), ("brew", 3, _LanesInTurn(backwards))):
        path = tmp_path / f"{partner}.csv"
        _random_file(path, partner, random.Random(1201), start)
        with open(path, newline="", encoding="utf-8") as source:
            numbered = transaction_file.rows(source, path)
            slices = iter(lambda: list(islice(numbered, 16)), [])
            posted = imports.post_file(database, jobs, slices, cli_imports._requests, pool)
            reports[partner] = _anonymous([report for _, part in posted for report in part], partner)
        ledgers[partner] = _anonymous(_ledger(operator, partner), partner)
    assert reports["brew"] == reports["aroma"]
    assert ledgers["brew"] == ledgers["aroma"]


def _eight_earns(path, prefix: str):
    """A CSV of eight earns at aroma, ``{prefix}-0`` … ``{prefix}-7``, one member each."""
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency\n"
        + "".join(f"{prefix}-{n},earn,aroma,card-{n},{when},100.00,RUB\n" for n in range(8)),
        encoding="utf-8",
    )
    return path


def test_import_whose_worker_dies_says_so_and_a_rerun_posts_the_rest(
    cli, aroma, operator, database, tmp_path, monkeypatch
):
    """The second slice's first lane is posted, its other lanes' process dies."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 4)
    monkeypatch.setattr("coalition.cli.imports._import_jobs", lambda database, asked, total: 3)
    monkeypatch.setattr(imports, "_database_at", lambda url: database)
    monkeypatch.setattr(imports, "_processes", lambda jobs, url: _LanesInTurn(False, dies_at_slice=2))
    path = _eight_earns(tmp_path / "transactions.csv", "d")
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    assert "the import stopped: a process posting it died" in stopped.output
    assert stopped.output.splitlines()[-1] == "4 created, 0 replayed, 0 failed"  # the first slice
    partly = {item["external_id"] for item in list_all(operator, partner_id="aroma")}
    assert {f"d-{n}" for n in range(4)} < partly < {f"d-{n}" for n in range(8)}
    monkeypatch.setattr(imports, "_processes", lambda jobs, url: _LanesInTurn(False))
    again = cli("import", str(path))
    created = 8 - len(partly)
    assert again.exit_code == 0
    assert again.output.splitlines()[-1] == f"{created} created, {8 - created} replayed, 0 failed"
    posted = [item["external_id"] for item in list_all(operator, partner_id="aroma")]
    assert sorted(posted) == [f"d-{n}" for n in range(8)]  # each once


def _interrupted_at_slice(number: int, read):
    """``read`` (the import's reading of a slice's requests), raising KeyboardInterrupt,
    as a Ctrl-C then would, when asked for slice ``number``."""
    slices_read = []

    def interrupted(rows):
        slices_read.append(rows)
        if len(slices_read) == number:
            raise KeyboardInterrupt
        return read(rows)

    return interrupted


def test_import_interrupted_says_so_counts_what_it_posted_and_a_rerun_posts_the_rest(
    cli, aroma, operator, tmp_path, monkeypatch
):
    """Ctrl-C while the second slice is read: the first slice is in the ledger and counted."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 4)
    read = cli_imports._requests
    monkeypatch.setattr("coalition.cli.imports._requests", _interrupted_at_slice(2, read))
    path = _eight_earns(tmp_path / "transactions.csv", "k")
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    assert stopped.stderr == (  # no blank line first: a bar, on a terminal, ends its line as it closes
        "the import stopped: it was interrupted. The rows counted below, through line 5, are decided; some of"
        f" the next 4 rows may be in the ledger too, and answer as replays. To go on: coalition import {path}"
        " --from-line 6\n")
    assert stopped.output.splitlines()[-1] == "4 created, 0 replayed, 0 failed"
    assert sorted(item["external_id"] for item in list_all(operator, partner_id="aroma")) == [
        f"k-{n}" for n in range(4)]
    # the header is line 1, the first slice lines 2 to 5
    assert "through line 5, are decided; some of the next 4 rows may be in the ledger too" in stopped.output
    assert f"To go on: coalition import {path} --from-line 6" in stopped.output
    monkeypatch.setattr("coalition.cli.imports._requests", read)
    again = cli("import", str(path))
    assert (again.exit_code, again.output.splitlines()[-1]) == (0, "4 created, 4 replayed, 0 failed")


def test_an_import_that_stopped_says_how_to_go_on_in_a_command_the_shell_reads_as_written(
    cli, aroma, tmp_path, monkeypatch
):
    """The file's name has a space and a quote in it: the command to go on names it quoted
    as a shell reads it, so that it can be pasted as it is. Ctrl-C as the second slice of
    four rows is read: lines 2 to 5 are decided."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 4)
    monkeypatch.setattr("coalition.cli.imports._requests", _interrupted_at_slice(2, cli_imports._requests))
    path = _eight_earns(tmp_path / "march's rows.csv", "q")
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    said = stopped.stderr.rstrip("\n").rpartition("To go on: ")[2]
    assert said == f"coalition import '{tmp_path}/march'\"'\"'s rows.csv' --from-line 6"
    assert shlex.split(said)[2] == str(path)


def test_an_import_that_stopped_goes_on_from_the_line_it_names_deciding_no_row_again(
    cli, aroma, operator, tmp_path, monkeypatch
):
    """Slices of two rows; Ctrl-C while the third is read. Line 2's burn of 5 points was
    refused: card-1 had none. Line 4's earn, dated before it, then gave card-1
    floor(100.00 × 0.1) = 10. Imported again from the start, the burn would post; from
    line 6, where the import says to go on, it stays refused, as in an import that never
    stopped, and card-1 keeps its 10 points."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 2)
    read = cli_imports._requests
    path = tmp_path / "rows.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points\n"
        f"b-1,burn,aroma,card-1,{days_ago(2)},,,5\n"
        + "".join(f"e-{n},earn,aroma,card-{n},{days_ago(3)},100.00,RUB,\n" for n in range(5)),
        encoding="utf-8",
    )
    monkeypatch.setattr("coalition.cli.imports._requests", _interrupted_at_slice(3, read))
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    assert stopped.output.splitlines()[-1] == "3 created, 0 replayed, 1 failed"
    assert f"To go on: coalition import {path} --from-line 6" in stopped.output
    monkeypatch.setattr("coalition.cli.imports._requests", read)
    rest = cli("import", str(path), "--from-line", "6")
    assert (rest.exit_code, rest.output.splitlines()[-1]) == (0, "2 created, 0 replayed, 0 failed")
    posted = sorted(item["external_id"] for item in list_all(operator, partner_id="aroma"))
    assert posted == [f"e-{n}" for n in range(5)]
    assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10


def signalled_at_the_second_chunk(monkeypatch, *signals):
    """Slices of four rows, posted two at a time, ``signals`` sent to this process as the
    first slice's second pair is posted; the posting it replaced, and the pairs posted."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 4)
    monkeypatch.setattr(batches, "CHUNK", 2)
    post_chunk, chunks = batches._post_chunk, []

    def signalled(*args):
        chunks.append(args)
        if len(chunks) == 2:
            for each in signals:
                os.kill(os.getpid(), each)
        return post_chunk(*args)

    monkeypatch.setattr(batches, "_post_chunk", signalled)
    return post_chunk, chunks


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["ctrl-c", "sigterm", "hangup"])
def test_a_signal_mid_slice_stops_the_import_once_the_slice_is_posted_and_counted(
    cli, aroma, operator, tmp_path, monkeypatch, signal_number
):
    """Slices of four rows, posted two at a time; the signal comes as the first slice's
    second pair is posted. Line 2's burn of 5 was refused (card-1 had no points), line
    3's earn, dated before it, gave card-1 10. The slice is finished and counted, the
    burn with it, so going on from line 6 decides it no more: stopped as the pair was
    written, its refusal was never counted, and going on from line 2 posted the burn,
    leaving card-1 5 points where an import that never stopped leaves 10."""
    post_chunk, _ = signalled_at_the_second_chunk(monkeypatch, signal_number)
    when = days_ago(2)
    path = tmp_path / "rows.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points\n"
        f"b-1,burn,aroma,card-1,{when},,,5\n"
        f"e-1,earn,aroma,card-1,{days_ago(3)},100.00,RUB,\n"
        + "".join(f"e-{n},earn,aroma,card-{n},{when},100.00,RUB,\n" for n in range(2, 8)),
        encoding="utf-8",
    )
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    assert stopped.output.splitlines()[-1] == "3 created, 0 replayed, 1 failed"
    assert (f"the import stopped: it was interrupted. The rows counted below, through line 5,"
            f" are decided. To go on: coalition import {path} --from-line 6") in stopped.output
    assert sorted(item["external_id"] for item in list_all(operator, partner_id="aroma")) == ["e-1", "e-2", "e-3"]
    monkeypatch.setattr(batches, "_post_chunk", post_chunk)
    rest = cli("import", str(path), "--from-line", "6")
    assert (rest.exit_code, rest.output.splitlines()[-1]) == (0, "4 created, 0 replayed, 0 failed")
    assert expect(operator.get("/api/v1/members/card-1/balance"), 200)["available"] == 10


def test_a_second_signal_while_a_slice_is_posted_stops_the_import_at_once(cli, aroma, operator, tmp_path,
                                                                         monkeypatch):
    """Slices of four rows, posted two at a time; two Ctrl-Cs come as the first slice's second
    pair is posted. The second stops the import there, the slice uncounted: nothing counted,
    and the slice's first pair may be in the ledger, answering as replays when run again."""
    _, chunks = signalled_at_the_second_chunk(monkeypatch, signal.SIGINT, signal.SIGINT)
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "".join(f"s-{n},bonus,aroma,card-{n},{_when()},,,5,gift\n" for n in range(8)),
                    encoding="utf-8")
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    assert stopped.output.splitlines()[-2:] == [
        "the import stopped: it was interrupted. No row was counted; some of the next 4 rows may be in the ledger"
        f" too, and answer as replays. To go on: coalition import {path}",
        "0 created, 0 replayed, 0 failed",
    ]
    assert len(chunks) == 2
    assert sorted(item["external_id"] for item in list_all(operator, partner_id="aroma")) == ["s-0", "s-1"]


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_second_signal_once_nothing_is_posted_does_not_cut_the_report_short(
    cli, aroma, tmp_path, monkeypatch, signal_number
):
    """The first signal stops the import after its slice; a second one as it says how to
    go on has nothing left to stop: the report ends with its counts (it ended in click's
    "Aborted!", with neither the line to go on from nor the counts)."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 2)
    post_chunk, going_on = batches._post_chunk, cli_imports._going_on

    def signalled(*args):
        os.kill(os.getpid(), signal_number)
        return post_chunk(*args)

    def signalled_again(*args):
        os.kill(os.getpid(), signal_number)
        return going_on(*args)

    monkeypatch.setattr(batches, "_post_chunk", signalled)
    monkeypatch.setattr(cli_imports, "_going_on", signalled_again)
    path = _four_earns(tmp_path / "rows.csv")
    stopped = cli("import", str(path))
    assert stopped.exit_code == 1
    assert "the import stopped: it was interrupted. The rows counted below, through line 3" in stopped.output
    assert stopped.output.splitlines()[-1] == "2 created, 0 replayed, 0 failed"


def test_a_signal_as_the_last_slice_is_posted_leaves_the_import_nothing_to_stop(
    cli, aroma, operator, tmp_path, monkeypatch
):
    """Slices of four rows, posted two at a time; the Ctrl-C comes as the second pair of the
    file's only slice is posted. Once that slice is counted no row is left to post: the import
    ends as if no signal had come, every row counted, exit 0, no line to go on from."""
    signalled_at_the_second_chunk(monkeypatch, signal.SIGINT)
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "".join(f"t-{n},bonus,aroma,card-{n},{_when()},,,5,gift\n" for n in range(4)),
                    encoding="utf-8")
    result = cli("import", str(path))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == "4 created, 0 replayed, 0 failed"
    assert len(list_all(operator, partner_id="aroma")) == 4


def _four_earns(path):
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency\n"
        + "".join(f"e-{n},earn,aroma,card-{n},{days_ago(2)},100.00,RUB\n" for n in range(4)),
        encoding="utf-8",
    )
    return path


def test_an_import_started_under_nohup_goes_on_through_a_hangup(cli, aroma, operator, tmp_path, monkeypatch):
    """nohup keeps a long import going when the SSH session it was started from drops: the
    import stopped at the hangup all the same, after its first slice."""
    monkeypatch.setattr("coalition.cli.imports.IMPORT_SLICE", 2)
    post_chunk = batches._post_chunk

    def hung_up(*args):
        os.kill(os.getpid(), signal.SIGHUP)
        return post_chunk(*args)

    monkeypatch.setattr(batches, "_post_chunk", hung_up)
    path = _four_earns(tmp_path / "rows.csv")
    with _started_under_nohup():
        imported = cli("import", str(path))
    assert (imported.exit_code, imported.output.splitlines()[-1]) == (0, "4 created, 0 replayed, 0 failed")
    assert len(list_all(operator, partner_id="aroma")) == 4


def test_an_import_from_a_line_inside_a_quoted_row_starts_at_the_row_after_it(
    cli, aroma, operator, tmp_path
):
    """Line 3 starts a row whose quoted category runs onto line 4: from line 4, that row
    (it starts before) is left out and the next, on line 5, is the first posted."""
    when = _when()
    path = tmp_path / "rows.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,category\n"
        f"q-0,earn,aroma,card-0,{when},100.00,RUB,coffee\n"
        f'q-1,earn,aroma,card-1,{when},100.00,RUB,"coffee\nand cake"\n'
        f"q-2,earn,aroma,card-2,{when},100.00,RUB,coffee\n",
        encoding="utf-8",
    )
    result = cli("import", str(path), "--from-line", "4")
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "1 created, 0 replayed, 0 failed")
    assert [item["external_id"] for item in list_all(operator, partner_id="aroma")] == ["q-2"]


@pytest.mark.postgres
def test_an_import_whose_database_goes_away_stops_in_one_line_and_a_rerun_posts_the_rest(
        aroma, operator, database_url, tmp_path, running_import):
    # it reported every row after as failed, each with a traceback: 11 MB for 60,000 rows
    _bonus_file(tmp_path / "rows.csv", ROWS)
    process = running_import(tmp_path / "rows.csv", posted=3000)
    with connections_refused(make_url(database_url).database, IMPORTING):
        output, errors = process.communicate(timeout=60)
    assert process.returncode == 1, errors
    said = [line for line in errors.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("the import stopped: the database cannot be reached ("), errors
    created, replayed, failed = _counts(output)
    assert 0 < created < ROWS and (replayed, failed) == (0, 0)
    _rerun_posts_the_rest(database_url, tmp_path, created)
    assert expect(operator.get("/api/v1/members/card-0/balance"), 200)["lifetime_earned"] == 40 * 5


@pytest.mark.postgres
def test_a_command_whose_database_goes_away_while_it_runs_says_so_in_one_line(database_url, monkeypatch):
    url = make_url(database_url).update_query_dict({"application_name": IMPORTING})
    monkeypatch.setenv("COALITION_DATABASE_URL", url.render_as_string(hide_password=False))
    checked = cli_databases._check_schema
    with ExitStack() as later:
        def then_the_server_goes_away(database, *options):
            schema = checked(database, *options)
            later.enter_context(connections_refused(url.database, IMPORTING))
            return schema

        monkeypatch.setattr(cli_databases, "_check_schema", then_the_server_goes_away)
        result = CliRunner().invoke(main, ["expire"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: the database cannot be reached (")
    assert result.stderr.rstrip().endswith("; run the command again once it is back")
    assert "Traceback" not in result.output


@pytest.mark.postgres
def test_a_command_whose_database_stops_taking_writes_while_it_runs_says_so_in_one_line(tmp_path, monkeypatch):
    # a database of its own: read_only() ends every session of it, the suite's shared one's too
    with empty_database(tmp_path) as url, ExitStack() as later:
        monkeypatch.setenv("COALITION_DATABASE_URL", url)
        assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
        checked = cli_databases._check_schema

        def then_it_takes_no_writes(database, *options):
            schema = checked(database, *options)
            database.dispose()
            later.enter_context(read_only(make_url(url).database))
            return schema

        monkeypatch.setattr(cli_databases, "_check_schema", then_it_takes_no_writes)
        result = CliRunner().invoke(main, ["keys", "create", "--role", "finance"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: the database takes no writes now (cannot execute ")
    assert result.stderr.endswith(" in a read-only transaction); run the command again once it is back\n")


@contextmanager
def _moved_aside(path: Path):
    aside = path.with_name("aside.sqlite3")
    path.rename(aside)
    try:
        yield
    finally:
        aside.rename(path)


@pytest.mark.parametrize(("while_it_runs", "said"), [
    (_moved_aside, "the database file cannot be opened (unable to open database file)"),
    (held_for_writing, "the database kept this waiting on other work's lock too long (database is locked)"),
], ids=["removed", "held for writing"])
def test_a_command_whose_sqlite_file_is_removed_or_held_while_it_runs_says_so_in_one_line(
    tmp_path, monkeypatch, while_it_runs, said
):
    path = tmp_path / "coalition.sqlite3"
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    monkeypatch.setattr("coalition.db.LOCK_WAIT_MS", 200)
    checked = cli_databases._check_schema
    with ExitStack() as later:
        def then_the_file_is_out_of_reach(database, *options):
            schema = checked(database, *options)
            database.dispose()
            later.enter_context(while_it_runs(path))
            return schema

        monkeypatch.setattr(cli_databases, "_check_schema", then_the_file_is_out_of_reach)
        result = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
    assert (result.exit_code, result.stderr) == (1, f"Error: {said}; run the command again once it is back\n")


@pytest.mark.parametrize("args", [("close", "2026-10"), ("expire",), ("import", "FILE")], ids=repr)
def test_a_command_on_a_database_without_the_schema_says_how_to_make_it(tmp_path, monkeypatch, args):
    (tmp_path / "empty.sqlite3").touch()  # an SQLite database with nothing in it
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    path = tmp_path / "rows.csv"
    path.write_text("external_id,type\n", encoding="utf-8")
    result = CliRunner().invoke(main, [str(path) if arg == "FILE" else arg for arg in args])
    assert result.exit_code == 1
    assert "run `coalition db upgrade` first" in result.stderr
    assert isinstance(result.exception, SystemExit)  # click's exit, no error escaping the command


@pytest.mark.parametrize("args", [("close", "2026-10"), ("expire",), ("import", "FILE")], ids=repr)
def test_a_command_run_where_there_is_no_database_says_where_it_looked_and_creates_none(tmp_path, monkeypatch,
                                                                                          args):
    # run outside the service's directory, it made an empty coalition.sqlite3 there and asked for an upgrade
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = tmp_path / "rows.csv"
    path.write_text("external_id,type\n", encoding="utf-8")
    result = CliRunner().invoke(main, [str(path) if arg == "FILE" else arg for arg in args])
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: there is no database at {elsewhere / 'coalition.sqlite3'}: without COALITION_DATABASE_URL,"
        " a command uses coalition.sqlite3 in the directory it runs in; run it where `coalition serve` runs,"
        " or set COALITION_DATABASE_URL\n"))
    assert list(elsewhere.iterdir()) == []


def test_a_database_named_by_an_sqlite_file_uri_is_opened_as_sqlite_reads_it(tmp_path, monkeypatch):
    # the path of a file: URI is SQLite's to read; taken as a file name, it was "no database"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COALITION_DATABASE_URL", "sqlite:///file:uri.sqlite3?mode=rwc&uri=true")
    created = CliRunner().invoke(main, ["db", "upgrade"]).stderr
    assert re.fullmatch(r"created the schema \(\d{4}\) in sqlite:///file(:|%3A)uri\.sqlite3\?mode=rwc&uri=true\n", created)
    result = CliRunner().invoke(main, ["expire"])
    assert (result.exit_code, result.stdout) == (0, "expired 0 lots\n")
    assert (tmp_path / "uri.sqlite3").is_file()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("file")] == []  # the URI is no file name


def test_keys_create_says_which_database_holds_the_key_and_when_it_made_that_database(tmp_path, monkeypatch):
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "coalition.sqlite3"
    first = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
    second = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
    assert first.stderr == f"created a new database at {file}\n" and second.stderr == ""
    for result in (first, second):
        said, key = result.stdout.splitlines()
        assert re.fullmatch(rf"created operator key key_[0-9a-f]{{12}} in {re.escape(str(file))}; store it now,"
                            " it is not shown again:", said)
        assert key.startswith(auth.KEY_PREFIX)


@pytest.mark.parametrize(("args", "said"), [
    (["--role", "partner"], "Error: --partner: a partner key needs the partner it is bound to\n"),
    (["--role", "operator", "--partner", "aroma"], "Error: --partner: an operator key is not bound to a partner\n"),
    # a new database has no partner aroma: it was made only to refuse the key in
    (["--role", "partner", "--partner", "aroma"], "Error: there is no database at {file}: without"
     " COALITION_DATABASE_URL, a command uses coalition.sqlite3 in the directory it runs in; run it where"
     " `coalition serve` runs, or set COALITION_DATABASE_URL\n"),
])
def test_keys_create_that_would_be_refused_in_a_new_database_creates_none(tmp_path, monkeypatch, args, said):
    # "created a new database at …", then the refusal: the file stayed, to refuse in
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["keys", "create", *args])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", said.format(file=tmp_path / "coalition.sqlite3"))
    assert os.listdir(tmp_path) == []


def test_keys_create_for_the_operators_own_partner_makes_the_database_it_is_in(tmp_path, monkeypatch):
    # the coalition partner is in every database from its first migration
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["keys", "create", "--role", "finance", "--partner", "coalition"])
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path) == ["coalition.sqlite3"]


def test_a_database_file_whose_name_is_too_long_is_reported_in_one_line(tmp_path, monkeypatch):
    # checking whether the file existed raised OSError: a traceback
    file = tmp_path / ("a" * 300 + ".sqlite3")
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{file}")
    result = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: cannot open the database {file}: File name too long\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, where no one may create a file")
def test_a_database_file_that_cannot_be_made_is_not_said_to_be_created(monkeypatch):
    # the directory is there, the file cannot be made in it: "creating a new database", then the failure
    monkeypatch.setenv("COALITION_DATABASE_URL", "sqlite:////proc/coalition.sqlite3")
    result = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: cannot open the database /proc/coalition.sqlite3")
    assert "created" not in result.stderr


def test_plain_alembic_migrates_the_database_the_service_would_open(tmp_path):
    # alembic.ini lets `alembic` itself be used; it opened the URL with SQLAlchemy's own
    # default driver (psycopg2 under SQLAlchemy 2.0, not installed) and none of the
    # service's connection settings
    with empty_database(tmp_path) as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")  # as an operator writes it
        environment = {**os.environ, "COALITION_DATABASE_URL": plain}
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=root,
                              env=environment, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        database = Database(url)
        try:
            assert migrate.mismatch(migrate.revisions(database)) is None  # this release's schema
        finally:
            database.dispose()


@pytest.mark.postgres
def test_instances_started_at_once_upgrade_the_schema_one_after_the_other(tmp_path):
    """Three `coalition db upgrade` at once on a database a revision behind, as three
    instances of `serve` deployed together each migrate first: each exits 0. Before,
    all three ran the revision's DDL side by side, and the two that came after the
    first failed on the column it had added."""
    with empty_database(tmp_path) as url:
        database = Database(url)
        migrate.upgrade(database, "0005")  # 0006 adds periods.activity
        try:
            with database.engine.connect() as holder:
                holder.execute(text("LOCK TABLE periods IN ACCESS EXCLUSIVE MODE"))
                upgrades = [_upgrade(url) for _ in range(3)]
                until_waiting_on_locks(database.engine, 3)  # so all three have started
                holder.rollback()
            outcomes = [(upgrade.wait(timeout=120), upgrade.communicate()[0]) for upgrade in upgrades]
            assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
            assert migrate.mismatch(migrate.revisions(database)) is None
        finally:
            database.dispose()


FX = ("INSERT INTO rates (kind, value, currency, effective_from, created_at)"
      " VALUES ('fx', :written, 'RUB', now(), now())")
THRESHOLD = ("INSERT INTO rates (kind, value, partner_id, min_amount, effective_from, created_at)"
             " VALUES ('threshold', 7, 'coalition', :written, now(), now())")


@pytest.mark.postgres
@pytest.mark.parametrize(("before", "insert", "column", "written", "read"), [
    ("0006", FX, "value", ["0.0110", "0.0110"], ["0.011000000000", "0.011", "0.0110"]),
    ("0011", THRESHOLD, "min_amount", ["12.5", "12.50"], ["12.5000", "12.5", "12.50"]),
], ids=["a rate's value (0007)", "a threshold's amount (0012)"])
def test_an_upgrade_to_decimals_as_written_drops_the_padding_of_those_stored(tmp_path, before, insert, column,
                                                                             written, read):
    """Before 0007 PostgreSQL padded a rate to 12 decimals (NUMERIC(30,12)), before 0012 a
    threshold's amount to 4: the upgrade keeps each value and drops its padding, and one
    written afterwards keeps its own decimals."""
    with empty_database(tmp_path) as url:
        database = Database(url)
        try:
            migrate.upgrade(database, before)
            with database.engine.begin() as connection:
                connection.execute(text(insert), {"written": written[0]})
                padded = connection.execute(text(f"SELECT {column}::text FROM rates")).scalar_one()
            migrate.upgrade(database)
            with database.engine.begin() as connection:
                connection.execute(text(insert), {"written": written[1]})
                kept = connection.execute(text(f"SELECT {column}::text FROM rates ORDER BY id")).scalars()
                assert [padded, *kept] == read
        finally:
            database.dispose()


def _upgrade(url: str) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "coalition"), "db", "upgrade"],
                            env={**os.environ, "COALITION_DATABASE_URL": url},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_python_dash_m_coalition_is_the_coalition_command(tmp_path):
    # where the virtualenv's scripts are not on the PATH: the same command, the key its last line
    env = {**os.environ, "COALITION_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    done = subprocess.run([sys.executable, "-m", "coalition", "keys", "create", "--role", "operator"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    database = Database(env["COALITION_DATABASE_URL"])
    try:
        assert database.run(auth.authenticate, f"Bearer {key}").role == "operator"
    finally:
        database.dispose()


def test_db_upgrade_then_the_same_command_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(main, ["expire"])
    assert (result.exit_code, result.output.strip()) == (0, "expired 0 lots")


def test_db_upgrade_says_from_which_schema_it_upgraded(tmp_path, monkeypatch):
    # it said "database is at the newest schema" alone, whether it had upgraded anything or not
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    *_, older, newest = sorted(path.name[:4] for path in versions.glob("[0-9]*.py"))
    url = f"sqlite:///{tmp_path / 'older.sqlite3'}"
    database = Database(url)
    try:
        migrate.upgrade(database, older)
    finally:
        database.dispose()
    monkeypatch.setenv("COALITION_DATABASE_URL", url)
    first, again = (CliRunner().invoke(main, ["db", "upgrade"]) for _ in range(2))
    assert (first.exit_code, first.stdout) == (0, "database is at the newest schema\n")
    assert first.stderr == f"upgraded the schema from {older} to {newest}\n"
    assert (again.exit_code, again.stdout, again.stderr) == (0, "database is at the newest schema\n", "")


def test_a_command_whose_schema_a_newer_release_upgrades_as_it_runs_says_so_alone(tmp_path, monkeypatch):
    # not "…: run that release; run the command again once it is back"
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with pytest.raises(click.ClickException) as raised:
        with cli_databases.opened(upgrade=True):
            raise SchemaNotCurrent(SCHEMA_IS_NEWER)
    assert raised.value.message == SCHEMA_IS_NEWER


def test_an_upgrade_to_this_release_has_every_instance_read_its_catalog_afresh(tmp_path):
    # an instance of the release before learns of it at its next request (test_api_errors)
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    *_, older, _ = sorted(path.name[:4] for path in versions.glob("[0-9]*.py"))
    generation = "SELECT generation FROM settings"
    with empty_database(tmp_path) as url:
        database = Database(url)
        try:
            migrate.upgrade(database, older)
            before = database.peek(generation)
            migrate.upgrade(database)
            upgraded = database.peek(generation)
            migrate.upgrade(database)  # nothing to do: nothing to read afresh
            assert before != upgraded == database.peek(generation)
        finally:
            database.dispose()


@pytest.mark.postgres
def test_db_upgrade_of_an_empty_server_database_says_it_created_the_schema(tmp_path, monkeypatch):
    # it built the whole schema in a new PostgreSQL database and said only that the
    # database was at the newest schema, as when it had done nothing
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    newest = max(path.name[:4] for path in versions.glob("[0-9]*.py"))
    with empty_database(tmp_path) as url:
        monkeypatch.setenv("COALITION_DATABASE_URL", url)
        first, again = (CliRunner().invoke(main, ["db", "upgrade"]) for _ in range(2))
    assert (first.exit_code, first.stdout) == (0, "database is at the newest schema\n")
    name = re.escape(url.rsplit("/", 1)[1])
    assert re.fullmatch(rf"created the schema \({newest}\) in postgresql\+psycopg://\S+/{name}\n", first.stderr)
    assert (again.exit_code, again.stderr) == (0, "")


def _url_cases(tmp_path):
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("not a database", encoding="utf-8")
    return {
        "a file that is not a database": (
            f"sqlite:///{not_a_database}", f"Error: the database file {not_a_database} is damaged ",
            '(file is not a database): restore it from a backup (docs/operations.md, "Data to keep")'),
        "a directory that does not exist": (
            f"sqlite:///{tmp_path / 'missing' / 'x.sqlite3'}", "Error: cannot open the database",
            "unable to open database file (SQLite needs its directory to exist and to be writable)"),
        "a server that does not answer": (
            "postgresql://coalition:s3cret@127.0.0.1:1/x", "Error: cannot open the database postgresql", "127.0.0.1"),
        "not a URL": ("no scheme here", "Error: COALITION_DATABASE_URL cannot be used", "Could not parse"),
        "no such dialect": ("bogus://x", "Error: COALITION_DATABASE_URL cannot be used", "bogus"),
        "another database": ("mysql://u:s3cret@127.0.0.1/x", "Error: COALITION_DATABASE_URL cannot be used",
                             "runs on SQLite or PostgreSQL, not mysql"),
        "another driver": ("postgresql+psycopg2://u:s3cret@127.0.0.1/x", "Error: COALITION_DATABASE_URL cannot be used",
                           "psycopg"),
        "a port that is not a number": ("postgresql://u:s3cret@127.0.0.1:five/x",
                                        "Error: COALITION_DATABASE_URL cannot be used", "'five'"),
        # SQLAlchemy's host=[::1]:1 split the address at its colons: a host "[" was tried, never ::1
        "an IPv6 primary and its standby": ("postgresql://u:s3cret@[::1]:1,127.0.0.1:1/x",
                                            "Error: cannot open the database postgresql", '"::1", port 1 failed'),
    }


@pytest.mark.parametrize(
    "case",
    ["a file that is not a database", "a directory that does not exist", "a server that does not answer",
     "not a URL", "no such dialect", "another database", "another driver", "a port that is not a number",
     "an IPv6 primary and its standby"],
)
@pytest.mark.parametrize("args", [("db", "upgrade"), ("close", "2026-10"), ("demo",)], ids=" ".join)
def test_a_database_that_cannot_be_opened_is_one_line_naming_it(tmp_path, monkeypatch, case, args):
    url, message, detail = _url_cases(tmp_path)[case]
    if case == "a directory that does not exist" and args[0] == "close":  # a command that creates no database
        message, detail = "Error: there is no database at ", "x.sqlite3 (COALITION_DATABASE_URL)"
    monkeypatch.setenv("COALITION_DATABASE_URL", url)
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert detail in result.stderr
    assert result.stderr.count("\n") == 1  # libpq's hint came on a line of its own
    if case == "a server that does not answer":  # the hint after its reason, and nothing of SQLite's after it
        assert result.stderr.endswith(" port 1 failed: Connection refused;"
                                      " Is the server running on that host and accepting TCP/IP connections?\n")
    assert "s3cret" not in result.output  # a password in the URL is not printed
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


REFUSED = 'connection to server at "127.0.0.1", port 5432 failed: '


@pytest.mark.parametrize(("said", "waits"), [
    (REFUSED + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?", True),
    (REFUSED + "FATAL:  the database system is starting up", True),
    (REFUSED + "FATAL:  the database system is shutting down", True),
    (REFUSED + "FATAL:  the database system is in recovery mode", True),
    (REFUSED + 'FATAL:  database "coalition" is not currently accepting connections', True),
    (REFUSED + "FATAL:  sorry, too many clients already", True),
    (REFUSED + 'FATAL:  database "coalition" does not exist', False),
    (REFUSED + 'FATAL:  password authentication failed for user "coalition"', False),
], ids=["not listening", "starting up", "shutting down", "in recovery", "not accepting", "full", "no such database",
        "wrong password"])
def test_serve_waits_for_a_server_not_up_yet_or_full_and_not_for_one_that_answers_no(said, waits):
    """docs/operations.md, "Starting": serve started beside its database waits for it (START_WAIT_SECONDS)
    while it does not answer, or answers that it is starting, stopping, recovering or full; a server that
    answers no would answer the same after the wait. psycopg's error carries no SQLSTATE for these."""
    error = sqlalchemy.exc.OperationalError("connect", None, psycopg.OperationalError(f"connection failed: {said}"))
    assert cli_databases._not_up_yet(error) is waits


def test_serve_does_not_wait_for_a_sqlite_file_it_cannot_write_nor_for_an_error_not_of_reach():
    """Neither mends with waiting: SQLite's read-only file (an upgrade it needs refused), and an error
    that is no outage at all (a PostgreSQL error with its SQLSTATE, here a syntax error)."""
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    readonly.sqlite_errorcode = sqlite3.SQLITE_READONLY
    syntax = psycopg.errors.SyntaxError("syntax error at or near \"SELEC\"")
    for error in (sqlalchemy.exc.OperationalError("UPDATE", None, readonly),
                  sqlalchemy.exc.ProgrammingError("SELEC 1", None, syntax)):
        assert cli_databases._not_up_yet(error) is False


@pytest.mark.postgres
def test_a_url_naming_a_primary_and_its_standby_is_served_by_the_one_that_takes_writes(tmp_path, monkeypatch):
    """A URL listing a primary and its standby, as libpq and PostgreSQL's documentation write it
    (hosts separated by commas), was a traceback in every command: SQLAlchemy read the comma as
    part of a port. The first host here answers nothing, as a primary killed before a failover."""
    with empty_database(tmp_path) as url:
        server = make_url(url)
        monkeypatch.setenv("COALITION_DATABASE_URL", server.set(host="127.0.0.1", port=1).render_as_string(
            hide_password=False).replace("127.0.0.1:1", f"127.0.0.1:1,{server.host}:{server.port}", 1)
            + "?target_session_attrs=read-write")
        upgrade = CliRunner().invoke(main, ["db", "upgrade"])
        key = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
        engine = create_engine(url)
        with engine.connect() as connection:
            keys = connection.execute(text("SELECT count(*) FROM api_keys")).scalar_one()
        engine.dispose()
    assert (upgrade.exit_code, upgrade.stdout) == (0, "database is at the newest schema\n")
    assert key.exit_code == 0 and key.stdout.splitlines()[-1].startswith("coal_")
    assert keys == 1


@pytest.mark.parametrize("args", [("db", "upgrade"), ("keys", "create", "--role", "operator")], ids=" ".join)
def test_a_sqlite_file_another_process_holds_for_writing_is_said_to_be_busy(tmp_path, monkeypatch, args):
    """It said "cannot open the database …: database is locked", as if the file were at fault."""
    path = tmp_path / "held.sqlite3"
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    monkeypatch.setattr("coalition.db.LOCK_WAIT_MS", 200)
    with held_for_writing(path):
        result = CliRunner().invoke(main, list(args))
    assert (result.exit_code, result.stderr) == (1, f"Error: cannot open the database {path}: database is"
                                                 " locked: another process held it for writing all along;"
                                                 " try again once it is done\n")


@pytest.mark.parametrize("url", [
    "sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true",
    # the URI's own query percent-encoded: SQLAlchemy hands SQLite "file:x?mode=memory" whole
    "sqlite:///file:x%3Fmode=memory?uri=true",
])
def test_an_in_memory_database_is_refused_since_it_is_gone_when_the_command_ends(monkeypatch, url):
    """A key was printed into a database gone with the command; serve answered every call 500."""
    monkeypatch.setenv("COALITION_DATABASE_URL", url)
    result = CliRunner().invoke(main, ["keys", "create", "--role", "operator"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("Error: COALITION_DATABASE_URL names an in-memory SQLite database, which is gone when"
                             " the command ends: name a file (sqlite:///path/to/coalition.sqlite3)\n")


def test_spaces_and_a_newline_around_the_database_url_are_not_part_of_it(tmp_path, monkeypatch):
    """Read from a secret's file, the URL ended in a newline: SQLite made a second, empty file
    whose name ended in it, and served that; PostgreSQL looked for a database named so."""
    path = tmp_path / "coalition.sqlite3"
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{path}")
    assert CliRunner().invoke(main, ["keys", "create", "--role", "operator"]).exit_code == 0
    monkeypatch.setenv("COALITION_DATABASE_URL", f"  sqlite:///{path}\n")
    for args in (["keys", "create", "--role", "finance"], ["keys", "list"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.stdout.splitlines()[1:]] == ["operator", "finance"]
    assert [file.name for file in tmp_path.iterdir() if file.name != file.name.rstrip()] == []


@pytest.mark.parametrize(
    ("option", "value"), [("--port", "99999"), ("--port", "0"), ("--workers", "0")]
)
def test_serve_refuses_a_port_or_worker_count_it_cannot_use_before_starting(
    tmp_path, monkeypatch, option, value
):
    monkeypatch.setenv("COALITION_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setattr("coalition.server.run", lambda *args: pytest.fail("serve started"))
    result = CliRunner().invoke(main, ["serve", option, value])
    assert result.exit_code == 2  # click's usage error
    assert f"Invalid value for '{option}'" in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # refused before touching the database


# --- files the import cannot read, and how it stops ------------------------------------------


def _when() -> str:
    return (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()


HEADER = "external_id,type,partner_id,member_id,occurred_at,amount,currency,points,reason\n"


@pytest.mark.parametrize(
    ("tail", "line", "why"),
    [
        ('u-2,bonus,aroma,card-1,{when},,,5,"a quote never closed\n', 3, "unexpected end of data"),
        ('u-2,bonus,aroma,card-1,{when},,,5,"gift\nu-3,bonus,aroma,card-1,{when},,,5,x"y\n', 3,
         "',' expected after '\"'"),
        ("u-2,bonus,aroma,card-1,{when},,,5," + "A" * 200_000 + "\n", 3, "field larger than field limit"),
    ],
    ids=["quote-open-at-the-end", "stray-quote", "cell-over-the-csv-limit"],
)
def test_a_file_that_is_not_csv_throughout_is_refused_naming_the_line_and_posts_nothing(
    aroma, operator, tmp_path, monkeypatch, database_url, tail, line, why
):
    # strict RFC 4180: a quote left open used to read the rest of the file into one cell
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    path = tmp_path / "broken.csv"
    path.write_text(HEADER + f"u-1,bonus,aroma,card-1,{_when()},,,5,\n" + tail.format(when=_when()),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: the row starting on line {line} is not CSV: ")
    assert why in result.stderr and "nothing was posted" in result.stderr
    assert isinstance(result.exception, SystemExit)
    assert list_all(operator, partner_id="aroma") == []


def test_a_file_that_turns_out_not_csv_once_counted_stops_the_import_saying_it_changed(
    aroma, operator, tmp_path, monkeypatch, database_url
):
    # the rows read before it were posted and the import ended as if the file had ended there
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    path = tmp_path / "changing.csv"
    path.write_text(HEADER + f"u-1,bonus,aroma,card-1,{_when()},,,5,gift\n", encoding="utf-8")
    count_rows = transaction_file.count_rows

    def counted_then_changed(*args):
        counted = count_rows(*args)
        rows = f'u-1,bonus,aroma,card-1,{_when()},,,5,gift\nu-2,bonus,aroma,card-1,{_when()},,,5,"gift\n'
        path.write_text(HEADER + rows, encoding="utf-8")
        return counted

    monkeypatch.setattr(transaction_file, "count_rows", counted_then_changed)
    result = CliRunner().invoke(main, ["import", str(path)])
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {path} changed while it was imported, and can no longer be read:"
        " the row starting on line 3 is not CSV: unexpected end of data\n")


def test_a_file_whose_reading_fails_as_it_is_counted_is_refused_saying_why_before_posting():
    # the count came back empty and the import went on to read the file again, to a traceback
    def failing():
        yield HEADER
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(Invalid) as refused:
        transaction_file.count_rows(failing(), "rows.csv", *cli_imports._columns())
    assert refused.value.message == "rows.csv cannot be read: [Errno 5] Input/output error; nothing was posted"


def test_a_header_naming_a_column_twice_is_refused_before_posting(aroma, operator, tmp_path, monkeypatch,
                                                                  database_url):
    # the last amount silently won: 5000.00 RUB posted for a row whose first amount was 100.00
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    path = tmp_path / "twice.csv"
    path.write_text("external_id,type,partner_id,member_id,occurred_at,amount,currency,amount\n"
                    f"d-1,earn,aroma,card-1,{_when()},100.00,RUB,5000.00\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {path}: the header names 'amount' more than once; nothing was posted\n")
    assert list_all(operator, partner_id="aroma") == []


@pytest.mark.parametrize("header", ["foo,bar,baz", "external_id,type,partner_id,member_id,occurred_at,ammount"])
def test_a_header_naming_no_column_of_a_transaction_is_refused_before_posting(aroma, operator, tmp_path,
                                                                            monkeypatch, database_url, header):
    # a file of something else, or one misspelt column: each row failed alone, a line of errors per row
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    path = tmp_path / "other.csv"
    path.write_text(header + "\n" + f"d-1,earn,aroma,card-1,{_when()},100.00\n" * 3, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path)])
    unknown = [name for name in header.split(",") if name not in HEADER.split(",")]
    which = "which is not a column" if len(unknown) == 1 else "which are not columns"
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {path}: the header names {', '.join(map(repr, unknown))}, {which} of a transaction"
        " (external_id, type, ")
    assert result.stderr.endswith("; nothing was posted\n") and result.stdout == ""
    assert list_all(operator, partner_id="aroma") == []


@pytest.mark.parametrize(("header", "said"), [
    ("external_id,type,partner_id,member_id,amount,currency", "no column 'occurred_at'"),
    ("external_id,member_id,occurred_at,amount,currency", "no columns 'type', 'partner_id'"),
])
def test_a_header_without_a_column_every_row_needs_is_refused_before_posting(aroma, operator, tmp_path,
                                                                             monkeypatch, database_url, header,
                                                                             said):
    # every row failed alone, each for want of the same column
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    path = tmp_path / "short.csv"
    path.write_text(header + "\n" + "d-1,earn,aroma,card-1,100.00,RUB\n" * 3, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: {path}: the header has {said}, which every row needs; nothing was posted\n"
    assert list_all(operator, partner_id="aroma") == []


def test_ctrl_c_while_the_file_is_counted_says_nothing_was_posted(aroma, operator, tmp_path, monkeypatch,
                                                                 database_url):
    # click said a bare "Aborted!"
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)

    def interrupted(*arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(transaction_file, "count_rows", interrupted)
    path = _eight_earns(tmp_path / "transactions.csv", "c")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: interrupted while {path} was read; nothing was posted\n"
    assert list_all(operator, partner_id="aroma") == []


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_separated_otherwise_than_by_commas_is_refused_saying_so(aroma, operator, tmp_path, monkeypatch,
                                                                        database_url, separator, name):
    # a spreadsheet where the decimal mark is a comma saves "CSV" with semicolons
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    path = tmp_path / "excel-de.csv"
    header = separator.join(HEADER.strip().split(","))
    path.write_text(f"{header}\n" + separator.join(["d-1", "earn", "aroma", "card-1", _when(), "100,00", "RUB"])
                    + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {path}: the header names {header!r}, which is not a column of a transaction (external_id, type, ")
    assert result.stderr.endswith(
        f"): its columns are separated by {name}; save it with commas; nothing was posted\n")
    assert list_all(operator, partner_id="aroma") == []


def test_blank_lines_before_the_header_are_skipped(cli, aroma, operator, tmp_path):
    path = tmp_path / "blank-first.csv"
    path.write_text("\n\n" + HEADER + f"b-1,bonus,aroma,card-1,{_when()},,,5,gift\n"
                    f"b-2,bonus,aroma,card-1,{_when()},,,7,gift\n", encoding="utf-8")
    result = cli("import", str(path))
    assert result.output.splitlines()[0] == "Importing 2 rows"
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "2 created, 0 replayed, 0 failed")
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 12  # 5 + 7


def test_rows_of_empty_cells_as_a_spreadsheet_saves_its_empty_rows_are_blank_lines(cli, aroma, operator, tmp_path):
    """A spreadsheet saves an empty row as ",,,,,,,,": it failed as a row missing every field."""
    path = tmp_path / "empty-rows.csv"
    path.write_text(HEADER + ",,,,,,,,\n" + f"b-1,bonus,aroma,card-1,{_when()},,,5,gift\n" + ",,,,,,,,\n"
                    + '"",,,,,,,,\n', encoding="utf-8")
    result = cli("import", str(path))
    assert result.output.splitlines()[0] == "Importing 1 row"
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "1 created, 0 replayed, 0 failed")
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 5


def test_unnamed_columns_past_the_header_as_excel_writes_them_are_no_repeated_names(cli, aroma, operator,
                                                                                  tmp_path):
    path = tmp_path / "excel-trailing.csv"
    path.write_text(HEADER.rstrip("\n") + ",,\n" + f"e-1,bonus,aroma,card-1,{_when()},,,5,gift,,\n",
                    encoding="utf-8")
    result = cli("import", str(path))
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "1 created, 0 replayed, 0 failed")
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 5

def test_points_longer_than_int_reads_fail_their_row_and_the_rest_is_posted(cli, aroma, operator, tmp_path):
    path = tmp_path / "long-points.csv"
    path.write_text(HEADER + f"p-1,bonus,aroma,card-1,{_when()},,,{'9' * 5000},gift\n"
                    f"p-2,bonus,aroma,card-1,{_when()},,,7,gift\n", encoding="utf-8")
    result = cli("import", str(path))
    (failure,) = [line for line in result.output.splitlines() if line.startswith("line ")]
    # a whole number, too large: said so, not "write it in the digits 0-9", which it is
    assert failure == "line 2: points: must be at least 1 and at most 1000000000000"
    assert result.output.splitlines()[-1] == "1 created, 0 replayed, 1 failed"
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 7


def test_a_pipe_is_refused_in_one_line_since_the_import_reads_its_file_twice(tmp_path, monkeypatch,
                                                                            database_url):
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)  # opening it would block until a writer came: refused before that
    result = CliRunner().invoke(main, ["import", str(fifo)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {fifo} is not a regular file")
    assert isinstance(result.exception, SystemExit)


def test_more_processes_than_the_import_allows_is_a_usage_error(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(HEADER, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", "--jobs", str(cli_imports.IMPORT_JOBS_MAX + 1), str(path)])
    assert result.exit_code == 2
    assert "Invalid value for '--jobs'" in result.stderr


@pytest.fixture
def running_import(database_url, tmp_path):
    """Starts :func:`_running_import`; an import still running when its test ends (one that
    failed midway) is killed, as it would post into the next test's database."""
    started = []

    def start(path, posted: int = 1) -> subprocess.Popen:
        started.append(process := _running_import(database_url, path, tmp_path, posted))
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()  # its workers end with it (the test below)
            process.communicate(timeout=30)


def _running_import(database_url: str, path, tmp_path, posted: int = 1) -> subprocess.Popen:
    """``coalition import --jobs 2`` of ``path`` as a process of its own, once its two
    workers run and at least ``posted`` rows are in the ledger."""
    environment = {**os.environ, "COALITION_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1",
                   "PGAPPNAME": IMPORTING}  # libpq names its sessions so
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "coalition"), "import", "--jobs", "2", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, cwd=tmp_path, text=True)
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + 60
        with engine.connect() as connection:
            while connection.execute(text("SELECT count(*) FROM transactions")).scalar_one() < posted:
                assert process.poll() is None, process.communicate(timeout=30)
                assert time.monotonic() < deadline, "the import posted nothing in a minute"
                time.sleep(0.1)
                connection.rollback()
    finally:
        engine.dispose()
    return process


ROWS = 20_000  # some seconds of posting in two processes: long enough to stop it midway
IMPORTING = "coalition-import-under-test"  # the application name of its database sessions


def _counts(output: str) -> tuple[int, ...]:
    """Created, replayed and failed rows: the import's last line ("1,000 created, …")."""
    return tuple(int(count.replace(",", "")) for count in re.findall(r"\d(?:[\d,]*\d)?", output.splitlines()[-1]))


def _rerun_posts_the_rest(database_url: str, tmp_path, created_before: int) -> None:
    """Importing rows.csv again posts every row not yet posted; the others are replays."""
    again = subprocess.run(
        [str(Path(sys.executable).parent / "coalition"), "import", str(tmp_path / "rows.csv")],
        check=False, capture_output=True, text=True, env={**os.environ, "COALITION_DATABASE_URL": database_url},
        cwd=tmp_path, timeout=300)
    created, replayed, failed = _counts(again.stdout)
    assert (again.returncode, created + replayed, failed) == (0, ROWS, 0), again.stderr
    assert replayed >= created_before  # every row counted as created before is a replay now


def _bonus_file(path, rows: int) -> None:
    when = _when()
    path.write_text(HEADER + "".join(f"k-{n},bonus,aroma,card-{n % 500},{when},,,5,gift\n" for n in range(rows)),
                    encoding="utf-8")


@pytest.mark.postgres
def test_the_workers_of_an_import_killed_outright_end_with_it(aroma, tmp_path, running_import):
    # they waited for work that would never come, each holding a database connection
    _bonus_file(tmp_path / "rows.csv", ROWS)
    process = running_import(tmp_path / "rows.csv")
    workers = children(process.pid)
    assert len(workers) >= 2, workers  # the two workers (and multiprocessing's resource tracker)
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while alive := [pid for pid in workers if Path(f"/proc/{pid}").exists()
                    and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]:
        assert time.monotonic() < deadline, f"still running after their import was killed: {alive}"
        time.sleep(0.2)


@pytest.mark.postgres
def test_ctrl_c_while_the_workers_start_stops_the_import_in_its_message_alone(aroma, operator, database_url,
                                                                             tmp_path):
    # a worker Ctrl-C reached while it still imported the service died with a traceback;
    # one that reached the import while it spawned them was lost, and the import went on
    _bonus_file(tmp_path / "rows.csv", ROWS)
    environment = {**os.environ, "COALITION_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "coalition"), "import", "--jobs", "2", str(tmp_path / "rows.csv")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, cwd=tmp_path, text=True,
        start_new_session=True)  # a process group of its own, as a terminal gives a command
    try:
        deadline = time.monotonic() + 60
        while len(children(process.pid)) < 2:  # multiprocessing's resource tracker, then a worker
            assert process.poll() is None, process.communicate(timeout=30)
            assert time.monotonic() < deadline, "no worker in a minute"
            time.sleep(0.005)
        # the worker takes most of a second to start; the import may still be spawning the next
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        output, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 1, errors
    assert "Traceback" not in errors, errors
    assert errors.strip().startswith("the import stopped: it was interrupted"), errors
    created, replayed, failed = _counts(output)
    assert len(list_all(operator, partner_id="aroma")) >= created and (replayed, failed) == (0, 0)


@pytest.mark.postgres
def test_sigterm_stops_an_import_as_ctrl_c_does_and_a_rerun_posts_the_rest(aroma, operator, database_url,
                                                                            tmp_path, running_import):
    _bonus_file(tmp_path / "rows.csv", ROWS)
    # past three slices of 1,000, so the first is counted: a slice is counted when the next is sent
    process = running_import(tmp_path / "rows.csv", posted=3000)
    process.send_signal(signal.SIGTERM)
    output, errors = process.communicate(timeout=60)
    assert process.returncode == 1, errors
    assert "the import stopped: it was interrupted" in errors
    created, replayed, failed = _counts(output)
    assert 0 < created < ROWS and (replayed, failed) == (0, 0)
    _rerun_posts_the_rest(database_url, tmp_path, created)
    # card-0 has rows 0, 500, …, 19,500: 40 bonuses of 5 points, each posted once
    assert expect(operator.get("/api/v1/members/card-0/balance"), 200)["lifetime_earned"] == 40 * 5


@pytest.mark.postgres
def test_a_hangup_stops_an_import_as_ctrl_c_does_and_a_rerun_posts_the_rest(aroma, operator, database_url,
                                                                             tmp_path, running_import):
    """The terminal closed (an SSH session lost): its hangup reaches the import, its workers and
    multiprocessing's resource tracker. The import ended in silence, with no line to go on from
    in the file its output was sent to; so did the tracker, with a traceback per lock."""
    _bonus_file(tmp_path / "rows.csv", ROWS)
    process = running_import(tmp_path / "rows.csv", posted=3000)
    for pid in [process.pid, *children(process.pid)]:
        os.kill(pid, signal.SIGHUP)
    output, errors = process.communicate(timeout=60)
    assert process.returncode == 1, errors
    assert errors.strip().startswith("the import stopped: it was interrupted"), errors
    assert "Traceback" not in errors and "--from-line" in errors, errors
    created, replayed, failed = _counts(output)
    assert 0 < created < ROWS and (replayed, failed) == (0, 0)
    _rerun_posts_the_rest(database_url, tmp_path, created)
    assert expect(operator.get("/api/v1/members/card-0/balance"), 200)["lifetime_earned"] == 40 * 5


@pytest.mark.parametrize("args", [("keys", "create", "--role", "operator"), ("expire",)], ids=" ".join)
def test_a_command_on_a_newer_releases_schema_says_so_in_one_line(tmp_path, monkeypatch, args):
    """An instance of the release before, restarted during a deploy: the upgrade raised
    Alembic's "Can't locate revision" with a traceback, and other commands asked for an upgrade."""
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    monkeypatch.setenv("COALITION_DATABASE_URL", url)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    database = Database(url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'a-newer-release'"))
    finally:
        database.dispose()
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    # an upgrade, as keys create runs first, meets the revision it does not know: Alembic's words after
    told = {"keys": " (Can't locate revision identified by 'a-newer-release')", "expire": ""}[args[0]]
    assert result.stderr == f"Error: {SCHEMA_IS_NEWER}{told}\n"
    assert SCHEMA_IS_NEWER == "the database's schema is a newer release's: run that release"
    assert "Traceback" not in result.output


def test_a_close_interrupted_as_it_commits_says_it_is_closed(cli, operator):
    """A Ctrl-C or SIGTERM during the COMMIT (its fsync, say) is raised once the commit
    returns: the close is written, and the command says so, not that nothing was closed.
    (SIGTERM here: pytest-xdist's workers ignore SIGINT.)"""
    start, _, period_id = previous_month()
    expect(bonus(operator, "b-1", "m-1", 10, occurred_at=at(start, 5)), 201)

    def signalled_after_the_commit(session, *_):
        if any(isinstance(row, models.Period) for row in session.new):
            event.listen(session, "after_commit", lambda _: os.kill(os.getpid(), signal.SIGTERM), once=True)

    event.listen(Session, "before_flush", signalled_after_the_commit)
    try:
        stopped = cli("close", period_id)
    finally:
        event.remove(Session, "before_flush", signalled_after_the_commit)
    assert stopped.exit_code == 1
    assert stopped.output.splitlines()[-1] == (
        f"Error: interrupted as the close was written: {period_id}, and any earlier open period,"
        " is closed all the same")
    listed = expect(operator.get("/api/v1/periods"), 200)
    assert [item["id"] for item in listed if item["status"] == "closed"] == [period_id]
