"""A real gunicorn server over a given database, for tests with parallel HTTP clients.

:func:`live_server` starts ``gunicorn -k gthread`` with several workers as a
subprocess on a free port of 127.0.0.1, waits until ``/healthz`` answers, and
stops it at the end (SIGTERM, then SIGKILL after a timeout). Every wait is
bounded. The server's log goes to a file; :attr:`LiveServer.log_tail` shows
its end, and a failed start raises with it.

Usage (each test module that needs one defines its fixture around it)::

    with live_server(database_url, log_path) as server:
        requests.get(server.url + "/healthz")
"""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for gunicorn to boot and /healthz to answer
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


class ServerFailed(RuntimeError):
    """The server did not start (or died); the message carries its log's tail."""


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self, *needles: str) -> list[str]:
        """Log lines containing any of ``needles`` (e.g. "Traceback", "ERROR")."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if any(needle in line for needle in needles)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _command(port: int, workers: int, threads: int, preload: bool) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{HOST}:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--timeout", "60",
        "--graceful-timeout", "5",
        "--log-level", "info",
        "--error-logfile", "-",
        "--no-control-socket",  # else every instance shares ~/.gunicorn/gunicorn.ctl
        *(["--preload"] if preload else []),
        "coalition:create_app()",
    ]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def _wait_healthy(server: LiveServer, deadline: float) -> bool:
    """True once /healthz answers 200; False if the process exits first."""
    with requests.Session() as session:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if session.get(server.url + "/healthz", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
    raise ServerFailed(f"gunicorn did not answer /healthz within {START_TIMEOUT}s:\n{server.log_tail()}")


@contextmanager
def live_server(database_url: str, log_path: Path, workers: int = 4, threads: int = 8,
                preload: bool = True):
    """Serve the app on ``database_url`` with gunicorn until the block ends.

    ``preload`` builds the app once in the gunicorn master before forking
    the workers (``--preload``): on a 2-core machine that boots in about a
    third of the time. It is safe because ``create_app`` opens no database
    connection, so each worker still opens its own connections after the
    fork; pass ``preload=False`` to boot each worker separately, as
    ``coalition serve`` does.
    """
    environment = {
        **os.environ,
        "COALITION_DATABASE_URL": database_url,
        "COALITION_SCHEDULER": "off",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = Path(log_path)
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                _command(port, workers, threads, preload),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=Path(__file__).resolve().parents[2],
            )
        server = LiveServer(f"http://{HOST}:{port}", process, log_path)
        try:
            healthy = _wait_healthy(server, time.monotonic() + START_TIMEOUT)
        except BaseException:
            _stop(process)
            raise
        if healthy:
            break
        _stop(process)
        if attempt == START_ATTEMPTS:
            raise ServerFailed(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
    try:
        yield server
    finally:
        _stop(process)
