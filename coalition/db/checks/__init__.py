"""Whether a database holds a ledger that adds up: ``coalition db check``.

PostgreSQL refuses at commit lots and allocations that do not add up
(migration 0017); SQLite does not, and neither checks what is kept beside the
ledger: the period totals a close reads instead of the ledger's rows
(:mod:`coalition.db.period_totals`) and each final statement's SHA-256; nor what
a row copies from another (an allocation its transaction's period, a lot its
earn's points), nor when things were recorded against the closes that settled
them (a close dated before a posting it settled, a late posting recorded while
its period was open, a rate added after a close into the period it closed). A
restore that mixed two backups, SQL typed by hand or a bug could break any of
them unseen, and a close would then issue wrong statements. Each check reads
the ledger's own rows whole, so it is a command for the operator after a
restore, a copy or an incident, not something a request does. A SQLite file's
pages are checked first (:func:`damage`): where they are damaged, the ledger's
figures read from them mean nothing.
"""

from coalition.db import on_postgresql
from coalition.db.checks import closes, rows, statements, sums


def damage(connection) -> list[str]:
    """What SQLite's own check of its file finds damaged (``PRAGMA integrity_check``: a
    page written over, the file cut short, a ``-wal`` of another database read as its
    own), a line each; none for a sound file, nor on PostgreSQL, whose server says so
    of a page it cannot read as it reads it. A page it cannot read at all stops it, as
    it stops any statement that reads one (:class:`~coalition.db.Damaged`). The
    ledger's checks read only the pages their statements need: they found a file whose
    index of lots by member was written over sound, while the balances of the members
    it indexed failed."""
    if on_postgresql(connection):
        return []
    found = connection.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    return [] if found == ["ok"] else found


def problems(connection) -> list[str]:
    """What does not add up, a line each; none for a sound database."""
    return [
        *sums.problems(connection),
        *rows.problems(connection),
        *closes.problems(connection),
        *statements.problems(connection),
    ]
