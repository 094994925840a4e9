"""Scheduled jobs (SPEC §9): expiry every hour, auto-close checked every 15 minutes (:data:`EVERY`).

After each auto-close check the same job counts and keeps the KPI counts of
closed periods that lack them, and refreshes those kept of open periods, kept anew
while counting them together takes seconds (:func:`coalition.services.kpi_counts.keep_counts`), also
when the close was refused (a missing fx rate, logged as a warning).

Each job runs its use case under a database lock, so with several service
instances running, one instance does the work: on PostgreSQL an advisory
lock, which the others find taken and skip the job; on SQLite the
database's one write lock, which the others wait for, then finding the work
done (every unit of work re-reads what is due once it holds the lock).
"""

import functools
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import DBAPIError

from coalition import database_of
from coalition.db import Unavailable, locks, on_postgresql, reaching, twice_if_unavailable
from coalition.domain.errors import CoalitionError
from coalition.domain.settlement import Unbalanced
from coalition.logs import quantity
from coalition.services import changes, expiry, kpi_counts, settlement

log = logging.getLogger(__name__)

#: How often each job runs, by its name; each also runs as the scheduler starts.
EVERY = {"expiry": timedelta(hours=1), "auto-close": timedelta(minutes=15)}

_running: set[str] = set()  # the jobs running now, named when the scheduler stops


def schedule() -> str:
    """The jobs and how often each runs, as ``serve`` announces them."""
    return ", ".join(f"{name} every {_span(every)}" for name, every in EVERY.items())


def _span(every: timedelta) -> str:
    minutes = int(every.total_seconds()) // 60
    return "hour" if minutes == 60 else quantity(minutes, "minute")


def holding_job_lock(database, job: str, work) -> None:
    """Run ``work()`` if no other instance is running ``job``; what it changes (a close)
    is recorded as the scheduler's."""
    work = changes.acting(changes.Actor("scheduler"))(work)
    if not on_postgresql(database.engine):
        work()
        return
    connection, locked = twice_if_unavailable(_try_job_lock, database, job)
    with connection:
        if not locked:
            log.info("%s skipped: another instance is running it", job)
            return
        try:
            work()
        finally:
            try:
                locks.release_session(connection, locks.JOBS[job])
            except DBAPIError:
                # closed, not pooled: the server lets go of a session's locks with it. What
                # work() raised, if anything, is the job's outcome, not this.
                connection.invalidate()


def _try_job_lock(database, job: str):
    """An autocommit connection and whether it took ``job``'s lock: a session-level lock,
    so that no transaction stays open (and idle) while the job runs its own units of work.

    Asked once more on a new connection if the first was broken: a pooled one the
    server ended by restarting would otherwise skip the job until its next run, an
    hour on for expiry."""
    with reaching():
        connection = database.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        with reaching():
            return connection, locks.try_hold_session(connection, locks.JOBS[job])
    except Unavailable:
        # broken: closed, not rolled back (a rollback on a socket psycopg has not yet
        # seen closed fails on its own, and its error would hide this one)
        connection.invalidate()
        connection.close()
        raise


def scheduled_job(name: str):
    """The job ``name``, as every line of the log names it: its work runs holding the
    job's lock (:func:`holding_job_lock`), and a run that finds the database
    unavailable logs one line and runs again at its next time, instead of a
    traceback at each run while the server is away."""

    def scheduled(work):
        @functools.wraps(work)
        def run(database) -> None:
            _running.add(name)
            try:
                holding_job_lock(database, name, lambda: work(database))
            except Unavailable as error:
                log.warning("%s skipped until its next run: %s", name, error)
            finally:
                _running.discard(name)

        run.name = name
        return run

    return scheduled


@scheduled_job("expiry")
def run_expiry(database) -> None:
    log.info("expiry: %s expired", quantity(expiry.expire_all(database, database.now()), "lot"))


@scheduled_job("auto-close")
def run_auto_close(database) -> None:
    closed, refused = [], None
    try:
        for period_id in settlement.auto_close(database, database.now()):
            closed.append(period_id)  # noqa: PERF402  kept one by one: a refusal may follow
    except Unbalanced:  # the books do not balance: fails loudly (SPEC §7), as any failure
        raise
    except CoalitionError as error:
        refused = error  # the operator's to fix (a missing fx rate): one line, no traceback
    if closed or refused is None:
        log.info("auto-close: %s", _closed(closed))
    if refused is not None:
        log.warning("auto-close refused, tried again at the next check: %s", refused.message)
    if counted := kpi_counts.keep_counts(database):
        log.info("auto-close: counted and kept the KPIs of %s", quantity(counted, "period"))


def _closed(periods: list[str]) -> str:
    """What an auto-close did: ``closed 2026-10``; after days the scheduler was away,
    ``closed 3 periods: 2026-11-30, 2026-12-01, 2026-12-02``, or from six on the first
    and last, ``closed 74 periods: 2026-09-10 … 2026-12-02``. Not "from … to": a
    ``coalition close`` run meanwhile may have closed some between them."""
    if not periods:
        return "no period due"
    if len(periods) == 1:
        return f"closed {periods[0]}"
    named = ", ".join(periods) if len(periods) <= 5 else f"{periods[0]} … {periods[-1]}"
    return f"closed {quantity(len(periods), 'period')}: {named}"


def start(app) -> BackgroundScheduler:
    database = database_of(app)
    scheduler = BackgroundScheduler(timezone=UTC)
    for job in (run_expiry, run_auto_close):
        scheduler.add_job(
            job,
            "interval",
            seconds=EVERY[job.name].total_seconds(),
            args=[database],
            id=job.name,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            # however late it starts: APScheduler's default grace of 1 s would let a slow
            # start skip a run, the next an hour (expiry) or 15 minutes (auto-close) away
            misfire_grace_time=None,
        )
    scheduler.start()
    log.info("scheduler started: %s", ", ".join(sorted(job.id for job in scheduler.get_jobs())))
    return scheduler


def stop(scheduler: BackgroundScheduler) -> None:
    """Start no more runs, and say which run the scheduler's process, ending next, cuts
    short: the operator reading the log learns that its work in progress is rolled back
    (each unit of work commits whole, a close or a batch of expiries) and done again by
    the next run."""
    scheduler.shutdown(wait=False)
    cut_short = sorted(_running)  # read once no run can start
    if cut_short:
        log.warning(
            "scheduler stopped while %s ran: what it had not committed is rolled back,"
            " and its next run, when the scheduler starts again, does it",
            " and ".join(cut_short),
        )
    else:
        log.info("scheduler stopped")
