"""Each final statement against its SHA-256 and the id it is read by."""

import hashlib
import json

from sqlalchemy import select

from coalition.db.models import Statement


def problems(connection):
    """Each final statement against its SHA-256, and against the id it is read by: its
    JSON holds its id, hashed with it (:mod:`coalition.services.statements`; not one
    issued by a release before 2026-12-06), and a row renumbered since (a restore, SQL
    typed by hand) would answer ``/statements/{id}`` naming another id than asked for."""
    rows = connection.execute(
        select(Statement.id, Statement.number, Statement.sha256, Statement.body).order_by(
            Statement.id
        )
    )
    for statement_id, number, sha256, body in rows:
        if hashlib.sha256(body.encode()).hexdigest() != sha256:
            yield f"statement {number}: its SHA-256 is not that of its JSON"
        named = json.loads(body).get("id", statement_id)  # an earlier release's has none
        if named != statement_id:
            yield f"statement {number}: its JSON names id {named}; it is stored as {statement_id}"
