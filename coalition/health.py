"""Health checks for whatever runs the service, asked without a key, and the
service's front door, ``/``: where each of its parts is, for whoever opens the
address in a browser or with curl.

``/healthz`` says the process answers and never touches the database, so an
outage of the database does not get every instance restarted by its
orchestrator. ``/readyz`` says whether requests can be served now: the
database answers, with this release's schema. An instance whose database
goes away, or whose schema is another release's (not upgraded yet, or
upgraded by a newer release whose writes this one would not make), is
kept out of a load balancer's rotation meanwhile. (``serve`` itself
upgrades the schema first, so it waits up to a minute for its database at
start, then gives up.)

A SQLite file found damaged where /readyz reads it (no database at all, or its
schema's pages) is not ready, and the answer says to restore it; one damaged
deeper down, in pages only some requests read, is: every instance reads the
same file, and the requests that read other pages are served (each that reads
a damaged page is answered 503, and logged).

A database that takes no writes (a standby after a failover, a SQLite file
made read-only) is ready: it is read-only for every instance alike, so
taking them all out would stop the balance lookups that still work. The
answer says ``"writes": false`` (:meth:`~coalition.db.Database.read_only`),
and each write is answered 503 meanwhile.

A probe asks every few seconds, so a failed check is not logged: its answer
says why (SPEC §10's error body), and requests failing meanwhile are logged.
"""

from flask import Blueprint, current_app
from sqlalchemy.exc import DBAPIError

from coalition import database_of
from coalition.api.errors import unavailable
from coalition.db import Damaged, Unavailable, migrate

blp = Blueprint("health", __name__)


@blp.get("/")
def index():
    """Where things are, for whoever opens the service's address before reading its docs."""
    return {
        "service": "coalition",
        "api": "/api/v1/",
        "openapi": "/api/openapi.json",
        "docs": "/api/docs",
        "console": "/console/",
        "health": "/healthz",
        "ready": "/readyz",
    }


@blp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz():
    """Readiness: the database answers, with a schema this release can serve."""
    database = database_of(current_app)
    try:
        revisions = migrate.revisions(database)
        read_only = database.read_only()
    except Damaged as error:  # no instance serves a file that is not a database
        return unavailable(f"not ready: {error}")
    except (DBAPIError, Unavailable):
        return unavailable("not ready: the database cannot be reached")
    if (why := migrate.mismatch(revisions)) is not None:
        return unavailable(f"not ready: {why}", "schema_not_current")
    return {"status": "ready", "writes": not read_only}
