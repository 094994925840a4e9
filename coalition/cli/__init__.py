"""The ``coalition`` command (SPEC §9).

Each command builds the app from the environment and calls the same use cases
as the HTTP API; ``serve`` migrates first, prints an operator key on first
start, runs the scheduler (unless switched off) and serves with gunicorn.
``keys`` and ``import`` have modules of their own.
"""

from datetime import UTC, datetime

import click
from sqlalchemy.exc import DBAPIError

from coalition import auth, config
from coalition.cli import databases, imports, interrupts, keys
from coalition.db import Damaged, TakesNoWrites, checks, copy, first_line
from coalition.domain.errors import CoalitionError
from coalition.logs import quantity
from coalition.services import changes

SHOWN_PROBLEMS = 100  # `db check` lists the first; a ledger broken wholesale has millions


class Group(click.Group):
    """The command group, reporting a domain error as click reports a usage error.

    A :class:`CoalitionError` from any command is the user's mistake (a partner
    key without its partner, a period that has not ended), not a bug: one line
    ``Error: ...`` on stderr and exit status 1, without a traceback. What a
    command changes (a key, a close) is recorded as the command line's.
    """

    def invoke(self, ctx):
        try:
            with changes.acting(changes.Actor("cli")):
                return super().invoke(ctx)
        except CoalitionError as error:
            raise click.ClickException(error.message) from error


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Coalition settlement service.

    Every command works on the database COALITION_DATABASE_URL names
    (postgresql://user:password@host/name, or sqlite:///path); unset, on
    coalition.sqlite3 in the directory it runs in. COALITION_SCHEDULER=off
    keeps serve's jobs off."""


@main.group()
def db():
    """The database: its schema, a check of its sums, a copy into another."""


@db.command("upgrade")
def db_upgrade():
    """Create or upgrade the schema (Alembic)."""
    with databases.opened(upgrade=True):
        click.echo("database is at the newest schema")


@db.command("copy")
@click.argument("source_url")
def db_copy(source_url):
    """Copy a whole coalition from SOURCE_URL into this database.

    Moves a coalition run on SQLite to PostgreSQL (sqlite:///path/coalition.sqlite3
    to COALITION_DATABASE_URL): every row as stored, so keys keep working and
    final statements download as the same bytes. This database is created or
    upgraded first and must hold nothing yet; SOURCE_URL must be at this
    release's schema. Stop the service on SOURCE_URL first: the copy reads it
    as of one instant, and what is posted after that is not copied.
    """
    with databases.source(source_url) as source, databases.opened(upgrade=True) as target:
        if databases.shown(source) == databases.shown(target):
            if config.named_database():
                raise click.ClickException(
                    "SOURCE_URL names the database COALITION_DATABASE_URL names"
                )
            raise click.ClickException(
                f"SOURCE_URL names {config.DEFAULT_FILE} here, which a command uses without"
                " COALITION_DATABASE_URL: set it to the new database to copy into"
            )
        try:
            copied = copy.everything(source, target)
        except copy.NotEmpty as error:
            raise click.ClickException(f"{error}; nothing was copied") from None
        except copy.SourceUnavailable as error:  # the target's own is said by `opened`
            raise click.ClickException(f"{error} (SOURCE_URL); nothing was copied") from None
        except DBAPIError as error:  # PostgreSQL refused the ledger copied, at commit
            raise click.ClickException(f"nothing was copied: {first_line(error)}") from None
    click.echo(f"copied {databases.shown(source)} into {databases.shown(target)}:")
    for table, rows in copied.items():
        click.echo(f"  {table:<18} {rows:>12,}")


@db.command("check")
def db_check():
    """Check that the ledger adds up.

    Lots against their allocations and their earns, burns, reversals and
    expiries against theirs, each allocation against its transaction and lot,
    the period totals closes read against the ledger's rows, each transaction's
    recording against the closes of its periods, each rate against the closes
    before it, and each final statement against its SHA-256 and its id; each
    thing that does not add up on a line of its own, and exit status 1. Reads
    the whole ledger as of one instant, beside a running service. A SQLite
    file's pages are checked first: where they are damaged, it lists what
    SQLite found instead, and says to restore the file from a backup. A
    backup kept in a directory this user may not write is read where it is.
    """
    with databases.opened(backup=True) as database, database.snapshot() as connection:
        damage = checks.damage(connection)
        found = damage or checks.problems(connection)
    for line in found[:SHOWN_PROBLEMS]:
        click.echo(line)
    if len(found) > SHOWN_PROBLEMS:
        click.echo(f"and {quantity(len(found) - SHOWN_PROBLEMS, 'more problem')}")
    if damage:
        raise click.ClickException(
            Damaged("SQLite's integrity check, above").said(databases.shown(database))
        )
    if found:
        raise click.ClickException(f"the ledger does not add up: {quantity(len(found), 'problem')}")
    click.echo(
        "the ledger adds up: lots, allocations, movements, period totals, closes, rates and statements"
    )


@main.command()
def expire():
    """Expire every lot past its expiry date now."""
    from coalition.services import expiry

    with databases.opened() as database:
        count = expiry.expire_all(database, database.now())
    click.echo(f"expired {quantity(count, 'lot')}")


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="the address to listen on: 0.0.0.0 (or ::) for every address of this machine",
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="processes serving requests, 8 threads each",
)
@click.option("--no-scheduler", is_flag=True, help="do not run the expiry and auto-close jobs")
def serve(host, port, workers, no_scheduler):
    """Migrate, then serve the API (gunicorn) with the scheduler."""
    from coalition import jobs, server

    host = host.removeprefix("[").removesuffix("]")  # an IPv6 address as a URL writes it
    try:  # read first: the flag says it all, and a switch misread fails before migrating
        scheduler = not no_scheduler and config.scheduler()
        server.check_listening(host, port)
    except config.Unreadable as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        where = server.address(host, port)
        raise click.ClickException(f"cannot listen on {where}: {error.strerror}") from None
    with databases.opened(upgrade=True, wait=databases.START_WAIT_SECONDS) as database:
        key = _first_operator_key(database)
    if key is not None:
        click.echo("First start: an operator key was created. Store it now, it is not shown again:")
        click.echo(key)
    running = jobs.schedule() if scheduler else "off"
    server.run(host, port, workers, scheduler, running)


def _first_operator_key(database) -> str | None:
    """A new operator key where the coalition has none unrevoked (:func:`auth.first_operator_key`).

    A database that takes no writes (a standby after a failover, a file made read-only)
    refuses to make it; serve still serves the reads it answers, and says so once.
    """
    try:
        return database.run(auth.first_operator_key)
    except TakesNoWrites as error:
        click.echo(
            f"the coalition has no operator key that is not revoked, and none could be made: {error};"
            " reads are served; once it takes writes, `coalition keys create --role operator` makes one",
            err=True,
        )
        return None


@main.command()
@click.argument("period_id")
def close(period_id):
    """Close a settlement period (and every earlier open one): PERIOD_ID as the calendar
    names it, 2026-10 (monthly), 2026-W43 (weekly) or 2026-10-05 (daily)."""
    from coalition.services import calendar, settlement

    with databases.opened() as database:
        period_id = database.run(calendar.parse, period_id).id  # not a period id: said first
        click.echo(f"Closing {period_id} and any earlier open period …")
        now = datetime.now(UTC)
        closed = _closed_through(database, period_id, now)
        result = closed[-1] if closed else database.run(settlement.get, period_id, now)
    _tell_closed(period_id, closed, result)


def _closed_through(database, period_id: str, now: datetime) -> list[dict]:
    """The settlements of the periods the close closed, oldest first; interrupted (Ctrl-C,
    SIGTERM), it says what the interruption left: nothing closed, or all of it."""
    from coalition.services import calendar, settlement

    try:
        with interrupts.terminate_as_interrupt():
            return database.run(settlement.close_through, period_id, now)
    except KeyboardInterrupt:
        # a signal that comes as the close commits is raised once the commit is done
        if database.run_reading(calendar.is_closed, period_id):
            raise click.ClickException(
                f"interrupted as the close was written: {period_id}, and any earlier"
                " open period, is closed all the same"
            ) from None
        raise click.ClickException(
            "interrupted: nothing was closed (a close and the earlier periods it closes"
            " are one transaction); run it again"
        ) from None


def _tell_closed(period_id: str, closed: list[dict], result: dict) -> None:
    """What the close did: the earlier open periods it closed first, then the period's
    statements and netting (``result``, its settlement, closed now or before)."""
    if len(closed) > 1:
        earlier = [each["period_id"] for each in closed[:-1]]
        click.echo(
            f"closed {earlier[0]} first: the open period before {period_id}"
            if len(earlier) == 1
            else f"closed {earlier[0]} to {earlier[-1]} first:"
            f" the {len(earlier):,} open periods before {period_id}"
        )
    netting = result["netting"]
    what = f"closed {period_id}" if closed else f"{period_id} was already closed"
    click.echo(
        f"{what}: {quantity(len(result['partners']), 'statement')}, "
        f"gross {netting['gross']} {result['base_currency']}, "
        f"multilateral net {netting['multilateral_net']} {result['base_currency']}, "
        f"payments saved {netting['payments_saved']}"
    )


@main.command()
def demo():
    """Load a sample coalition with closed periods and statements."""
    from coalition import demo as demo_data

    with databases.opened(upgrade=True) as database:
        demo_data.load(
            database,
            datetime.now(UTC),
            echo=click.echo,
            progress=lambda: click.progressbar(length=demo_data.DAYS, label="Posting days"),
        )


main.add_command(keys.keys)
main.add_command(imports.import_transactions)
