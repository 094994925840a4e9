"""The end of a closed period's stored settlement, read without the rest of it.

Where a thousand partners all trade, the settlement a close stored is 93 MB of
pair lines before the few hundred kilobytes that follow them
(:func:`coalition.services.settlement.stored_partners` says which). Each
database is asked for the end in the way it reads fastest (at 999,000 pair
lines, docs/performance-log.md):

* SQLite reads a column's bytes from any offset (incremental blob I/O), so
  the end is read backwards until the marker is in it: 0.03–0.08 s, where
  the text fetched whole took 0.23–0.33 s, and ``substr``/``instr`` 0.46–0.76 s
  (they count characters from the start);
* PostgreSQL must decompress the value whole whatever it is asked (0.25–0.33 s),
  and ``split_part`` then finds the marker by its bytes, where ``strpos``
  and ``substr`` each decompressed it again and counted characters (1.2 s).
"""

from sqlalchemy import func, literal_column, select

from coalition.db import on_postgresql
from coalition.db.models import Period

#: the first read of a SQLite settlement's end, in bytes; each next one is four times longer
_FIRST_READ = 1 << 16


def from_marker(session, period_id: str, marker: str) -> str:
    """The closed period's stored settlement from ``marker`` on: the marker must be in
    it once (found first on PostgreSQL, last on SQLite)."""
    if on_postgresql(session):
        query = select(func.split_part(Period.settlement, marker, 2))
        return marker + session.scalar(query.where(Period.id == period_id))
    return _from_last_on_sqlite(session, period_id, marker.encode())


def _from_last_on_sqlite(session, period_id: str, marker: bytes) -> str:
    """Read the text's end, longer each time, until ``marker`` is in it (it is UTF-8, and
    the marker ASCII: the bytes from it on are whole characters)."""
    rowid = select(literal_column("rowid")).select_from(Period)
    row = session.scalar(rowid.where(Period.id == period_id))
    connection = session.connection().connection.driver_connection
    with connection.blobopen("periods", "settlement", row, readonly=True) as text:
        length, read = len(text), _FIRST_READ
        while True:
            text.seek(max(length - read, 0))
            end = text.read(read)
            if marker in end or read >= length:
                return end[end.rindex(marker) :].decode()
            read *= 4
