"""Who changed what the operator configures, and when: settings, partners, rates,
keys, and the close of each period.

A settlement depends on every one of these, and a finance team asking why
a statement says what it says needs to know who set the rate behind it.
Any flush that adds or changes one of those rows records the change in the
same transaction, from whatever code made it, so no path escapes the record
and a change refused or rolled back leaves none. Who made it is the
:class:`Actor` of the running context: a request's key (``api``), a command
(``cli``) or a scheduler job (``scheduler``); ``system`` where none is said.

Every such flush also stamps the catalog's generation, a lock on the one
settings row held until commit (:mod:`coalition.services.catalog`): changes
are written one transaction after another, so their ids follow the order in
which they were committed and a cursor never passes one still in flight.
"""

import json
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import event, func, insert, inspect, select
from sqlalchemy.orm import Session

from coalition.db import models, on_postgresql
from coalition.domain import money
from coalition.services import pages

SUBJECTS = models.REFERENCE_DATA  # the rows the catalog caches, by the record's names
# what a reader of the record has no use for (by attribute name): secrets, stamps,
# bookkeeping, and a close's whole settlement (its statements hold it)
UNRECORDED = {
    "key_hash",
    "generation",
    "last_transaction_id",
    "created_at",
    "settlement",
}
UNRECORDED_WHEN_CREATED = UNRECORDED | {"id"}  # the change's subject_id


VIAS = ("api", "cli", "scheduler", "system")


@dataclass(frozen=True)
class Actor:
    via: str  # one of VIAS
    key_id: str | None = None  # through the API


SYSTEM = Actor("system")  # where no request, command or job says who acts
_acting: ContextVar[Actor] = ContextVar("coalition.actor", default=SYSTEM)


@contextmanager
def acting(actor: Actor):
    """Record the changes made inside the block as ``actor``'s."""
    token = act_as(actor)
    try:
        yield
    finally:
        stop_acting(token)


def act_as(actor: Actor) -> Token:
    """Record what this context changes from now on as ``actor``'s: a request's key,
    known once it is authenticated. The token gives back who acted before
    (:func:`stop_acting`), when the request ends."""
    return _acting.set(actor)


def stop_acting(token: Token) -> None:
    _acting.reset(token)


@event.listens_for(Session, "after_flush")
def _record(session, _context) -> None:
    """Record each configured row the flush added or changed (the session still holds
    what it flushed, with each attribute's history)."""
    changes = [
        *(_created(row) for row in session.new if type(row) in SUBJECTS),
        *(_changed(row) for row in session.dirty if type(row) in SUBJECTS),
    ]
    changes = [change for change in changes if change is not None]
    if changes:
        actor = _acting.get()
        session.connection().execute(
            insert(models.Change).values(at=_now(session)),
            [{"via": actor.via, "key_id": actor.key_id, **change} for change in changes],
        )


def _now(session):
    """When changes are recorded: on PostgreSQL by the database's clock as they are
    written, as the postings a suspension or a close waited for are dated (decisions.md,
    "Dated by the database's clock"); by an instance's own clock behind it, a suspension
    read as before the postings it came after. On SQLite by this process's clock."""
    return func.clock_timestamp() if on_postgresql(session) else datetime.now(UTC)


def _created(row) -> dict:
    fields = {
        column.key: getattr(row, column.key)
        for column in inspect(row).mapper.column_attrs
        if column.key not in UNRECORDED_WHEN_CREATED
    }
    action = "close" if isinstance(row, models.Period) else "create"
    return _change(row, action, fields)


def _changed(row) -> dict | None:
    """The fields changed, each as [before, after]; None when nothing really changed
    (a field set to the value it had) or when it is a closed period's KPI counts."""
    state = inspect(row)
    fields = {}
    for column in state.mapper.column_attrs:
        history = state.attrs[column.key].history
        if column.key in UNRECORDED or not history.added:
            continue
        before = history.deleted[0] if history.deleted else None
        if before != history.added[0]:
            fields[column.key] = [before, history.added[0]]
    if not fields:
        return None
    action = "revoke" if fields.keys() == {"revoked_at"} else "update"
    return _change(row, action, fields)


def _change(row, action: str, fields: dict) -> dict:
    subject_id = "settings" if isinstance(row, models.Settings) else str(row.id)
    return {
        "subject": SUBJECTS[type(row)],
        "subject_id": subject_id,
        "action": action,
        "detail": json.dumps(fields, default=_written, ensure_ascii=False, sort_keys=True),
    }


def _written(value) -> str:
    """A value JSON has no type for, as the API writes it: instants in RFC 3339, decimals
    with the decimals they were given, never in exponent form."""
    if isinstance(value, datetime):
        return value.isoformat()
    return money.as_written(value) if isinstance(value, Decimal) else str(value)


def listing(session, filters: dict, paging: pages.Paging) -> dict:
    """Changes in the order they were made (or newest first), a page at a time."""
    C = models.Change
    query = select(C)
    for field in ("subject", "subject_id", "key_id", "via"):
        if filters.get(field) is not None:
            query = query.where(getattr(C, field) == filters[field])
    page, next_cursor = pages.page(session, pages.within(query, C.at, filters), C.id, paging)
    return {"items": [_view(row) for row in page], "next_cursor": next_cursor}


def _view(row: models.Change) -> dict:
    return {
        "id": row.id,
        "at": row.at,
        "via": row.via,
        "key_id": row.key_id,
        "subject": row.subject,
        "subject_id": row.subject_id,
        "action": row.action,
        "fields": json.loads(row.detail),
    }
