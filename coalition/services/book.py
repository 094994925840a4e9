"""The part of the ledger a chunk of postings can touch, read at once and written at once.

Posting one transaction at a time costs a dozen round trips; a chunk of them
costs about as many in all. :meth:`Book.open` locks the chunk's idempotency
keys and the calendar, then reads, set-based, everything its postings may
need: transactions already posted under its keys and the originals its
reversals name, the members its burns and reversals lock, the first live
lots of those who burn (the rest if a burn needs more), the lots its
reversals move, and the allocations of burns being reversed. The postings then
read and record rows here, in memory, in order, so a later posting sees what
an earlier one did. :meth:`Book.write` inserts the new rows and updates the
lots that changed, on PostgreSQL in one statement (:mod:`coalition.db.writes`).

Rows are plain objects (:mod:`coalition.db.rows`), read by the statements of
:mod:`coalition.db.ledger_reads` and written with Core statements; the
session only lends its connection.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coalition.db import aggregates, ledger_reads, locks, models, on_postgresql, period_totals, rows
from coalition.db.writes import SKIP_EXISTING, Writes
from coalition.domain import lots as lots_domain
from coalition.services import catalog

#: The live lots of a burning member a chunk reads at first, those a burn spends from
#: first: most burns need a few; one that needs more has the rest read
#: (:meth:`Book.read_every_live_lot`). A member who earns daily holds thousands.
FIRST_LOTS = 50

ROW_TABLES = {
    rows.Transaction: models.Transaction.__table__,
    rows.Lot: models.Lot.__table__,
    rows.Allocation: models.Allocation.__table__,
}


class Ids:
    """Primary keys drawn before writing, so new rows can name each other in memory.

    PostgreSQL draws from the tables' sequences, all tables in one round trip,
    as many ids as the chunk's new postings will likely use, and more when its
    burns need them. An id not used is a gap, as after any rollback, so a
    chunk counts its replays out first and an import run again draws none.
    A single posting draws along with its locks (:func:`_lock`), saving the
    round trip on the hot path at the price of three ids if it turns out a
    replay. SQLite, which lets one writer in at a
    time, counts on from each table's largest id.
    """

    REFILL = 4  # ids drawn at a time when a chunk needs more than it drew at first

    def __init__(self, session, wanted: dict[str, int], drawn: dict[str, list[int]] | None):
        self.session, self.wanted = session, wanted
        self.drawn = None if drawn is None else {t: sorted(drawn[t], reverse=True) for t in drawn}
        self.last: dict[str, int] = {}

    @staticmethod
    def needed_for(requests: list[tuple[str, dict]]) -> dict[str, int]:
        """A transaction per posting, a lot per earn or bonus, two allocations per burn or
        reversal."""
        types = [request["type"] for _, request in requests]
        return {
            "transactions": len(types),
            "lots": sum(kind in lots_domain.ISSUING for kind in types),
            "allocations": 2 * sum(kind in ("burn", *lots_domain.REVERSES) for kind in types),
        }

    def next(self, table: str) -> int:
        """The next id of ``table``: handed out in increasing order, so ids follow posting order."""
        if not on_postgresql(self.session):
            if table not in self.last:
                self.last[table] = aggregates.largest_id(self.session.connection(), table)
            self.last[table] += 1
            return self.last[table]
        if self.drawn is None:
            self.drawn = self._draw(self.wanted)
        if not self.drawn[table]:
            self.drawn |= self._draw({table: self.REFILL})
        return self.drawn[table].pop()

    def reserve(self, table: str, count: int) -> None:
        """Have the next ``count`` ids of ``table`` drawn, in one round trip if any is
        missing: a burn from thousands of lots makes an allocation a lot, and refills of
        :data:`REFILL` cost a round trip per four of them (1,250 from 5,000 lots)."""
        if not on_postgresql(self.session):
            return
        held = [] if self.drawn is None else self.drawn[table]
        short = count - len(held)
        if short <= 0:
            return
        if self.drawn is None:
            self.drawn = self._draw({**self.wanted, table: self.wanted.get(table, 0) + short})
        else:  # the new ids are above those held: first in the list popped from its end
            self.drawn[table] = self._draw({table: short})[table] + held

    def _draw(self, counts: dict[str, int]) -> dict[str, list[int]]:
        drawn = ledger_reads.draw_ids(self.session.connection(), counts)
        return {table: sorted(ids, reverse=True) for table, ids in drawn.items()}


@dataclass
class Book:
    """The rows a unit of work of the ledger reads and writes, held in memory: opened for
    a chunk of postings (:meth:`open`) or for the lots an expiry batch empties
    (:meth:`of_lots`); each posting reads it as the ones before it left it and records
    its rows in it, and :meth:`write` writes them all at once. Its lots are rows, not
    the domain's values: the rules decide over :func:`~coalition.db.rows.as_lot` copies,
    and :meth:`move` applies what they decided."""

    session: object
    transactions: dict[tuple[str, str], rows.Transaction]  # by (partner_id, external_id)
    members: set[str]  # members that exist: locked, or created in this book
    lots: dict[int, rows.Lot]
    allocations: dict[int, list[rows.Allocation]]  # by transaction id
    restored: dict[int, int]  # allocation id → points burn reversals put back
    earn_reversals: dict[int, list]  # original id → its earn reversals (points, shortfall, amount)
    ids: Ids
    # when the locks were granted, by the database's clock, and how far it was then ahead
    # of this process's; None on SQLite (_lock)
    granted_at: datetime | None = None
    clock_offset: timedelta | None = None
    new_members: dict[str, datetime] = field(default_factory=dict)
    new_rows: list = field(default_factory=list)
    new_lots: set[int] = field(default_factory=set)
    changed_lots: set[int] = field(default_factory=set)
    by_member: dict[str, list[rows.Lot]] = field(default_factory=dict)
    # member → the spending place of the last of the first lots read, while the book holds
    # only those (a member absent here: the book holds every live lot of theirs)
    read_until: dict[str, tuple] = field(default_factory=dict)

    def __post_init__(self):
        for lot in self.lots.values():
            self.by_member.setdefault(lot.member_id, []).append(lot)

    @classmethod
    def open(cls, session, requests: list[tuple[str, dict]]) -> "Book":
        """Lock and read what these ``(partner_id, request)`` postings can touch."""
        keys = {_key(posting) for posting in requests}
        originals = {
            (partner_id, request["original_external_id"])
            for partner_id, request in requests
            if request["type"] in lots_domain.REVERSES
        }
        granted_at, drawn = _lock(
            session, keys, Ids.needed_for(requests) if len(requests) == 1 else None
        )
        offset = None if granted_at is None else granted_at - datetime.now(UTC)
        found = _transactions(session, keys | originals)
        by_key = {(row.partner_id, row.external_id): row for row in found}
        burning = {request["member_id"] for _, request in requests if request["type"] == "burn"}
        reversing = {by_key[key].member_id for key in originals if key in by_key}
        locked = ledger_reads.lock_members(session, burning | reversing)
        replays = [by_key[key].id for key in keys if key in by_key]
        burns = [
            by_key[key].id for key in originals if key in by_key and by_key[key].type == "burn"
        ]
        issuing_originals = [
            by_key[key].id for key in originals if key in by_key and by_key[key].type != "burn"
        ]
        allocations = ledger_reads.allocations(session, replays + burns)
        # a burn chooses among its member's first live lots (read_until); a reversal needs
        # only the lots its original made or moved, however many its member holds
        spendable_after = min(
            (request["occurred_at"] for _, request in requests if request["type"] == "burn"),
            default=None,
        )
        spenders = locked & burning  # members who exist, so hold lots to spend
        first = (spenders, spendable_after, FIRST_LOTS) if spenders else None
        lots = ledger_reads.lots(
            session,
            transaction_ids=replays + issuing_originals,
            moved_by=replays + burns,
            first=first,
        )
        return cls(
            session=session,
            transactions=by_key,
            members=locked,
            lots=lots,
            allocations=allocations,
            restored=ledger_reads.restored(session, burns),
            earn_reversals=ledger_reads.earn_reversals(session, issuing_originals),
            ids=Ids(session, Ids.needed_for([r for r in requests if _key(r) not in by_key]), drawn),
            read_until=_read_until(lots.values(), spenders, spendable_after),
            granted_at=granted_at,
            clock_offset=offset,
        )

    @classmethod
    def of_lots(cls, session, lots: list[rows.Lot], wanted: dict[str, int]) -> "Book":
        """A book over these lots alone, already locked by the caller, for a job that
        moves points out of them (expiry); ``wanted`` ids per table, as :class:`Ids`."""
        return cls(
            session=session,
            transactions={},
            members={lot.member_id for lot in lots},
            lots={lot.id: lot for lot in lots},
            allocations={},
            restored={},
            earn_reversals={},
            ids=Ids(session, wanted, None),
        )

    def live_lots(self, member_id: str) -> list[rows.Lot]:
        """The member's live lots the book holds: all of them, unless it read only the
        first (:attr:`read_until`); then those up to the last it read, which are every
        lot the member holds up to there, and which a burn spends from first."""
        until = self.read_until.get(member_id)
        return [
            lot
            for lot in self.by_member.get(member_id, [])
            if lot.remaining > 0 and (until is None or lots_domain.spending_place(lot) <= until)
        ]

    def read_every_live_lot(self, member_id: str) -> bool:
        """Read the rest of the member's live lots, if the book holds only the first;
        whether there was more to read. A lot the book holds already is kept as the
        book has it: the chunk may have moved points in or out of it."""
        if self.read_until.pop(member_id, None) is None:
            return False
        for lot_id, lot in ledger_reads.lots(self.session, {member_id}).items():
            if lot_id not in self.lots:
                self.lots[lot_id] = lot
                self.by_member.setdefault(member_id, []).append(lot)
        return True

    def lot_of(self, transaction_id: int) -> rows.Lot | None:
        """The lot an earn or bonus created (None for other types)."""
        return next(
            (lot for lot in self.lots.values() if lot.transaction_id == transaction_id), None
        )

    def add_member(self, member_id: str, recorded_at: datetime) -> None:
        """A member new to the ledger, created by its first earn or bonus (SPEC §6) and
        dated as that transaction is recorded."""
        if member_id not in self.members:
            self.members.add(member_id)
            self.new_members[member_id] = recorded_at

    def add_transaction(self, transaction: rows.Transaction) -> None:
        transaction.id = self.ids.next("transactions")
        self.transactions[(transaction.partner_id, transaction.external_id)] = transaction
        if transaction.original_id is not None and transaction.type == "earn_reversal":
            self.earn_reversals.setdefault(transaction.original_id, []).append(transaction)
        self.new_rows.append(transaction)

    def add_lot(self, lot: rows.Lot) -> None:
        lot.id = self.ids.next("lots")
        self.lots[lot.id] = lot
        self.by_member.setdefault(lot.member_id, []).append(lot)
        self.new_lots.add(lot.id)
        self.new_rows.append(lot)

    def move(
        self,
        transaction: rows.Transaction,
        lot: rows.Lot,
        points: int,
        value_rate: Decimal | None = None,
        reverses_id: int | None = None,
    ) -> rows.Allocation:
        """Record a signed change of ``points`` that ``transaction`` makes to ``lot``, one
        of the book's own rows, and apply it to the lot. The transaction's partner is the
        allocation's redeemer: where a burn spent the points, or, for a return or an
        expiry, the issuer itself.

        Burns and burn reversals carry the burn's redemption rate: it keys the period's
        pair totals (:mod:`coalition.db.period_totals`) and lets a late rate re-price what was
        redeemed at the rate recorded (:mod:`coalition.db.repricing_sums`).
        """
        allocation = rows.Allocation(
            id=self.ids.next("allocations"),
            transaction_id=transaction.id,
            type=transaction.type,
            lot_id=lot.id,
            issuer_id=lot.issuer_id,
            redeemer_id=transaction.partner_id,
            points=points,
            value_rate=value_rate,
            reverses_id=reverses_id,
            period_id=transaction.period_id,
        )
        self.allocations.setdefault(transaction.id, []).append(allocation)
        if reverses_id is not None:
            self.restored[reverses_id] = self.restored.get(reverses_id, 0) + points
        lot.remaining += points
        if lot.id not in self.new_lots:
            self.changed_lots.add(lot.id)
        self.new_rows.append(allocation)
        return allocation

    def write(self) -> None:
        """Insert the new rows (members, transactions, lots, allocations), add them to
        the period totals and update the lots that changed: one statement on PostgreSQL."""
        writes = Writes(self.session.connection())
        # members in id order, as every chunk locks rows, so two chunks never deadlock here
        created = sorted(self.new_members.items())
        writes.insert(
            models.Member.__table__,
            {"id": [member for member, _ in created], "created_at": [at for _, at in created]},
            SKIP_EXISTING,
        )
        new = {kind: [row for row in self.new_rows if type(row) is kind] for kind in ROW_TABLES}
        for kind, written in new.items():
            table = ROW_TABLES[kind]
            writes.insert(table, _columns(table, written))
        period_totals.add(writes, new[rows.Transaction], new[rows.Allocation])
        changed = sorted(self.changed_lots)
        writes.update(
            models.Lot.__table__,
            "remaining",
            changed,
            [self.lots[lot].remaining for lot in changed],
        )
        writes.run()


def _read_until(lots, members: set[str], spendable_after: datetime | None) -> dict[str, tuple]:
    """Per member of whom :meth:`Book.open` read the first :data:`FIRST_LOTS` live lots, and
    who may hold more: the place of the last of them.

    The lots read for other reasons (an original's, a reversed burn's) come after those
    first ones or among them, so the first :data:`FIRST_LOTS` of all read that meet the
    same condition are those first ones; fewer than that, and they are all there are.
    """
    first: dict[str, list[tuple]] = {}
    for lot in lots:
        if lot.member_id in members and lot.remaining > 0 and lot.expires_at > spendable_after:
            first.setdefault(lot.member_id, []).append(lots_domain.spending_place(lot))
    return {
        member: sorted(places)[FIRST_LOTS - 1]
        for member, places in first.items()
        if len(places) >= FIRST_LOTS
    }


def _key(posting: tuple[str, dict]) -> tuple[str, str]:
    partner_id, request = posting
    return partner_id, request["external_id"]


def _columns(table, written: list) -> dict[str, list]:
    return {column.key: [getattr(row, column.key) for row in written] for column in table.columns}


def _lock(
    session, keys: set[tuple[str, str]], ahead: dict[str, int] | None
) -> tuple[datetime | None, dict[str, list[int]] | None]:
    """The chunk's idempotency keys, in one order for everyone, and the calendar, shared;
    in the same round trip, when they were granted, by the database's clock, and
    ``ahead`` ids per table if asked (:class:`Ids`). On SQLite: neither.

    A retry that arrives while the original is still in flight waits here
    until the original commits, then finds it and answers as a replay instead
    of racing it to the member's lots (SPEC §6: "under concurrent retries
    too"). The calendar lock keeps a close from reading the ledger until these
    postings commit (:mod:`coalition.services.calendar`). SQLite lets one
    writer in at a time anyway.
    """
    if not on_postgresql(session):
        return None, None
    granted_at, drawn = ledger_reads.lock_chunk(
        session, sorted(locks.idempotency_key(*key) for key in keys), ahead
    )
    # What was read before the lock may predate a close, and so may what this
    # statement read: its snapshot was taken before it waited for the lock.
    catalog.forget(session)
    return granted_at, drawn


def _transactions(session, keys: set[tuple[str, str]]) -> list[rows.Transaction]:
    """The transactions posted under these keys.

    The same statement reads the catalog's generation (:func:`catalog.adopt`):
    it runs after the chunk's locks, when what was read before them may be
    old, and saves the round trip of reading it alone.
    """
    generation, found = ledger_reads.posted(session, keys)
    catalog.adopt(session, generation)
    return found
