"""The member counts of a period's KPIs, counted once and kept (SPEC §5's operator, watching
the programme's health; :mod:`coalition.services.kpis`).

Visits, purchases and new members group a period's earns and burns by member,
which takes seconds to minutes for a month of millions of transactions. A
closed period's counts never change, so they are counted once and kept beside
the period, with its redeemed points by partner, which never change either
(a grouping of its pair totals, a million rows where a thousand partners all
trade); an open period's are kept when counting them takes seconds, read back
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

#: An open period is counted for each request while counting it takes less
#: than this. A count that takes longer is kept, and requests read it back
#: while it is younger than KEPT_FOR; the auto-close job counts it anew once
#: it is REFRESH_AFTER old (at its next check), so that with the scheduler on
#: requests find it fresh. A kept period that counts quicker again is live again.
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
    that needs them, and read back after that: a GET may write. An open
    period's counts are kept only when counting it takes seconds
    (``LIVE_COUNTING``), and then read back for ``KEPT_FOR``. Each period is
    counted on its own, so that only its own counting decides whether it is
    kept.
    """
    kept, stale = _kept_counts_of(session, chosen, now)
    if stale and not _counting_anew_is_ours(session):
        kept |= stale  # another request is counting them anew: the last count meanwhile
    gathered = Counts()
    counting = [period for period in chosen if period.id not in kept]
    for period in counting:  # in period order, as a concurrent request writes them too
        counted = _count(session, period.id, set(stale), closed=period.closed, answering=True)
        if period.closed:
            gathered.redeemed[period.id] = counted.pop("redeemed")
        for name, by_partner in counted.items():
            getattr(gathered, name).update({(period.id, p): v for p, v in by_partner.items()})
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


def _count(session, period_id: str, kept_open: set[str], *, closed: bool, answering: bool) -> dict:
    """Count one period, by partner, and keep its counts where they are kept (see
    :func:`of_periods`); ``kept_open``: the open periods counted anew, whose kept counts a
    quick count drops; ``answering``: a request's count, whose keeping may be refused
    (:func:`_keep`)."""
    counted_at, started = datetime.now(UTC), time.monotonic()
    counted = {
        "visits": kpi_aggregates.member_activity(session, period_id),
        "purchases": kpi_aggregates.purchases(session, period_id),
        "new_members": kpi_aggregates.new_members(session, period_id),
    }
    took = timedelta(seconds=time.monotonic() - started)
    if closed:
        counted["redeemed"] = period_totals.redeemed_by_partner(session, period_id)
    counts = _counts_to_keep(counted)
    if closed:
        _keep(session, answering, kept_counts.keep_closed, period_id, counts)
    elif took >= LIVE_COUNTING:
        _keep(session, answering, kept_counts.keep_open, period_id, counted_at, counts)
    elif period_id in kept_open:  # quick to count again: live again
        _keep(session, answering, kept_counts.drop_open, period_id)
    return counted


def _keep(session, answering: bool, write, *args) -> None:
    """``write(session, *args)``, keeping counts or dropping them; a request ``answering``
    with what it counted, unless the database refuses it: the counts answered stand, and
    the next request or the auto-close job keeps them. The job's keeping is its work: a
    refusal fails its run (logged, tried again at the next), not one that says it kept.

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
    if not answering:
        write(session, *args)
        return
    try:
        with session.begin_nested():  # a savepoint: a refused write leaves the read whole
            write(session, *args)
    except DBAPIError as error:
        if not (takes_no_writes(error) or (busy(error) and not on_postgresql(session))):
            raise


def keep_counts(database) -> int:
    """Count what a KPI request would otherwise wait for, and keep it: every closed period's
    counts that are not kept yet, and an open period's kept counts once they are
    ``REFRESH_AFTER`` old; a period a transaction. How many periods were counted.

    The auto-close job runs it after each check, so a KPI request after a
    close, or after an upgrade over years of closed periods, or in a month of
    millions of transactions, reads counts instead of counting them while the
    user waits.
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

    return sum(
        database.run(_count_if_still_due, period_id, closed=closed)
        for period_id, closed in database.run(due)
    )


def _count_if_still_due(session, period_id: str, *, closed: bool) -> bool:
    """Count a period found due, unless another instance has since: on SQLite, whose
    instances take no job lock, each finds the same periods due and comes here in turn,
    each transaction holding the write lock from its start."""
    if closed:
        due = _kept_counts(kept_counts.committed_of_closed(session, period_id)) is None
    else:
        due = period_id in kept_counts.open_counted_before(session, _refresh_cutoff())
    if due:
        _count(session, period_id, {period_id}, closed=closed, answering=False)
    return due


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
