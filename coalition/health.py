"""Health checks for whatever runs the service, asked without a key.

``/healthz`` says the process answers and never touches the database, so an
outage of the database does not get every instance restarted by its
orchestrator. ``/readyz`` says whether requests can be served now: the
database answers, takes writes, and has this release's schema. An instance
whose database goes away or turns read-only (a standby after a failover), or
that a newer release's migration has overtaken, is kept out of a load
balancer's rotation meanwhile. (``serve`` itself does not start without its
database: it migrates first.)

A probe asks every few seconds, so a failed check is not logged: its answer
says why, and requests failing meanwhile are logged already.
"""

from flask import Blueprint, current_app
from sqlalchemy.exc import DBAPIError

from coalition import database_of
from coalition.api import RETRY_AFTER_SECONDS, error_body
from coalition.db import Unavailable, migrate

blp = Blueprint("health", __name__)

READ_ONLY = "SELECT current_setting('transaction_read_only')"


@blp.get("/healthz")
def healthz():
    return {"status": "ok"}


@blp.get("/readyz")
def readyz():
    database = database_of(current_app)
    try:
        current = migrate.is_current(database)
        read_only = database.peek(READ_ONLY) == "on"  # None on SQLite
    except (DBAPIError, Unavailable):
        return _not_ready("database_unavailable", "the database cannot be reached")
    if read_only:
        return _not_ready("database_unavailable", "the database takes no writes (read-only)")
    if not current:
        return _not_ready(
            "schema_not_current",
            "the database does not have this release's schema:"
            " `coalition db upgrade` brings it there",
        )
    return {"status": "ready"}


def _not_ready(reason: str, why: str):
    body = error_body(503, f"not ready: {why}", reason=reason)
    return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
