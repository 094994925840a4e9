"""Posting many transactions: an API batch, or the rows of an imported file (SPEC §6).

Each item is handled as if posted alone, in order, but items reach the
database in chunks: one transaction per chunk, whose rows the ledger reads
and writes set-based (:mod:`coalition.services.book`). A refused item
changes nothing in its chunk. A database failure is different: it aborts
the chunk's transaction, so the chunk is posted again one item per
transaction, and the failure stays with its own item while the others are
written: so too for a SQLite file damaged in the pages one item reads
(:class:`~coalition.db.Damaged`, that item's outcome), where the next item's
pages may be sound.

Chunks commit in order: if the process dies, what was written is a prefix of
the items, and posting them all again answers the written ones as replays.
So does a chunk whose connection broke: it is posted once more, on a new
connection, which answers as replays what the broken one had committed. A
database still unavailable then stops the batch: it fails as a whole
(:class:`~coalition.db.Unavailable`) if it had written nothing, and otherwise
the items from that chunk on have the database's absence as their outcome,
as each would posted alone, so that the caller learns which were written. So
do the items from the chunk on that found the batch's key revoked: each chunk
checks its key once it holds its locks, and a revocation waits for the chunk
in flight.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from coalition import auth
from coalition.db import Damaged, Unavailable
from coalition.domain.errors import CoalitionError
from coalition.services import ledger

log = logging.getLogger(__name__)

CHUNK = 100  # items per transaction: long enough to amortise, short enough to hold locks briefly


class NotWritten(CoalitionError):
    """An item the database failed on when posted alone: no fault of the client, and
    only this item is lost; the log has the database's error."""

    reason = "database_error"


def post_many(database, principal, requests: list) -> list:
    """The outcome of each request, in order: its :class:`~coalition.services.ledger.Posting`,
    the error that refused it, or the :class:`~coalition.db.Unavailable` that kept it from
    being posted (never all of them: a batch that wrote nothing raises it).

    A request may already be an exception (it failed validation upstream);
    it is its own outcome, so outcomes line up with the items.
    """
    outcomes: list = []
    try:
        for start in range(0, len(requests), CHUNK):
            _post_into(outcomes, database, principal, requests[start : start + CHUNK])
    except (Unavailable, auth.Unauthenticated) as stopped:
        return _unposted(outcomes, requests[len(outcomes) :], stopped)
    return outcomes


def _post_into(outcomes: list, database, principal, chunk: list) -> None:
    """Add the chunk's outcomes as each is known: posted in one transaction, or after a
    database error one item per transaction, so that the failure stays with its own item
    (and the items posted before the database went away are counted)."""
    try:
        outcomes += database.run_repeatable(_post_chunk, principal, chunk)
    except (SQLAlchemyError, Damaged):
        for request in chunk:
            outcomes.append(_post_alone(database, principal, request))


def _unposted(outcomes: list, rest: list, stopped: Exception) -> list:
    """The outcomes once the database went away or the key was revoked: each item not yet
    posted has that as outcome, as it would posted alone now, but for one refused before
    (its fields), whose refusal stands. A batch that wrote nothing fails as a whole, as
    one posting would, which leaves nothing written behind it (SPEC §10)."""
    if not any(isinstance(each, ledger.Posting) and each.created for each in outcomes):
        raise stopped
    return outcomes + [each if isinstance(each, Exception) else stopped for each in rest]


def _post_chunk(session, principal, requests: list) -> list:
    return ledger.post_chunk(session, principal, requests, datetime.now(UTC))


def _post_alone(database, principal, request):
    try:
        return database.run_repeatable(_post_chunk, principal, [request])[0]
    except Damaged as error:  # a page this item reads: the next item's may be sound
        return error
    except SQLAlchemyError:
        log.exception("a posting failed in the database; it was not written")
        return NotWritten("the database failed; this item was not written")
