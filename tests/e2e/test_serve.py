"""``coalition serve`` as README.md's first command runs it: SQLite, scheduler on.

The scheduler once ran inside the gunicorn master, whose SQLite connections
the workers then inherited across the fork; writes failed with "database is
locked" or hung. Now the master never opens the database: the scheduler is a
process of its own, and every write succeeds.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from coalition import MAX_BODY_BYTES
from coalition.cli.databases import START_WAIT_SECONDS
from tests.conftest import POSTGRES_URL, connections_refused, days_ago, empty_database
from tests.e2e.live_server import free_port
from tests.e2e.processes import children

START_TIMEOUT = 60.0
WORKERS = 2


def _workers(log_path: Path) -> set[int]:
    return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log_path.read_text())}


def _open_files(pid: int) -> list[str]:
    names = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            names.append(os.readlink(fd))
        except OSError:
            continue
    return names


def _stop(process: subprocess.Popen, log_path: Path) -> None:
    """Stop ``serve`` as a process manager would. gunicorn gives a worker's connections up
    to its graceful timeout (30 s) to finish, so that long is not a failure; longer is,
    and the log says where it was (CI once saw no exit within 15 s)."""
    process.terminate()
    try:
        process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
        raise AssertionError(f"serve did not stop within 45 s of SIGTERM:\n{log_path.read_text()}") from None


@pytest.fixture
def served(tmp_path):
    """``coalition serve`` on a fresh SQLite file with its scheduler; yields (url, key, process, log)."""
    if POSTGRES_URL:  # CI runs the suite on each database, and these would run twice unchanged
        pytest.skip("serves SQLite whichever database the suite runs on: run with the SQLite suite")
    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc to look at the processes")
    port, log_path = free_port(), tmp_path / "serve.log"
    environment = {**os.environ, "COALITION_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite3'}",
                   "PYTHONUNBUFFERED": "1"}
    environment.pop("COALITION_SCHEDULER", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "coalition"), "serve", "--port", str(port),
             "--workers", str(WORKERS)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        while len(_workers(log_path)) < WORKERS:  # the first worker may answer before the others boot
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        key = re.search(r"coal_[A-Za-z0-9_-]+", log_path.read_text()).group(0)
        yield url, key, process, log_path
    finally:
        _stop(process, log_path)


def test_served_on_sqlite_with_its_scheduler_every_write_succeeds(served):
    url, key, _, log_path = served
    headers = {"Authorization": f"Bearer {key}"}

    def create(number: int) -> int:
        body = {"id": f"cafe-{number}", "name": f"Cafe {number}", "category": "cafe", "currency": "EUR"}
        return requests.post(url + "/api/v1/partners", json=body, headers=headers, timeout=30).status_code

    statuses = [create(number) for number in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses += list(pool.map(create, range(8, 24)))
    assert statuses == [201] * 24, log_path.read_text()
    assert "database is locked" not in log_path.read_text()


def test_the_master_holds_no_database_file_and_the_scheduler_is_its_own_process(served):
    master, log_path = served[2].pid, served[3]
    workers = _workers(log_path)
    others = set(children(master)) - workers
    assert len(workers) == WORKERS and len(others) == 1, (workers, others, log_path.read_text())
    assert not [name for name in _open_files(master) if "served.sqlite3" in name]


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_a_stopped_server_stops_its_scheduler_and_says_nothing_amiss(served, stop):
    _, _, process, log_path = served
    (scheduler,) = set(children(process.pid)) - _workers(log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while "scheduler started" not in log_path.read_text():  # it starts beside the workers
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    if stop == "ctrl-c":  # the terminal signals the whole foreground group; the master then QUITs its workers
        for pid in (scheduler, *_workers(log_path)):
            os.kill(pid, signal.SIGINT)
        process.send_signal(signal.SIGINT)
    else:
        process.terminate()
    assert process.wait(timeout=30) == 0, log_path.read_text()  # at once, unless the machine is loaded
    assert not Path(f"/proc/{scheduler}").exists(), "the scheduler outlived the server"
    assert "Traceback" not in log_path.read_text(), log_path.read_text()
    assert "coalition.jobs: scheduler stopped" in log_path.read_text(), log_path.read_text()


def test_a_stopped_server_leaves_no_wal_or_shm_file_beside_its_sqlite_file(served):
    """Left there, a ``-wal`` is read as part of a backup put in the file's place: the
    restored file was "database disk image is malformed" (operations.md, "Data to keep")."""
    url, key, process, log_path = served
    deadline = time.monotonic() + START_TIMEOUT
    while "scheduler started" not in log_path.read_text():  # its connection is open
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    body = {"id": "cafe", "name": "Cafe", "category": "cafe", "currency": "EUR"}
    assert requests.post(url + "/api/v1/partners", json=body, headers={"Authorization": f"Bearer {key}"},
                         timeout=30).status_code == 201
    database = log_path.parent / "served.sqlite3"
    assert Path(f"{database}-wal").exists()
    process.terminate()
    assert process.wait(timeout=30) == 0, log_path.read_text()
    assert sorted(path.name for path in database.parent.glob("served.sqlite3*")) == ["served.sqlite3"], log_path.read_text()


def test_a_stopping_server_refuses_new_connections_while_it_finishes_those_it_has(served):
    """While a worker finished its requests after SIGTERM, the kernel went on completing new
    connections into the listening socket's backlog, each reset unanswered when the worker
    exited (the soak test's finding): a balancer does not send a POST again after a reset,
    and sends a refused connection to another instance at once."""
    url, key, process, log_path = served
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"id": "gym", "name": "Gym", "category": "gym", "currency": "EUR"}).encode()
    head = (f"POST /api/v1/partners HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as in_flight:
        in_flight.sendall(head + body[:5])
        _until_read_by_the_server(in_flight)  # a worker took it in, and its thread reads the body
        process.terminate()
        deadline = time.monotonic() + 10
        while True:  # the master closes its socket at once, the workers theirs as they drain
            assert time.monotonic() < deadline, "new connections were still taken 10 s on"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.1)
        in_flight.sendall(body[5:])
        answer = in_flight.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201"), answer  # the request in flight is finished
    assert process.wait(timeout=30) == 0, log_path.read_text()


def test_a_connection_left_idle_a_few_seconds_is_still_open_for_the_next_request(served):
    """gunicorn closes an idle connection after its keep-alive; at its default of
    2 s, a request sent as it closes is reset unread. A proxy in front closes
    idle connections itself after 60 s or so, and must be the one to close."""
    url, _, _, _ = served
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() and connection.sock is not None
        opened = connection.sock.getsockname()
        time.sleep(4)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        assert connection.sock.getsockname() == opened  # the same connection, not a new one
    finally:
        connection.close()


@pytest.mark.parametrize(("path", "wrong_key", "status"), [
    ("/api/v1/transactions/batch", True, 401),  # refused by the key, the body unread
    ("/api/v1/no-such-list", False, 404),
], ids=["unknown-key", "unknown-path"])
def test_a_refused_body_of_any_size_leaves_its_connection_open_for_the_next_request(
        served, path, wrong_key, status):
    """A request refused before its body is read (a batch of 1,000 items from a till whose
    key was revoked, or posted while the database was away) was answered "keep-alive",
    and then gunicorn, which reads at most 64 KiB of a body left unread, closed the
    connection: the client's next request on it was dropped unanswered, a POST that no
    client library sends again by itself. The body is read to its end, and the connection serves on."""
    url, key, _, _ = served
    host, port = url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {'coal_' + 'x' * 43 if wrong_key else key}",
               "Content-Type": "application/json"}
    body = json.dumps({"transactions": [json.loads(_bonus(f"big-{index}")) for index in range(2000)]})
    assert len(body) > 4 * 64 * 1024
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        refused = connection.getresponse()
        assert (refused.status, refused.getheader("Connection")) == (status, "keep-alive")
        refused.read()
        opened = connection.sock.getsockname()
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        assert connection.sock.getsockname() == opened  # the same connection, not a new one
    finally:
        connection.close()


def test_a_refused_request_whose_body_never_comes_is_answered_all_the_same(served):
    """A client that sends a Content-Length, a byte of its body and then nothing, with no
    key: the answer waited for the rest of the body for as long as the client kept its
    connection open, holding one of the worker's threads (eight such connections, none
    with a key, and the worker answered nothing more). It waits as long as gunicorn
    would after the answer, and then answers. (The timeout only keeps a failure from
    hanging the suite.)"""
    url, _, _, _ = served
    host, port = url.removeprefix("http://").split(":")
    head = (b"POST /api/v1/transactions/batch HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    with socket.create_connection((host, int(port)), timeout=START_TIMEOUT) as client:
        client.sendall(head)
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401 ")


def _until_read_by_the_server(client: socket.socket) -> None:
    """Return once the server has read all ``client`` sent: first the server's end acknowledged
    it (the client's send queue in /proc/net/tcp is empty), then it was read from there (the
    server's receive queue is empty), by a worker that accepted the connection and handles it.
    A fixed half second stood in for this; a worker kept off the CPU that long left the
    connection in the listening socket's backlog at SIGTERM, where it was reset unanswered."""
    server, own = client.getpeername()[1], client.getsockname()[1]
    deadline = time.monotonic() + START_TIMEOUT
    for local, remote, queue, what in ((own, server, 0, "took"), (server, own, 1, "read")):
        while _tcp_queues(local, remote)[queue] != 0:
            assert time.monotonic() < deadline, f"the server never {what} the request's head"
            time.sleep(0.05)


def _tcp_queues(local: int, remote: int) -> tuple[int | None, int | None]:
    """The send and receive queues, in bytes, of the established IPv4 connection from port
    ``local`` to port ``remote`` on this machine; None for both if there is none yet."""
    for entry in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        at, to, state, queues = entry.split()[1:5]
        if state == "01" and at.endswith(f":{local:04X}") and to.endswith(f":{remote:04X}"):
            sent, received = queues.split(":")
            return int(sent, 16), int(received, 16)
    return None, None


def _exchange(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes, read until the server closes: the status line and the body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


def _post_head(key: str, framing: str) -> bytes:
    """The head of a raw POST of a transaction, its body framed by ``framing`` (a header)."""
    return (
        f"POST /api/v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def _bonus(external_id: str) -> bytes:
    """A whole bonus posting, as JSON bytes."""
    return json.dumps({"type": "bonus", "member_id": "m1", "points": 1, "reason": "goodwill",
                       "external_id": external_id, "partner_id": "coalition",
                       "occurred_at": days_ago(1)}).encode()


def _listed(url: str, key: str) -> list:
    return requests.get(url + "/api/v1/transactions", headers={"Authorization": f"Bearer {key}"},
                        timeout=10).json()["items"]


def _until_logged(log_path: Path, text: str) -> None:
    """Wait for ``text`` in the log: the access line is written after the answer."""
    deadline = time.monotonic() + 10
    while text not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)


@pytest.mark.parametrize(
    "chunks", [b"zz\r\n", b"2\r\n{}XX0\r\n\r\n", b"2;\x01\r\n{}\r\n0\r\n\r\n"],
    ids=["bad-size", "no-terminator", "bad-extension"],
)
def test_a_body_whose_chunked_encoding_is_broken_is_400_not_500(served, chunks):
    # gunicorn reports the broken encoding only when the service reads the body
    url, key, _, log_path = served
    head, body = _exchange(url, _post_head(key, "Transfer-Encoding: chunked") + chunks)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 BAD REQUEST", head
    assert json.loads(body)["code"] == 400
    assert "Traceback" not in log_path.read_text()


@pytest.mark.parametrize("coding", ["gzip, chunked", "Deflate,Chunked"])
def test_a_body_in_a_transfer_coding_other_than_chunked_is_415_and_posts_nothing(served, coding):
    # gunicorn undoes chunked and passes the rest on undone: a plain body labelled gzip was posted
    url, key, _, log_path = served
    whole = _bonus("coded-1")
    chunked = b"%x\r\n%b\r\n0\r\n\r\n" % (len(whole), whole)
    head, answer = _exchange(url, _post_head(key, f"Transfer-Encoding: {coding}") + chunked)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 415 UNSUPPORTED MEDIA TYPE", head
    assert json.loads(answer)["message"] == f"a body in Transfer-Encoding {coding.lower()!r} is not read: send it as is"
    assert _listed(url, key) == []
    assert "Traceback" not in log_path.read_text()
    # identity is no coding: the body is read as sent
    head, _ = _exchange(url, _post_head(key, "Transfer-Encoding: identity, chunked") + chunked)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 201 CREATED", head


def test_a_key_sent_in_the_url_is_refused_and_left_out_of_the_access_log(served):
    url, key, _, log_path = served
    encoded = key.replace("_", "%5F")  # the request line is logged as sent (requests would decode it)
    assert requests.get(f"{url}/api/v1/partners?access_token={key}", timeout=10).status_code == 401
    head, _ = _exchange(url, f"GET /api/v1/partners?access_token={encoded} HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 401 "), head
    # each worker writes its line after its answer, so the second's may come first
    _until_logged(log_path, "access_token=coal%5F…")
    _until_logged(log_path, "access_token=coal_…")
    logged = log_path.read_text()
    assert logged.count(key) == 1  # where the first start printed it
    assert encoded not in logged
    # any character may come percent-encoded, and a key may stand in the path
    in_path = "%63" + key[1:]
    head, _ = _exchange(url, f"GET /api/v1/members/{in_path}/balance HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 401 "), head
    _until_logged(log_path, "/api/v1/members/%63oal_…/balance")
    assert in_path not in log_path.read_text()


def test_a_key_in_a_request_line_gunicorn_refuses_is_left_out_of_the_error_log(served):
    # a raw non-ASCII byte in the URL: gunicorn logs the line as a warning, as it was sent
    url, key, _, log_path = served
    head, _ = _exchange(url, f"GET /api/v1/partners?access_token={key}&note=café HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 400 "), head
    _until_logged(log_path, "Invalid request from ip=127.0.0.1")
    assert "access_token=coal_…&note=caf" in log_path.read_text()
    assert log_path.read_text().count(key) == 1  # where the first start printed it


@pytest.mark.parametrize("short_by", [50, 1])
def test_a_body_that_ends_before_its_content_length_is_400_and_posts_nothing(served, short_by):
    # gunicorn handed over what came before the client closed: whole JSON, it was posted
    url, key, _, log_path = served
    whole = _bonus("cut-1")
    head, answer = _exchange(url, _post_head(key, f"Content-Length: {len(whole) + short_by}") + whole)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 BAD REQUEST", head
    assert json.loads(answer)["message"] == (
        f"the body ended after {len(whole)} of the {len(whole) + short_by} bytes its Content-Length gives:"
        " nothing was read")
    assert _listed(url, key) == []
    assert "Traceback" not in log_path.read_text()


def test_a_body_sent_chunked_past_the_limit_is_413_not_read_as_its_first_16_mib(served):
    # with no Content-Length, Werkzeug reads up to the limit and stops as if the body ended
    # there: 16 MiB of JSON followed by more was posted as if the rest had not been sent
    url, key, _, log_path = served
    whole = json.dumps({"type": "bonus", "member_id": "m1", "points": 1}).encode()
    body = whole + b" " * (MAX_BODY_BYTES - len(whole)) + b"and more"
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(part), part)
                      for part in (body[at:at + 2**20] for at in range(0, len(body), 2**20)))
    head, answer = _exchange(url, _post_head(key, "Transfer-Encoding: chunked") + chunks + b"0\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 413 REQUEST ENTITY TOO LARGE", head
    assert json.loads(answer)["code"] == 413
    assert "Traceback" not in log_path.read_text()


@pytest.mark.parametrize(
    ("request_line", "headers", "status"),
    [
        (b"GET /api/v1/members/\xd0\xba\xd0\xb0/balance HTTP/1.1", b"", 400),  # raw UTF-8, not %-encoded
        (b"GET /api/v1/partners/" + b"a" * 5000 + b" HTTP/1.1", b"", 414),
        (b"GET /healthz HTTP/1.1", b"X-Big: " + b"a" * 9000 + b"\r\n", 431),
    ],
    ids=["raw-utf8-path", "request-line-over-4k", "header-over-8k"],
)
def test_what_gunicorn_refuses_before_the_app_is_answered_in_json(served, request_line, headers, status):
    url, _, _, _ = served
    head, body = _exchange(url, request_line + b"\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"Content-Type: application/json" in head
    error = json.loads(body)
    assert error["code"] == status and error["status"] and error["message"]


def test_each_job_run_says_what_it_did_in_a_timestamped_line_and_no_control_socket_is_taken(served):
    """The jobs' runs were silent and their warnings bare (no time, level or process);
    gunicorn's control socket, one per user, was taken over by each instance started on the
    host, and stopping one deleted it."""
    log_path = served[3]
    stamp = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] coalition\.jobs: "
    deadline = time.monotonic() + START_TIMEOUT
    while not (re.search(stamp + r"expiry: 0 lots expired$", log_path.read_text(), re.MULTILINE)
               and re.search(stamp + r"auto-close: no period due$", log_path.read_text(), re.MULTILINE)):
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    assert "Control socket" not in log_path.read_text()
    # each job named as every other line names it ("auto-close", not "auto_close")
    assert re.search(stamp + r"scheduler started: auto-close, expiry$", log_path.read_text(), re.MULTILINE)


def test_a_scheduler_that_ends_is_started_again_and_the_log_says_so(served):
    """gunicorn reaps any child, but replaces only its workers: a scheduler killed left the
    instance serving without expiry or auto-close, and nothing said so."""
    _, _, process, log_path = served
    (scheduler,) = set(children(process.pid)) - _workers(log_path)
    os.kill(scheduler, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT
    while not (others := set(children(process.pid)) - _workers(log_path) - {scheduler}):
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    (again,) = others
    assert f"the scheduler (pid {scheduler}) has ended; starting it again" in log_path.read_text()
    while f"[{again}] [INFO] coalition.jobs: expiry: 0 lots expired" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)


def test_workers_and_a_scheduler_started_again_while_the_file_is_away_do_not_make_it_anew(served, tmp_path):
    """A worker booted again after a crash, or a scheduler started again, while the SQLite file
    was moved away opened it as a new process does, making a new, empty file at its path: that
    worker answered ``schema_not_current``, whose remedy, `coalition db upgrade`, made a new
    coalition there. Each answers 503 until the file is back, and serves it then."""
    url, key, process, log_path = served
    path, aside = tmp_path / "served.sqlite3", tmp_path / "aside.sqlite3"
    booted = _workers(log_path)
    (scheduler,) = set(children(process.pid)) - booted
    path.rename(aside)
    for pid in (*booted, scheduler):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT
    while len(_workers(log_path) - booted) < WORKERS or not (
        others := set(children(process.pid)) - _workers(log_path) - {scheduler}
    ):
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    (again,) = others
    while f"[{again}] [WARNING] coalition.jobs: expiry" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [requests.get(url + "/api/v1/periods", headers=headers, timeout=30) for _ in range(4)]
    assert {(answer.status_code, answer.json()["reason"]) for answer in answers} == {(503, "database_unavailable")}
    assert not path.exists()
    aside.rename(path)
    assert requests.get(url + "/api/v1/periods", headers=headers, timeout=30).status_code == 200


@pytest.mark.skipif(POSTGRES_URL is not None, reason="serves SQLite: run with the SQLite suite")
def test_a_port_in_use_ends_the_start_with_an_error_naming_it_not_saying_it_serves_there(tmp_path):
    """It printed "Coalition on http://…" first, then gave up on the port; later it
    gave up with gunicorn's log alone, and no ``Error:`` line as the CLI's other
    refusals have; then, on a first start, after printing the operator's key (shown
    once) amid gunicorn's errors: a start on another port showed none."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(Path(sys.executable).parent / "coalition"), "serve", "--port", str(port), "--no-scheduler"],
            env={**os.environ, "COALITION_DATABASE_URL": f"sqlite:///{tmp_path / 'busy.sqlite3'}"},
            capture_output=True, text=True, timeout=START_TIMEOUT, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert not (tmp_path / "busy.sqlite3").exists()  # said before a database, or a key, was made


@pytest.mark.skipif(POSTGRES_URL is not None, reason="serves SQLite: run with the SQLite suite")
def test_an_ipv6_address_is_served_and_written_in_brackets(tmp_path):
    """``--host ::1`` was bound as "::1:5000", which gunicorn read as no port at all."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "coalition"), "serve", "--host", "::1", "--port", str(port),
             "--no-scheduler"],
            env={**os.environ, "COALITION_DATABASE_URL": f"sqlite:///{tmp_path / 'v6.sqlite3'}",
                 "PYTHONUNBUFFERED": "1"},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            try:
                if requests.get(f"http://[::1]:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        assert f"Coalition on http://[::1]:{port}  (API docs at /api/docs)" in log_path.read_text()
    finally:
        _stop(process, log_path)


@pytest.mark.postgres
def test_serve_waits_for_a_database_started_beside_it(tmp_path):
    """Started with its database (containers started together), serve said it could not
    open it and exited; it now says it waits, and serves once the database answers."""
    with empty_database(tmp_path) as url:
        name, port = make_url(url).database, free_port()
        log_path = tmp_path / "serve.log"
        with connections_refused(name), log_path.open("w") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "coalition"), "serve", "--port", str(port), "--no-scheduler"],
                env={**os.environ, "COALITION_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
            # refused until it says it waits: a fixed pause was too short for a loaded machine's start
            deadline = time.monotonic() + START_TIMEOUT
            while "waiting up to 60 s for the database" not in log_path.read_text():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"it never said it waits:\n{log_path.read_text()}"
                time.sleep(0.1)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert process.poll() is None and time.monotonic() < deadline
                try:
                    if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
        finally:
            _stop(process, log_path)
    assert "First start: an operator key was created" in log_path.read_text()
    # on a line of its own, the server's reason in libpq's words alone (not the driver's class, nor
    # SQLAlchemy's "Background on this error" line)
    waiting = [line for line in log_path.read_text().splitlines() if "waiting up to" in line]
    assert len(waiting) == 1 and re.fullmatch(
        rf"waiting up to 60 s for the database postgresql\S*/{name}: connection failed: .*"
        rf' FATAL:  database "{name}" is not currently accepting connections', waiting[0]), waiting



@pytest.mark.postgres
def test_serve_does_not_wait_for_a_database_that_answers_no(tmp_path):
    """A server that says the database does not exist will say so after the wait too: serve
    stops before the wait's 60 s are up (a loaded machine took 25 s to start and stop it),
    and says nothing of waiting."""
    url = make_url(os.environ["COALITION_TEST_DATABASE_URL"]).set(database="coalition_no_such_database")
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "coalition"), "serve", "--port", str(free_port()), "--no-scheduler"],
        env={**os.environ, "COALITION_DATABASE_URL": url.render_as_string(hide_password=False)},
        capture_output=True, text=True, timeout=START_WAIT_SECONDS + START_TIMEOUT, cwd=tmp_path)
    assert result.returncode == 1 and time.monotonic() - started < START_WAIT_SECONDS
    assert "waiting" not in result.stdout
    assert "cannot open the database" in result.stderr and "does not exist" in result.stderr
