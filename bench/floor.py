"""The floor under figure (a): the service's HTTP stack doing a posting's round trips, and nothing else.

gunicorn serves this tiny Flask app with the service's own workers and
threads, and the load generator posts it the same bodies. Each POST makes
the round trips a posting of that type makes on PostgreSQL (``python -m
bench.profile`` lists them): authentication's read outside the transaction,
then BEGIN, the lock, the reads, one INSERT of the transaction's row into
the ceiling table, and COMMIT. It validates nothing, decides nothing and
goes through neither SQLAlchemy nor marshmallow: its rate is what gunicorn,
Flask and psycopg cost on this machine before the service does any work, so
a goal above it is out of reach of any service built on them here.
"""

import itertools
import json
import os
import threading
from datetime import UTC, datetime

import psycopg
from flask import Flask, request

from bench.load import INSERT

DSN = os.environ.get("COALITION_BENCH_FLOOR_DSN", "")
TABLE = os.environ.get("COALITION_BENCH_FLOOR_TABLE", "")

#: Statements a posting sends besides BEGIN and COMMIT (authentication's read
#: included), by type, as counted by ``bench.profile``.
STATEMENTS = {"earn": 4, "burn": 6, "earn_reversal": 7}
PARTNER = "floor"

app = Flask(__name__)
_local = threading.local()
_ids = itertools.count(1)
_insert = INSERT.format(table=TABLE)
_read = f"SELECT id FROM {TABLE} WHERE partner_id = %s AND external_id = %s"


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        connection = _local.connection = psycopg.connect(DSN, autocommit=True)
    return connection


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/api/v1/transactions")
def post():
    body = request.get_json()
    connection = _connection()
    connection.execute("SELECT 1")  # authentication's read
    row_id = (os.getpid() << 24) + next(_ids)
    now = datetime.now(UTC)
    with connection.transaction():
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (body["external_id"],)
        )
        for _ in range(STATEMENTS.get(body["type"], 4) - 3):
            connection.execute(_read, (PARTNER, body["external_id"]))
        connection.execute(
            _insert,
            (
                row_id,
                PARTNER,
                body["external_id"],
                body.get("member_id", ""),
                now,
                now,
                body.get("amount"),
                body.get("currency"),
                body.get("points", 0),
                now.strftime("%Y-%m"),
                "0" * 64,
            ),
        )
    answer = {"id": row_id, "type": body["type"], "recorded_at": now.isoformat()}
    return app.response_class(json.dumps(answer), status=201, mimetype="application/json")
