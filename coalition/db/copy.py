"""A whole coalition copied from one database into another, row for row.

What moves a coalition run on SQLite (README's first command) to PostgreSQL
once it grows: every table as stored, ids, hashes and keys' hashes included,
so each final statement downloads as the same bytes, every key still works,
each transaction keeps its id, when it was recorded and the key that posted
it, and the record of changes keeps its history. Replaying the exports could
not: they leave out the ids, the lifetimes lots were earned under, which
postings were late, and what each statement said when it was issued.

The source is read in one snapshot, so a copy taken beside a service still
posting is whole as of one instant, and what is posted after it is not
copied. The target is written in one transaction: a copy that fails leaves
it as it was, and PostgreSQL checks at commit that the ledger it received
adds up (migration 0017).
"""

from contextlib import contextmanager

from sqlalchemy import func, select, text

from coalition.db import Unavailable, on_postgresql, reaching
from coalition.db.models import Base, PairTotal, Partner, PartnerTotal, Period, Settings, Statement
from coalition.domain.partners import OPERATOR_PARTNER
from coalition.domain.totals import ACTIVITY_FIELDS

CHUNK = 5_000  # rows read, and written, at a time
# Tables whose rows are documents, and the rows of them held at a time: a period keeps its
# settlement (every pair line: megabytes with hundreds of partners), a statement its JSON
# (tens of kilobytes with hundreds of counterparties). CHUNK of them would hold a large
# coalition's every document at once.
DOCUMENT_CHUNKS = {Period.__table__: 1, Statement.__table__: 100}
# Counters whose key holds a rate, and what they count. SQLite keeps a rate as the text it
# was written in, so "0.01" and "0.010" key two rows there, where PostgreSQL's NUMERIC
# compares values and would refuse the second: such rows are added into one.
COUNTERS = {PairTotal.__table__: ("points",), PartnerTotal.__table__: ACTIVITY_FIELDS}
# PostgreSQL's check at commit of each allocation (migration 0017): its lot, and the sum of
# its transaction's allocations, which a copy, writing a transaction apart from its
# allocations, pays N times over for a transaction of N (4,010,000 rows read for a burn
# from 2,000 lots). Each copied transaction and spent lot checks itself (triggers of their
# own); a copy by the tables' owner sets this one aside and checks each lot it moved once.
ALLOCATIONS_CHECK = "allocations_add_up"
OWNS_ALLOCATIONS = text(
    "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = 'allocations'::regclass"
)
EACH_MOVED_LOT_CHECKED = text(
    "SELECT count(*) FROM (SELECT check_lot(lot_id) FROM allocations GROUP BY lot_id) AS checked"
)


class NotEmpty(Exception):
    """The target holds rows of its own: a copy would mix two coalitions."""

    def __init__(self, tables: list[str]):
        super().__init__(
            f"the database to copy into is not new: it holds {', '.join(tables)}; copy into one"
            " that nothing but `coalition db upgrade` has written to"
        )


class SourceUnavailable(Exception):
    """The source stopped answering while it was read: told apart from the target, which
    raises :class:`~coalition.db.Unavailable` as well, so the operator knows which to see to."""


def everything(source, target) -> dict[str, int]:
    """Copy every row of ``source`` into ``target``, a database at the same schema that
    holds nothing but what its migrations seeded (the settings, the operator's partner),
    which the source's replace.

    Returns:
        The rows copied, by table, in the order they were written.
    """
    with source.snapshot() as reading, reaching(), target.engine.begin() as writing:
        _refuse_unless_new(writing)
        writing.execute(Partner.__table__.delete())
        writing.execute(Settings.__table__.delete())
        with _allocations_checked_once(writing):
            copied = {
                table.name: _copy_rows(table, reading, writing)
                for table in Base.metadata.sorted_tables
            }
        if on_postgresql(writing):
            _continue_ids(writing)
    return copied


def _refuse_unless_new(connection) -> None:
    """Refuse a target with rows beyond what the migrations seed: copied into, it would
    hold two coalitions' partners and keys, and their ids would collide."""
    held = []
    for table in Base.metadata.sorted_tables:
        if table is Settings.__table__:  # set, they are in the record of changes
            continue
        rows = select(func.count()).select_from(table)
        if table is Partner.__table__:
            rows = rows.where(Partner.id != OPERATOR_PARTNER)  # seeded, as the settings are
        if connection.scalar(rows):
            held.append(table.name)
    if held:
        raise NotEmpty(held)


@contextmanager
def _allocations_checked_once(connection):
    """The copy's allocations checked once a lot, not once an allocation (``ALLOCATIONS_CHECK``):
    what PostgreSQL would refuse at commit is refused as before, with the same message. Only
    the tables' owner may set a trigger aside; another role's copy is checked row by row."""
    if not (on_postgresql(connection) and connection.scalar(OWNS_ALLOCATIONS)):
        yield
        return
    connection.execute(text(f"ALTER TABLE allocations DISABLE TRIGGER {ALLOCATIONS_CHECK}"))
    yield
    connection.execute(text(f"ALTER TABLE allocations ENABLE TRIGGER {ALLOCATIONS_CHECK}"))
    # a lot that holds all its points has no check of its own: its allocations must net to 0
    connection.execute(EACH_MOVED_LOT_CHECKED)


def _copy_rows(table, reading, writing) -> int:
    """A table's rows in the order of its key: an allocation after the one it reverses,
    a reversal after its original, as the foreign keys within a table ask."""
    chunks = ([row._asdict() for row in chunk] for chunk in _read(table, reading))
    if table in COUNTERS:  # a few rows a partner and period: added up whole
        chunks = [_added_up((row for chunk in chunks for row in chunk), COUNTERS[table])]
    count = 0
    for rows in filter(None, chunks):
        writing.execute(table.insert(), rows)
        count += len(rows)
    return count


def _added_up(rows, counted: tuple[str, ...]) -> list[dict]:
    """Counter rows whose keys are equal as values, added into the first of them."""
    kept: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(value for name, value in row.items() if name not in counted and name != "id")
        if key in kept:
            kept[key].update({name: kept[key][name] + row[name] for name in counted})
        else:
            kept[key] = row
    return list(kept.values())


def _read(table, reading):
    """A table's rows from the source, :data:`CHUNK` at a time (documents fewer:
    :data:`DOCUMENT_CHUNKS`); the source lost meanwhile raised as
    :class:`SourceUnavailable` (what the target raises is not caught here: it is raised
    where the rows are written, outside this generator)."""
    try:
        with reaching():
            rows = reading.execute(
                select(table)
                .order_by(*table.primary_key.columns)
                .execution_options(yield_per=DOCUMENT_CHUNKS.get(table, CHUNK))
            )
            yield from rows.partitions()
    except Unavailable as error:
        raise SourceUnavailable(str(error)) from error


def _continue_ids(connection) -> None:
    """Set each PostgreSQL sequence past the ids copied: the next posting draws the id
    the source would have given it, where it would otherwise draw 1 and collide."""
    quote = connection.dialect.identifier_preparer.quote
    for table in Base.metadata.sorted_tables:
        if (key := table.autoincrement_column) is not None:
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence(:table, :key), max({quote(key.name)}))"
                    f" FROM {quote(table.name)} HAVING count(*) > 0"
                ),
                {"table": table.name, "key": key.name},
            )
