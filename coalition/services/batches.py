"""Posting many transactions: an API batch, or the rows of an imported file (SPEC §6).

Each item is handled as if posted alone, in order, but items reach the
database in chunks: one transaction per chunk, which takes the calendar lock
and reads the catalog once. That is safe because a posting refuses (raises a
domain error) before it writes anything, so a refused item leaves nothing
behind in its chunk. A database failure is different: it aborts the chunk's
transaction, so the chunk is posted again one item per transaction, and the
failure stays with its own item while the others are written.

Chunks commit in order: if the process dies, what was written is a prefix of
the items, and posting them all again answers the written ones as replays.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from coalition.domain.errors import CoalitionError
from coalition.services import ledger, periods

log = logging.getLogger(__name__)

CHUNK = 25  # items per transaction: long enough to amortise, short enough to hold locks briefly


def post_many(database, principal, requests: list, present) -> list:
    """The outcome of each request, in order: ``present(session, posting)`` or the error.

    A request may already be an exception (it failed validation upstream);
    it is its own outcome, so outcomes line up with the items.
    """
    outcomes = []
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start : start + CHUNK]
        try:
            outcomes += database.run(_post_chunk, principal, chunk, present)
        except SQLAlchemyError:
            outcomes += [_post_alone(database, principal, request, present) for request in chunk]
    return outcomes


def _post_chunk(session, principal, requests: list, present) -> list:
    periods.lock_calendar(session)
    return [_outcome(session, principal, request, present) for request in requests]


def _outcome(session, principal, request, present):
    if isinstance(request, Exception):
        return request
    try:
        return present(session, ledger.post(session, principal, request, datetime.now(UTC)))
    except CoalitionError as error:
        return error


def _post_alone(database, principal, request, present):
    try:
        return database.run(_outcome, principal, request, present)
    except SQLAlchemyError as error:
        log.exception("a posting failed in the database; it was not written")
        return error
