"""PostgreSQL for the benchmark: a throwaway cluster, a fresh database, server facts.

Without ``--database-url`` the benchmark runs :class:`Cluster`: ``initdb`` into
a temporary directory (as the ``postgres`` OS user through ``runuser`` when
running as root, as CI's ``.ci/run`` does), a server on a free port of
127.0.0.1 with ``fsync=off`` (said so in the report: commits are not made
durable, which flatters every write figure and its ceiling alike), stopped and
deleted however the run ends. With a URL, a fresh database is created on that
server and dropped at the end.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

HOST = "127.0.0.1"
START_ATTEMPTS = 3
START_TIMEOUT = 60  # seconds for pg_ctl -w

#: Settings that matter for these figures; printed in the report.
REPORTED_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
    "max_parallel_workers_per_gather",
    "jit",
    "autovacuum",
)


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 4 * 1024**3


def cluster_settings() -> dict[str, str]:
    """Server settings of the throwaway cluster: a tuned but ordinary server, fsync off."""
    memory_mb = memory_bytes() // 1024**2
    return {
        "listen_addresses": HOST,
        "fsync": "off",
        "max_connections": "200",
        "shared_buffers": f"{max(128, min(memory_mb // 4, 4096))}MB",
        "effective_cache_size": f"{max(256, memory_mb // 2)}MB",
        "work_mem": "32MB",
        "maintenance_work_mem": f"{max(64, min(memory_mb // 16, 1024))}MB",
        "max_wal_size": "8GB",
        "checkpoint_timeout": "30min",
    }


def find_pg_bin(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: [int(part) if part.isdigit() else part for part in path.split("/")],
    )
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("PostgreSQL binaries not found: pass --pg-bin or --database-url")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1; :meth:`stop` deletes it."""

    def __init__(self, pg_bin: str | None = None, log=print):
        self.pg_bin = find_pg_bin(pg_bin)
        self.log = log
        self.datadir: str | None = None
        self.port: int | None = None
        self.running = False
        self.as_root = os.geteuid() == 0

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else list(command)

    def start(self) -> str:
        """initdb, start, and return the URL of its ``postgres`` database."""
        self.datadir = tempfile.mkdtemp(prefix="coalition-bench-pg.")
        if self.as_root:
            subprocess.run(["id", "-u", "postgres"], check=True, capture_output=True)
            shutil.chown(self.datadir, "postgres")
        subprocess.run(
            self._as_owner(
                f"{self.pg_bin}/initdb",
                "-D",
                self.datadir,
                "-U",
                "coalition",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            options = " ".join(
                f"-c {name}={value}"
                for name, value in {**cluster_settings(), "port": self.port}.items()
            )
            result = subprocess.run(
                self._as_owner(
                    f"{self.pg_bin}/pg_ctl",
                    "-D",
                    self.datadir,
                    "-l",
                    f"{self.datadir}/server.log",
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "-o",
                    f"{options} -k {self.datadir}",
                    "start",
                ),
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT + 30,
                check=False,
            )
            if result.returncode == 0:
                self.running = True
                return self.url
            if attempt == START_ATTEMPTS:
                raise RuntimeError(
                    f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n{self.log_tail()}"
                )
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        return f"postgresql://coalition@{HOST}:{self.port}/postgres"

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(f"{self.datadir}/server.log", errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.datadir is None:
            return
        if self.running:
            subprocess.run(
                self._as_owner(
                    f"{self.pg_bin}/pg_ctl",
                    "-D",
                    self.datadir,
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ),
                capture_output=True,
                timeout=120,
                check=False,
            )
            self.running = False
        shutil.rmtree(self.datadir, ignore_errors=True)
        self.datadir = None


def conninfo(url: str) -> str:
    """A libpq URL from an SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    scheme, _, rest = url.partition("://")
    return (
        "postgresql://" + rest if scheme.startswith("postgresql") or scheme == "postgres" else url
    )


def with_database(url: str, name: str) -> str:
    """The same server URL with another database."""
    parts = urlsplit(conninfo(url))
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def fresh_database(server_url: str, keep: bool = False):
    """Create ``coalition_bench_<random>`` on the server; drop it afterwards."""
    name = f"coalition_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo(server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name), name
    finally:
        if not keep:
            for attempt in range(3):
                try:
                    with psycopg.connect(conninfo(server_url), autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except psycopg.Error:
                    time.sleep(1)


def server_facts(url: str) -> dict:
    with psycopg.connect(conninfo(url), autocommit=True) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        rows = connection.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
            [list(REPORTED_SETTINGS)],
        ).fetchall()
        superuser = connection.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
    settings = {}
    for name, setting, unit in rows:
        settings[name] = _pretty(setting, unit)
    return {
        "version": version,
        "settings": {n: settings[n] for n in REPORTED_SETTINGS if n in settings},
        "superuser": bool(superuser),
    }


def _pretty(setting: str, unit: str | None) -> str:
    if unit in ("8kB", "kB", "MB") and setting.lstrip("-").isdigit():
        kb = int(setting) * {"8kB": 8, "kB": 1, "MB": 1024}[unit]
        for size, suffix in ((1024**2, "GB"), (1024, "MB")):
            if kb >= size and kb % size == 0:
                return f"{kb // size}{suffix}"
        return f"{kb}kB"
    if unit == "s" and setting.isdigit() and int(setting) % 60 == 0:
        return f"{int(setting) // 60}min"
    return setting + (unit or "") if unit and unit not in ("8kB", "kB", "MB") else setting
