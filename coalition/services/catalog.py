"""Reference data, cached per process: settings, partners, rates, API keys, the last close.

Every request needs some of it (a posting needs all of it) and it changes
rarely, so reading it afresh costs more than the posting itself. Any flush
that touches one of its tables also stamps ``settings.generation`` with a
fresh random value, in the same transaction; a use case reads that one value
in its own transaction and takes the cached copy only when it carries the
same stamp. The rows are read after the stamp, so a copy is never older than
it: a revoked key, a suspended partner, a new rate or a closed period count
from the next request on, in every process. An upgrade of the schema stamps
it too (:func:`coalition.db.migrate.upgrade`), and a catalog is read only
on a schema of this release, so an instance the schema moved past stops at
its next request.

A copy made old is not read whole again: rate versions only as they are added
(:func:`_rate_versions`), and the keys only when a flush that touched them
also stamped ``settings.keys_generation``.

The cache holds plain, immutable rows (no ORM objects), shared between
threads; to change reference data, load its ORM object in a session.
"""

import bisect
import dataclasses
import itertools
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from weakref import WeakKeyDictionary

from sqlalchemy import Row, event, func, select
from sqlalchemy.orm import Session

from coalition.db import SchemaNotCurrent, migrate, models
from coalition.db.rows import as_rate
from coalition.domain import periods, rates

_cached: WeakKeyDictionary = WeakKeyDictionary()  # engine → Catalog
_loading: WeakKeyDictionary = WeakKeyDictionary()  # engine → the lock its catalog is read under
_loading_guard = threading.Lock()
_IN_SESSION = "coalition.catalog"  # session.info key: the catalog of the current transaction
_CHANGED = "coalition.catalog.changed"  # session.info key: this transaction changed reference data
GENERATION_QUERY = "SELECT generation FROM settings"  # plain SQL: read on every request
LOAD_WAIT_SECONDS = 1  # at most, for another thread's read of a new generation (some 50 ms)


@event.listens_for(Session, "before_flush")
def _stamp_generation(session, _context, _instances) -> None:
    changed = {type(row) for row in (*session.new, *session.dirty, *session.deleted)}
    if any(kind in models.REFERENCE_DATA for kind in changed):
        session.execute(models.new_generation(keys=models.ApiKey in changed))
        session.info[_CHANGED] = True
        forget(session)


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session, transaction) -> None:
    """Forget the catalog when the transaction or a savepoint ends, not when a flush
    does: each flush runs in a subtransaction of its own, and forgetting there made
    every flush cost a read of the generation, and a close of a backlog of periods a
    read of the whole catalog for each period (:func:`closed_here`)."""
    if transaction.parent is None or transaction.nested:
        forget(session)
    if transaction.parent is None:
        session.info.pop(_CHANGED, None)


def forget(session) -> None:
    """Read the catalog afresh on next use: after taking a lock, what was read before may be old."""
    session.info.pop(_IN_SESSION, None)


@dataclass(frozen=True)
class Catalog:
    """The reference data of one generation."""

    generation: int
    settings: Row
    partners: dict[str, Row]
    rates: Mapping[tuple[str, str | None], tuple[rates.Rate, ...]]  # by kind and partner_id
    keys: dict[str, Row]  # unrevoked API keys by their SHA-256
    last_closed: periods.Period | None
    # what rates_of works out once for the catalog's life: every posting asks for its partner's
    _kept: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def calendar(self) -> periods.Calendar:
        return periods.Calendar(self.settings.period, self.settings.timezone)

    def rates_of(
        self, kinds: tuple[str, ...], partner_id: str | None = None, at: datetime | None = None
    ) -> tuple:
        """Every version of these kinds that could apply to the partner: its own and the
        coalition-wide ones (every partner's, without one), oldest first; with ``at``,
        only those that may be in force then (the rules choose among them).

        Rates are versions kept for ever (SPEC §5), and a coalition's weekly promos
        alone add thousands over a few years, which each posting would pay for if it
        looked at them all (performance-log.md). So the versions are grouped by kind
        and partner, what a posting asks for is kept, and a posting asks with its
        date: each group's versions by start (:class:`_ByStart`) pass over at once
        those over before it, however many.
        """
        if at is None:
            return self._keep(("versions", kinds, partner_id), self._versions, kinds, partner_id)
        return self._may_apply(kinds, partner_id, at)

    def rates_for_purchase(self, partner_id: str, category: str | None, at: datetime) -> tuple:
        """The earn, promo and threshold versions that may decide a purchase in ``category``
        at the partner at ``at``: :meth:`rates_of` those kinds, less every other
        category's (by :func:`rates.category_key`).

        A supermarket has a rate per product category, a thousand or more, and each
        posting that looked at every category's cost 0.4 ms at 1,000 and 15–20 ms at
        10,000 (performance-log.md). So each group's versions are filed by category too, and a
        purchase looks only at its own category's and the category-less ones, however
        many categories its partner has.
        """
        folded = tuple(dict.fromkeys((None, rates.category_key(category))))
        return self._may_apply(rates.PURCHASE_KINDS, partner_id, at, folded)

    def _may_apply(self, kinds, partner_id, at: datetime, categories=None) -> tuple:
        """The versions of these kinds, of these categories (every one's without), that may
        be in force at ``at``, in the order they were added."""
        groups = self._keep(("by start", kinds, partner_id), self._by_start, kinds, partner_id)
        return _in_order(rate for group in groups for rate in group.may_apply_at(at, categories))

    def holds_key(self, key_id: str) -> bool:
        """Whether the key of this id is unrevoked: what a chunk of postings asks once it
        holds its locks, as many times as a batch has chunks."""
        ids = self._keep(("key ids",), lambda: frozenset(row.id for row in self.keys.values()))
        return key_id in ids

    def closed(self, period: periods.Period, generation: int) -> "Catalog":
        """This catalog once ``period`` is closed at ``generation``: the same rows, and
        what :meth:`rates_of` has worked out of them kept too (a backlog's close asks
        for every partner's fx rate in each period)."""
        after = dataclasses.replace(self, generation=generation, last_closed=period)
        object.__setattr__(after, "_kept", self._kept)  # frozen, and not an init field
        return after

    def _keep(self, key: tuple, work_out, *arguments):
        if key not in self._kept:  # threads may both work it out: the same answer
            self._kept[key] = work_out(*arguments)
        return self._kept[key]

    def _groups(self, kinds: tuple[str, ...], partner_id: str | None) -> list[tuple]:
        if partner_id is None:
            return [group for group in self.rates if group[0] in kinds]
        return [(kind, owner) for kind in dict.fromkeys(kinds) for owner in (None, partner_id)]

    def _versions(self, kinds: tuple[str, ...], partner_id: str | None) -> tuple:
        groups = self._groups(kinds, partner_id)
        return _in_order(rate for group in groups for rate in self.rates.get(group, ()))

    def _by_start(self, kinds: tuple[str, ...], partner_id: str | None) -> list["_ByCategory"]:
        groups = self._groups(kinds, partner_id)
        return [_ByCategory.of(self.rates[group]) for group in groups if group in self.rates]

    def point_value(self, at: datetime) -> Decimal | None:
        """The coalition-wide redemption rate in force at ``at``: what an outstanding point
        is worth when the liability is valued (SPEC §7); None without one."""
        rate = rates.in_force(self.rates_of(("redemption",)), "redemption", at)
        return None if rate is None else rate.value

    def redemption_rate(self, redeemer_id: str, at: datetime) -> rates.Rate | None:
        """SPEC §7's v(t) as the rates stand now: what a point redeemed there is worth."""
        candidates = self.rates_of(("redemption",), redeemer_id, at)
        return rates.redemption_rate(candidates, redeemer_id, at)

    def fee_rate(self, issuer_id: str, at: datetime) -> rates.Rate | None:
        """What the issuer pays the operator per point issued at ``at`` (none for the operator)."""
        return rates.fee_rate(self.rates_of(("fee",), issuer_id, at), issuer_id, at)

    def fx_rate(self, currency: str, at: datetime) -> rates.Rate | None:
        """Base currency per unit of ``currency``; the base currency itself is 1."""
        if currency == self.settings.base_currency:
            return rates.Rate(
                id=0, kind="fx", value=Decimal(1), effective_from=at, currency=currency
            )
        # asked with its moment: a daily rate per currency for years is tens of thousands
        # of versions, which a scan of them all read for each partner of each period closed
        return rates.in_force(self.rates_of(("fx",), at=at), "fx", at, currency=currency)


def _in_order(versions) -> tuple:
    return tuple(sorted(versions, key=lambda rate: rate.id))  # in the order they were added


@dataclass(frozen=True)
class _ByCategory:
    """One group's versions by :attr:`rates.Rate.folded_category` (None: category-less),
    each category's arranged by start (:class:`_ByStart`) when a lookup first asks for
    it: the catalog is read afresh at every change of reference data (a key created, a
    period closed), and arranging 10,000 categories' at once held up the first posting
    at their partner 0.3 s, where filing them takes a few milliseconds."""

    filed: Mapping[str | None, tuple[rates.Rate, ...]]
    arranged: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, versions) -> "_ByCategory":
        filed = defaultdict(list)
        for rate in versions:
            filed[rate.folded_category].append(rate)
        return cls({key: tuple(kept) for key, kept in filed.items()})

    def may_apply_at(self, at: datetime, categories=None) -> list[rates.Rate]:
        """:meth:`_ByStart.may_apply_at` of these categories' versions (every one's without
        ``categories``): a purchase's rates are its own category's and the category-less
        ones, and no other category's version applies to it (:meth:`rates.Rate.matches`)."""
        found = []
        for key in self.filed if categories is None else categories:
            if key in self.filed:
                found.extend(self._arranged(key).may_apply_at(at))
        return found

    def _arranged(self, key: str | None) -> "_ByStart":
        if key not in self.arranged:  # threads may both arrange it: the same answer
            self.arranged[key] = _ByStart.of(self.filed[key])
        return self.arranged[key]


@dataclass(frozen=True)
class _ByStart:
    """One group's versions arranged so that a lookup at a moment finds those that may be
    in force then by a logarithmic search and a few steps, however many the group holds.

    Versions with an end are ordered by start, each with the latest end among it and
    those started before it: a lookup goes back from the last one started by then and
    stops where that latest end shows every earlier one over. Versions without an end
    are kept by scope, ordered by start: of those started by then only each scope's
    last can be chosen, since it is in force and outranks the others of its scope.
    """

    ending: tuple[rates.Rate, ...]
    ending_starts: tuple[datetime, ...]
    over_by: tuple[datetime, ...]
    open_by_scope: tuple[tuple[tuple[datetime, ...], tuple[rates.Rate, ...]], ...]

    @classmethod
    def of(cls, versions) -> "_ByStart":
        ordered = sorted(versions, key=lambda rate: (rate.effective_from, rate.id))
        ending = [rate for rate in ordered if rate.effective_to is not None]
        over_by = list(itertools.accumulate((rate.effective_to for rate in ending), max))
        open_by_scope = defaultdict(list)
        for rate in ordered:
            if rate.effective_to is None:
                open_by_scope[rate.scope].append(rate)
        return cls(
            tuple(ending),
            tuple(rate.effective_from for rate in ending),
            tuple(over_by),
            tuple(
                (tuple(rate.effective_from for rate in scoped), tuple(scoped))
                for scoped in open_by_scope.values()
            ),
        )

    def may_apply_at(self, at: datetime) -> list[rates.Rate]:
        """Every version in force at ``at`` that the rules could choose, and perhaps a few
        that are not in force."""
        found, index = [], bisect.bisect_right(self.ending_starts, at)
        while index and self.over_by[index - 1] > at:
            index -= 1
            found.append(self.ending[index])
        for starts, scoped in self.open_by_scope:
            started = bisect.bisect_right(starts, at)
            if started:
                found.append(scoped[started - 1])
        return found


def current(session) -> Catalog:
    """The catalog as this session's transaction sees it.

    The first call in a transaction reads the generation (one indexed row) and
    loads the catalog only if this process has not cached that generation; later
    calls in the same transaction reuse it until the transaction changes
    reference data itself.
    """
    if session.new or session.dirty or session.deleted:
        session.flush()  # pending reference rows stamp a new generation first
    catalog = session.info.get(_IN_SESSION)
    if catalog is not None:
        return catalog
    return adopt(session, session.connection().exec_driver_sql(GENERATION_QUERY).scalar_one())


def adopt(session, generation: int) -> Catalog:
    """The catalog of ``generation``, which the caller read in this transaction along
    with something else (a round trip saved), as this transaction's catalog."""
    engine = session.get_bind().engine
    catalog = _cached.get(engine)
    if catalog is None or catalog.generation != generation:
        # One thread reads it, the others wait for its copy: after a change, every
        # thread's next request finds its copy old at once, and each reading the whole
        # catalog (thousands of keys and rate versions) took eight times the CPU, under
        # the one interpreter lock, from the requests they were serving.
        # A read held up in the database (a table an upgrade alters) gives up at its lock
        # limit; the threads behind it wait for it only so long, then read it themselves,
        # so that none waits a limit for each thread ahead of it.
        lock = _lock_of(engine)
        took = lock.acquire(timeout=LOAD_WAIT_SECONDS)
        try:
            catalog = _cached.get(engine)
            if catalog is None or catalog.generation != generation:
                catalog = _load(session, generation, catalog)
                # what a transaction that changed reference data reads is its own until it
                # commits: kept for the process, a rollback would leave versions that never
                # were in the copy the next read builds on (_rate_versions)
                if not session.info.get(_CHANGED):
                    _cached[engine] = catalog
        finally:
            if took:
                lock.release()
    session.info[_IN_SESSION] = catalog
    return catalog


def _lock_of(engine) -> threading.Lock:
    with _loading_guard:
        return _loading.setdefault(engine, threading.Lock())


def closed_here(session, reference: Catalog, period: periods.Period) -> None:
    """This transaction's catalog once it has closed ``period``: ``reference``, the one
    it closed with, with that period its last closed, at the generation the close
    stamped. A backlog closes hundreds of periods in one transaction, each a flush of
    reference data, and reading every key and rate version again for each cost more
    than the close itself (keys and rate versions only grow). Kept in the session only:
    this process's copy is read afresh at its next request, as every other process's."""
    generation = session.connection().exec_driver_sql(GENERATION_QUERY).scalar_one()
    session.info[_IN_SESSION] = reference.closed(period, generation)


def held(database) -> Catalog | None:
    """This process's catalog as last read, current or not; None before its first read."""
    return _cached.get(database.engine)


def if_current(database, generation: int | None = None) -> Catalog | None:
    """This process's catalog if it is current: current at ``generation``, which the
    caller read with a statement of its own, or else known from one read outside
    any transaction."""
    cached = held(database)
    if cached is None:
        return None
    if generation is None:
        generation = database.peek(GENERATION_QUERY)
    return cached if generation == cached.generation else None


def _load(session, generation: int, before: Catalog | None = None) -> Catalog:
    """The catalog of ``generation``; its rate versions built on those of ``before``, this
    process's catalog of an earlier generation, where they are still the same, and its
    keys those of ``before`` if no key changed since (``keys_generation``)."""

    def rows(table):
        return session.execute(select(table.__table__)).all()

    # an upgrade stamps a new generation: a release the schema has moved past stops here
    versions = session.connection().exec_driver_sql(migrate.VERSIONS).scalars()
    if (why := migrate.mismatch(frozenset(versions))) is not None:
        raise SchemaNotCurrent(why)

    last = session.execute(
        select(models.Period.start, models.Period.end, models.Period.id)
        .order_by(models.Period.end.desc())
        .limit(1)
    ).first()
    settings = rows(models.Settings)[0]
    return Catalog(
        generation=generation,
        settings=settings,
        partners={row.id: row for row in rows(models.Partner)},
        rates=_rate_versions(session, {} if before is None else before.rates),
        keys=_keys(session, settings, before),
        last_closed=None if last is None else periods.Period(*last),
    )


def _keys(session, settings: Row, before: Catalog | None) -> dict[str, Row]:
    """The unrevoked keys by their SHA-256: those ``before`` held, if no key was created or
    revoked since (a key a till makes tens of thousands, which no rate or close changes)."""
    if before is not None and before.settings.keys_generation == settings.keys_generation:
        return before.keys
    found = session.execute(select(models.ApiKey.__table__))
    return {row.key_hash: row for row in found if row.revoked_at is None}


def _rate_versions(session, held: Mapping) -> Mapping:
    """Every rate version, by group (:func:`_by_group`): those ``held`` and the versions
    added since, or all.

    Versions are never changed or deleted (migration 0020) and the service adds them under
    the calendar's lock (on SQLite, as its one writer), so in the order of their ids; and
    a daily fx rate per currency for years is tens of thousands: read whole after each
    rate added, they cost each process a quarter of a second at 22,000 while the tills'
    postings waited, and a history loaded through the API one rate at a time took 50
    minutes. So only the versions from the last one held on are read, and kept if that
    one is still there as held and the table's count adds up; else (a database restored
    or replaced under the service, rows deleted past the guard) every version is read.
    """
    table = models.Rate.__table__
    last = max((kept[-1] for kept in held.values()), key=lambda rate: rate.id, default=None)
    if last is not None:
        total = select(func.count()).select_from(table).scalar_subquery().label("total")
        found = session.execute(
            select(table, total).where(table.c.id >= last.id).order_by(table.c.id)
        ).all()
        held_count = sum(map(len, held.values()))
        if found and as_rate(found[0]) == last and found[0].total == held_count + len(found) - 1:
            return _by_group(map(as_rate, found[1:]), held)
    # in the order added, as each group's last version must be: a table read in no order
    # gives PostgreSQL's order on disk, where a version may take a rolled-back one's slot
    whole = session.execute(select(table).order_by(table.c.id))
    return _by_group(as_rate(row) for row in whole)


def _by_group(versions, held: Mapping = MappingProxyType({})) -> Mapping:
    """The versions grouped by kind and partner (None: coalition-wide), each group's in order,
    added to those ``held``; read-only, as the catalog is shared between threads."""
    grouped = defaultdict(list, {group: list(kept) for group, kept in held.items()})
    for rate in versions:
        grouped[(rate.kind, rate.partner_id)].append(rate)
    return MappingProxyType({group: tuple(kept) for group, kept in grouped.items()})
