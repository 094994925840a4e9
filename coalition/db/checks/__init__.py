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
restore, a copy or an incident, not something a request does.
"""

from coalition.db.checks import closes, rows, statements, sums


def problems(connection) -> list[str]:
    """What does not add up, a line each; none for a sound database."""
    return [
        *sums.problems(connection),
        *rows.problems(connection),
        *closes.problems(connection),
        *statements.problems(connection),
    ]
