"""Health checks for whatever runs the service, asked without a key.

``/healthz`` says the process answers and never touches the database, so an
outage of the database does not get every instance restarted by its
orchestrator. ``/readyz`` says whether requests can be served now: the
database answers and has this release's schema. An instance started against a
database that is away, or that no one has migrated to this release yet, is
kept out of a load balancer's rotation instead of answering requests with
503s or errors on a missing column.
"""

from flask import Blueprint, current_app
from sqlalchemy.exc import DBAPIError

from coalition import database_of
from coalition.api import error_body
from coalition.db import Unavailable, migrate

blp = Blueprint("health", __name__)

SCHEMA_NOT_CURRENT = (
    "the database does not have this release's schema: `coalition db upgrade` brings it there"
)


@blp.get("/healthz")
def healthz():
    return {"status": "ok"}


@blp.get("/readyz")
def readyz():
    try:
        current = migrate.is_current(database_of(current_app))
    except DBAPIError as error:  # away, or refusing this service: the API's 503 either way
        reason = next(iter(str(error.orig).strip().splitlines()), "no answer")
        raise Unavailable(f"not ready: the database cannot be used ({reason})") from error
    if not current:
        return error_body(503, SCHEMA_NOT_CURRENT, reason="schema_not_current"), 503
    return {"status": "ready"}
