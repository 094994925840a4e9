"""Posting many transactions: an API batch, or the rows of an imported file (SPEC §6).

Each item is handled as if posted alone, in order, but items reach the
database in chunks: one transaction per chunk, whose rows the ledger reads
and writes set-based (:mod:`coalition.services.book`). A refused item
changes nothing in its chunk. A database failure is different: it aborts
the chunk's transaction, so the chunk is posted again one item per
transaction, and the failure stays with its own item while the others are
written.

Chunks commit in order: if the process dies, what was written is a prefix of
the items, and posting them all again answers the written ones as replays.
So does a chunk whose connection broke: it is posted once more, on a new
connection, which answers as replays what the broken one had committed. A
database still unavailable then stops the batch: it fails as a whole
(:class:`~coalition.db.Unavailable`) if it had written nothing, and otherwise
the items from that chunk on have the database's absence as their outcome,
as each would posted alone, so that the caller learns which were written.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from coalition.db import Unavailable
from coalition.domain.errors import CoalitionError
from coalition.services import ledger

log = logging.getLogger(__name__)

CHUNK = 100  # items per transaction: long enough to amortise, short enough to hold locks briefly


class NotWritten(CoalitionError):
    """An item the database failed on when posted alone: no fault of the client (500),
    and only this item is lost; the log has the database's error."""

    status = 500
    reason = "database_error"


def post_many(database, principal, requests: list) -> list:
    """The outcome of each request, in order: its :class:`~coalition.services.ledger.Posting`,
    the error that refused it, or the :class:`~coalition.db.Unavailable` that kept it from
    being posted (never all of them: a batch that wrote nothing raises it).

    A request may already be an exception (it failed validation upstream);
    it is its own outcome, so outcomes line up with the items.
    """
    outcomes = []
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start : start + CHUNK]
        try:
            outcomes += database.run_repeatable(_post_chunk, principal, chunk)
        except SQLAlchemyError:
            outcomes += [_post_alone(database, principal, request) for request in chunk]
        except Unavailable as away:
            if not any(_created(outcome) for outcome in outcomes):
                raise  # nothing written: the batch fails as one posting would
            return outcomes + [away] * (len(requests) - start)
    return outcomes


def _created(outcome) -> bool:
    return isinstance(outcome, ledger.Posting) and outcome.created


def _post_chunk(session, principal, requests: list) -> list:
    return ledger.post_chunk(session, principal, requests, datetime.now(UTC))


def _post_alone(database, principal, request):
    try:
        return database.run_repeatable(_post_chunk, principal, [request])[0]
    except SQLAlchemyError:
        log.exception("a posting failed in the database; it was not written")
        return NotWritten("the database failed; this item was not written")
