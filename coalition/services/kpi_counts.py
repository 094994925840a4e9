"""The member counts of a period's KPIs, counted once and kept (SPEC §5's operator, watching
the programme's health; :mod:`coalition.services.kpis`).

Visits, purchases and new members group a period's earns and burns by member,
which takes seconds to minutes for a month of millions of transactions. A
closed period's counts never change, so they are counted once and kept beside
the period, with its redeemed points by partner, which never change either
(a grouping of its pair totals, a million rows where a thousand partners all
trade); the open periods one request counts are kept when counting them
together takes seconds (a month of millions, or a dozen busy days), read back
for an hour, and counted anew by the auto-close job (:func:`keep_counts`).
"""

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import DBAPIError

from coalition.db import (
    busy,
    kept_counts,
    kpi_aggregates,
    locks,
    on_postgresql,
    period_totals,
    takes_no_writes,
)
from coalition.domain import kpis
from coalition.domain.periods import ListedPeriod

#: What a kept period's counts were counted by: a change to how visits,
#: purchases or new members are counted, or to what is kept, raises it, and
#: counts kept under another version are counted again (and kept anew).
#: 2: a closed period's redeemed points by partner are kept with its counts.
COUNTS_VERSION = 2

#: The open periods a request counts are counted for each request while counting
#: them together takes less than this (a closed period counted beside them adds
#: nothing: it is kept anyway). Counts that take longer together are kept, each
#: period's with when it was counted, and requests read them back while they are
#: younger than KEPT_FOR; the auto-close job counts them anew once they are
#: REFRESH_AFTER old (at its next check), so that with the scheduler on requests
#: find them fresh, and measures them together the same way. Kept periods that
#: count quicker again together are live again.
LIVE_COUNTING = timedelta(seconds=2)
KEPT_FOR = timedelta(hours=1)
REFRESH_AFTER = timedelta(minutes=30)


@dataclass
class Counts:
    """The member counts of some periods, by ``(period_id, partner_id)``; partner
    :data:`~coalition.db.kpi_aggregates.COALITION_WIDE` for members counted once.

    Attributes:
        visits: active members, purchasers and redemptions.
        purchases: the partner's purchases, split by whether the buyer burned points
            there or anywhere (:func:`~coalition.db.kpi_aggregates.purchases`).
        new_members: members whose first lot the partner issued in the period.
        counted_at: by period, when kept counts were counted (none: counted now).
        redeemed: by closed period, its redeemed points by partner, counted with its
            counts (an open period's are summed for each request).
    """

    visits: dict = field(default_factory=dict)
    purchases: dict = field(default_factory=dict)
    new_members: dict = field(default_factory=dict)
    counted_at: dict = field(default_factory=dict)
    redeemed: dict = field(default_factory=dict)


def of_periods(session, chosen: list[ListedPeriod], now: datetime) -> Counts:
    """Visits, purchases and new members of these periods, by (period, partner).

    A closed period's counts never change (its transactions are final, and
    new members are ranked by period first), so they are kept beside the period
    by the auto-close job (:func:`keep_counts`) or else by the first request
    that needs them, and read back after that: a GET may write. The open
    periods a request counts are kept only when counting them together takes
    seconds (``LIVE_COUNTING``), and then read back for ``KEPT_FOR``: a
    dashboard over a dozen open days, each counted in a second, would
    otherwise wait for all of them on every visit.
    """
    kept, stale = _kept_counts_of(session, chosen, now)
    if stale and not _counting_anew_is_ours(session):
        kept |= stale  # another request is counting them anew: the last count meanwhile
    gathered, opened = Counts(), {}
    for period in (period for period in chosen if period.id not in kept):  # in period order
        counted = _count(session, period.id, closed=period.closed)
        if period.closed:  # kept at once: its counts are final, however quick to count
            _keep(session, _keep_counted, period.id, counted)
            gathered.redeemed[period.id] = counted.counts.pop("redeemed")
        else:
            opened[period.id] = counted
        for name, by_partner in counted.counts.items():
            getattr(gathered, name).update({(period.id, p): v for p, v in by_partner.items()})
    _keep_open_together(session, opened, set(stale))
    for period_id, counts in kept.items():
        _add_kept_counts(gathered, period_id, counts)
    return gathered


def _kept_counts_of(session, chosen: list[ListedPeriod], now: datetime) -> tuple[dict, dict]:
    """The kept counts that stand for these periods, and those of open periods kept longer
    than ``KEPT_FOR``."""
    kept, stale = {}, {}
    for period in (period for period in chosen if period.closed):
        counts = _kept_counts(kept_counts.committed_of_closed(session, period.id))
        if counts is not None:
            kept[period.id] = counts
    opened = [period.id for period in chosen if not period.closed]
    for row in kept_counts.of_open(session, opened):
        if (counts := _kept_counts(row.kpi_counts)) is not None:
            fresh = row.counted_at > now - KEPT_FOR
            (kept if fresh else stale)[row.period_id] = {**counts, "counted_at": row.counted_at}
    return kept, stale


def _counting_anew_is_ours(session) -> bool:
    """Whether this request may count anew the open periods kept too long: on PostgreSQL
    one request at a time does (a count may take minutes, and each would take a core).
    SQLite has no such lock: requests count side by side on their snapshots, the first
    keeps the counts, and the others, refused that write, answer what they counted."""
    return not on_postgresql(session) or locks.try_hold(session.connection(), locks.KPI_COUNTING)


@dataclass
class _Counted:
    """One period's counts by partner, when their counting began, how long it took, and
    whether the period is closed (its counts final, with its redeemed points by partner)."""

    counts: dict
    at: datetime
    took: timedelta
    closed: bool


def _count(session, period_id: str, *, closed: bool) -> _Counted:
    """Count one period, by partner, timing the member counts, which decide whether an open
    period's are kept; a closed period's redeemed points by partner too, kept with them."""
    counted_at, started = datetime.now(UTC), time.monotonic()
    counts = {
        "visits": kpi_aggregates.member_activity(session, period_id),
        "purchases": kpi_aggregates.purchases(session, period_id),
        "new_members": kpi_aggregates.new_members(session, period_id),
    }
    took = timedelta(seconds=time.monotonic() - started)
    if closed:
        counts["redeemed"] = period_totals.redeemed_by_partner(session, period_id)
    return _Counted(counts, counted_at, took, closed)


def _keep_open_together(session, counted: dict[str, _Counted], stale: set[str]) -> None:
    """Keep the open periods a request counted, each with when it was counted, if counting
    them together took ``LIVE_COUNTING`` or more; if not, drop the kept counts it counted
    anew (``stale``): quick to count again, they are live again. All or none, in one write."""
    if _counting_time(counted.values()) >= LIVE_COUNTING:
        _keep(session, _keep_each_open, counted)
    elif dropped := sorted(stale & counted.keys()):
        _keep(session, kept_counts.drop_open, dropped)


def _counting_time(counted) -> timedelta:
    """How long these counts took together."""
    return sum((each.took for each in counted), timedelta(0))


def _keep_each_open(session, counted: dict[str, _Counted]) -> None:
    """Keep each open period's counts as counted at its own instant, in period order."""
    for period_id in sorted(counted):
        _keep_counted(session, period_id, counted[period_id])


def _keep_counted(session, period_id: str, counted: _Counted) -> None:
    """Keep a period's counts where its kind keeps them: a closed period's as final, an
    open period's with when they were counted."""
    counts = _counts_to_keep(counted.counts)
    if counted.closed:
        kept_counts.keep_closed(session, period_id, counts)
    else:
        kept_counts.keep_open(session, period_id, counted.at, counts)


def _keep(session, write, *args) -> None:
    """``write(session, *args)`` for a request, keeping counts or dropping them, unless the
    database refuses it: the counts answered stand, and the next request or the auto-close
    job keeps them.

    A database that takes no writes (a standby after a failover, a server out of disk,
    a SQLite file read-only or on a full disk) refuses it on PostgreSQL and SQLite alike:
    a KPI request is a read, served as every other read is meanwhile (decisions.md, "A
    read that keeps what it counted is still a read").

    On SQLite a KPI request reads a snapshot (:meth:`~coalition.db.Database.run_reading`),
    and SQLite refuses its write at once while another writer holds the file, or once one
    has committed since the snapshot began. The counts it answers stand, the snapshot's,
    as every other figure of the answer is. Counting again holding the file would keep
    every posting waiting meanwhile.
    """
    try:
        with session.begin_nested():  # a savepoint: a refused write leaves the read whole
            write(session, *args)
    except DBAPIError as error:
        if not (takes_no_writes(error) or (busy(error) and not on_postgresql(session))):
            raise


def keep_counts(database) -> int:
    """Count what a KPI request would otherwise wait for, and keep it: every closed period's
    counts that are not kept yet, and the open periods' kept counts once they are
    ``REFRESH_AFTER`` old; a period a transaction. How many periods were counted.

    The auto-close job runs it after each check, so a KPI request after a
    close, or after an upgrade over years of closed periods, or in a month of
    millions of transactions, reads counts instead of counting them while the
    user waits. Its keeping is its work: a refusal fails its run (logged, tried
    again at the next), not one that says it kept.

    The open periods it counts anew are kept anew as each is counted, and
    measured as a request's are: if counting them together took less than
    ``LIVE_COUNTING``, they are dropped after the last, live again. Kept as it
    goes, rather than all at the end, so that another instance (on SQLite,
    where instances take no job lock) finds each one counted and does not count
    it again; the price is that instances splitting the periods between them
    each measure only their own, and may make live again days that together
    take seconds, until a request counts them together and keeps them.
    """

    def due(session) -> list[tuple[str, bool]]:
        """The periods to count, each as its id and whether it is closed; first the counts
        kept beside periods since closed are dropped, in the same transaction, so that
        none of those periods is taken for an open one."""
        kept_counts.drop_open_of_closed(session)
        found = kept_counts.closed_in_order(session)
        lacking = [(period_id, True) for period_id, text in found if _kept_counts(text) is None]
        stale = kept_counts.open_counted_before(session, _refresh_cutoff())
        return lacking + [(period_id, False) for period_id in stale]

    counted, opened = 0, {}
    for period_id, closed in database.run(due):
        if (found := database.run(_count_if_still_due, period_id, closed=closed)) is not None:
            counted += 1
            if not closed:
                opened[period_id] = found
    if opened and _counting_time(opened.values()) < LIVE_COUNTING:
        database.run(kept_counts.drop_open, sorted(opened))
    return counted


def _count_if_still_due(session, period_id: str, *, closed: bool) -> _Counted | None:
    """Count a period found due and keep its counts, unless another instance has since
    counted it: on SQLite, whose instances take no job lock, each finds the same periods
    due and comes here in turn, each transaction holding the write lock from its start.
    What was counted; None if nothing was."""
    if closed:
        due = _kept_counts(kept_counts.committed_of_closed(session, period_id)) is None
    else:
        due = period_id in kept_counts.open_counted_before(session, _refresh_cutoff())
    if not due:
        return None
    counted = _count(session, period_id, closed=closed)
    _keep_counted(session, period_id, counted)
    return counted


def _refresh_cutoff() -> datetime:
    """Kept open-period counts counted by then are ``REFRESH_AFTER`` old: due again."""
    return datetime.now(UTC) - REFRESH_AFTER


def _kept_counts(text: str | None) -> dict | None:
    """A period's kept counts, if kept by this version of the counting."""
    counts = None if text is None else json.loads(text)
    return counts if counts is not None and counts.get("version") == COUNTS_VERSION else None


def _counts_to_keep(counted: dict) -> str:
    """One period's counts by partner as JSON, amounts as decimal strings; a closed
    period's with its redeemed points by issuer and by redeemer."""
    purchases = [
        [partner, {scope: asdict(split) for scope, split in splits.items()}]
        for partner, splits in counted["purchases"].items()
    ]
    counts = {
        "version": COUNTS_VERSION,
        "visits": list(map(list, counted["visits"].items())),
        "purchases": purchases,
        "new_members": list(map(list, counted["new_members"].items())),
    }
    if "redeemed" in counted:
        counts["redeemed"] = asdict(counted["redeemed"])
    return json.dumps(counts, default=str, sort_keys=True)


def _add_kept_counts(gathered: Counts, period_id: str, counts: dict) -> None:
    """Put a period's kept counts (:func:`_counts_to_keep`) where counting would have."""
    for partner, visits in counts["visits"]:
        gathered.visits[period_id, partner] = visits
    for partner, splits in counts["purchases"]:
        gathered.purchases[period_id, partner] = {
            scope: kpis.Purchases(
                **{
                    name: Decimal(value) if name.startswith("amount") else value
                    for name, value in split.items()
                }
            )
            for scope, split in splits.items()
        }
    for partner, new in counts["new_members"]:
        gathered.new_members[period_id, partner] = new
    if "redeemed" in counts:
        gathered.redeemed[period_id] = period_totals.RedeemedByPartner(**counts["redeemed"])
    if "counted_at" in counts:
        gathered.counted_at[period_id] = counts["counted_at"]
