"""Serving with gunicorn from ``coalition serve``.

Workers each build their own app, and the scheduler runs in a process of
its own, forked from the gunicorn master before any worker: the master never
opens the database, so no database connection crosses a fork (SQLite forbids
it, and an inherited connection closed in a child silently drops that
child's file locks). The jobs take a database lock, so several ``serve``
processes may run side by side.

A request gunicorn refuses before Flask sees it (a request line over 4 KB,
a raw non-ASCII byte in the path, a header too large) is answered in JSON
too, by :class:`Worker` (SPEC §10: every error is JSON).
"""

import json
import logging
import os
import re
import signal
import socket
import sys
import time
import traceback

from gunicorn import arbiter, glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.sock import close_sockets
from gunicorn.workers.gthread import ThreadWorker

from coalition import create_app, database_of, logs, processes
from coalition.api.errors import error_body
from coalition.auth import KEY_PREFIX

STOP_SECONDS = 5.0
RESTART_SECONDS = 10.0  # the scheduler is started at most this often


class Server(BaseApplication):
    def __init__(self, options: dict, scheduler: bool, banner: str):
        self.options = options
        self.scheduler = scheduler
        self.banner = banner
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # recent gunicorn listens at one control socket per user (gunicorn.ctl): each
            # instance on a host took it over from the last, and stopping one deleted it
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("when_ready", self._ready)
        if self.scheduler:
            self.cfg.set("on_exit", Arbiter.stop_scheduler)

    def _ready(self, master: "Arbiter") -> None:
        """Listening: say where (only now: a port in use ended the start after the
        address was printed), then start the scheduler."""
        print(self.banner, flush=True)
        if self.scheduler:
            master.start_scheduler()

    def load(self):
        return _served_app()

    def run(self):
        """gunicorn's ``BaseApplication.run``, with :class:`Arbiter` as the master."""
        try:
            Arbiter(self).run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr, flush=True)
            sys.exit(1)


class Arbiter(arbiter.Arbiter):
    """gunicorn's master, which also runs the scheduler, and starts it again if it ends.

    gunicorn reaps any child that exits but replaces only its workers: a
    scheduler killed (the kernel's out-of-memory killer, a stray ``kill``) left
    the instance serving without expiry or auto-close, and nothing said so.
    The master looks once a second, as it looks after its workers.
    """

    scheduler_pid: int | None = None
    scheduler_started = 0.0

    def start(self):
        """gunicorn's start, where a port it cannot listen on is an error the CLI says.

        gunicorn logs each failed try and exits with 1; the command's own
        ``Error:`` line names the address and the likely causes."""
        try:
            super().start()
        except SystemExit:
            if self.LISTENERS:
                raise
            raise RuntimeError(
                f"cannot listen on {', '.join(self.cfg.bind)}: "
                "the port is in use, or the address is not one of this machine's"
            ) from None

    def manage_workers(self):
        super().manage_workers()
        if self.scheduler_pid is None or self._scheduler_running():
            return
        if time.monotonic() >= self.scheduler_started + RESTART_SECONDS:
            self.log.error(
                "the scheduler (pid %s) has ended; starting it again", self.scheduler_pid
            )
            self.start_scheduler()

    def start_scheduler(self) -> None:
        """Fork the scheduler. A bare fork, not multiprocessing: the workers, forked
        later, would inherit a multiprocessing child and try to join it at exit."""
        master = os.getpid()
        pid = os.fork()
        if pid == 0:  # the scheduler: never returns into the master's code
            try:
                close_sockets(self.LISTENERS, unlink=False)  # the port is the workers'
                _run_scheduler(master)
            except BaseException:  # noqa: BLE001 — reported, then the process ends
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        self.scheduler_pid, self.scheduler_started = pid, time.monotonic()

    def stop_scheduler(self) -> None:
        if self.scheduler_pid is None:
            return
        pid, self.scheduler_pid = self.scheduler_pid, None
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)
        except (ProcessLookupError, ChildProcessError):
            pass  # gone, and reaped already (gunicorn's master reaps any child)

    def _scheduler_running(self) -> bool:
        """False once it has ended, whoever reaped it: this check, or gunicorn's."""
        try:
            return os.waitpid(self.scheduler_pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False


_STOPPING = (signal.SIGTERM, signal.SIGINT)  # the master's stop; a Ctrl-C in the terminal


class _Stopped(Exception):
    """The scheduler process was told to end."""


def _stopped(signum, frame):
    for number in _STOPPING:  # the master's stop follows a Ctrl-C, and kills it after 5 s
        signal.signal(number, signal.SIG_IGN)
    raise _Stopped


def _run_scheduler(master_pid: int) -> None:
    """The jobs, until the master stops them or is gone, however it ended."""
    from coalition import jobs

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)  # not gunicorn's master handlers
    # a stop while the jobs start (their first runs begin at once) is held, then logged
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    app = scheduler = None
    try:
        app = _served_app()
        scheduler = jobs.start(app)
        for number in _STOPPING:
            signal.signal(number, _stopped)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)
        processes.until_parent_gone(master_pid)
    except _Stopped:
        pass
    finally:
        for number in _STOPPING:
            signal.signal(number, signal.SIG_IGN)
        if scheduler is not None:
            jobs.stop(scheduler)
        if app is not None:
            # closed before os._exit, the last connection to a SQLite file folds its -wal into it
            # and deletes it and its -shm: left beside the file, a -wal is read as part of a
            # backup put in its place (operations.md, "Data to keep")
            database_of(app).dispose()


def _served_app():
    """The app of a worker or of the scheduler, whose database ``serve`` made and migrated
    before starting either: a SQLite file away when one starts (a worker booted again after
    a crash, a scheduler started again) is not made anew, empty (operations.md, "A damaged
    SQLite file")."""
    app = create_app()
    database_of(app).open_only_where_it_is()
    return app


class Worker(ThreadWorker):
    """gunicorn's threaded worker, writing the errors gunicorn answers itself as JSON.

    gunicorn has no setting for the body of those answers: they are the HTML
    of ``gunicorn.util.write_error``, which its worker calls by name, so each
    worker process replaces that function with :func:`write_json_error`.
    """

    def init_process(self):
        util.write_error = write_json_error
        super().init_process()

    def handle_quit(self, sig, frame):
        """Quit once the requests in flight are answered, leaving the thread pool alone.

        A Ctrl-C in a terminal signals the whole group: a worker gets SIGINT, then
        the master's SIGQUIT, each handled here in turn. gunicorn's handler shuts
        the pool down under the pool's lock, and a signal handled while that lock
        was held (by the first handler, or by the worker's loop handing the pool a
        connection) waited for it for ever: the master killed the worker after
        30 s, logging it as out of memory (now and then: a helper's loop of stops
        caught it five times, with both handlers on the stack). The pool needs no
        shutdown here: the interpreter, exiting, lets its threads finish the
        requests they hold, as it did after gunicorn's."""
        super(ThreadWorker, self).handle_quit(sig, frame)  # gunicorn's, but for the pool

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stopping, also close this worker's copy of the listening socket.

        The master closes its own at SIGTERM, but while a worker drained its
        requests the kernel went on completing new connections into the backlog,
        each reset unanswered when the worker exited: a balancer does not send a
        POST again after a reset, where it tries another instance at once when
        the connection is refused."""
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """What ``gunicorn.util.write_error`` sends, with the API's error body (SPEC §10)."""
    body = json.dumps(error_body(status_int, mesg or reason)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class LogWithoutKeys(glogging.Logger):
    """gunicorn's access and error logs with API keys left out.

    A key belongs in the Authorization header, which the access log does not
    show; a client that sends it in the URL (``?access_token=coal_…``) is
    refused, and its key would otherwise stay in the log for anyone who reads
    it. A request line gunicorn refuses itself (a space or a control character
    in the URL) is written to the error log as it was sent, so that log's
    messages leave keys out too.
    """

    # the request line is logged as sent, so any character of a key may come
    # percent-encoded ("coal%5F…", "%63oal_…"), in either case of hex digits
    KEY = re.compile(
        "("
        + "".join(f"(?:{re.escape(char)}|(?i:%{ord(char):02X}))" for char in KEY_PREFIX)
        + r")[A-Za-z0-9_%-]+"
    )

    def setup(self, cfg):
        super().setup(cfg)
        self.error_log.addFilter(_without_keys)  # set up again on a reload: added once

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: self.KEY.sub(r"\1…", value) if _may_hold_key(value) else value
            for name, value in atoms.items()
        }


def _without_keys(record: logging.LogRecord) -> bool:
    """Rewrite an error log record whose message could hold a key without it."""
    message = record.getMessage()
    if _may_hold_key(message):
        record.msg, record.args = LogWithoutKeys.KEY.sub(r"\1…", message), ()
    return True


def _may_hold_key(value) -> bool:
    """Whether an atom of the access log, or a message, could hold a key: its prefix as
    written, or any character percent-encoded. Most atoms are neither, and the search is then
    skipped: it had cost every request 33 µs, more than gunicorn's own line."""
    return isinstance(value, str) and (KEY_PREFIX in value or "%" in value)


def address(host: str, port: int) -> str:
    """``host:port`` as gunicorn binds it and a browser opens it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def banner(host: str, port: int, jobs: str) -> str:
    """What ``serve`` prints once it listens. A wildcard host listens on every address
    but is none itself (browsers refuse ``0.0.0.0``), so the URL given is the loopback's."""
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host)
    lines = [f"Coalition on http://{address(loopback or host, port)}  (API docs at /api/docs)"]
    if loopback:
        lines.append(f"Listening on every address of this machine, port {port}")
    return "\n".join([*lines, f"Jobs: {jobs}"])


def check_listening(host: str, port: int) -> None:
    """Raise :class:`OSError` if this machine cannot listen on the address.

    Asked before anything starts: on a first start the operator's key, shown once,
    would otherwise be printed and then lost among gunicorn's errors, the schema
    migrated and a new SQLite file made, all for a server that never served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        probe.bind((host, port))


def run(host: str, port: int, workers: int, scheduler: bool, jobs: str) -> None:
    logs.configure()
    options = {
        "bind": address(host, port),
        "workers": workers,
        "worker_class": "coalition.server.Worker",
        "threads": 8,
        # longer than a proxy's or load balancer's idle timeout (commonly 60 s), so
        # it, not gunicorn, closes idle connections: gunicorn's default of 2 s let
        # a request sent just as gunicorn closed one be reset unread
        "keepalive": 75,
        "accesslog": "-",
        "logger_class": "coalition.server.LogWithoutKeys",
    }
    Server(options, scheduler, banner(host, port, jobs)).run()
