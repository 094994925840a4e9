"""``coalition keys``: create, list and revoke API keys (SPEC §4), checked as
``/api/v1/keys`` checks the same fields."""

import re
from datetime import UTC

import click

from coalition import auth
from coalition.cli import databases
from coalition.domain.errors import CoalitionError
from coalition.domain.partners import OPERATOR_PARTNER


@click.group()
def keys():
    """API keys."""


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(auth.ROLES),
    required=True,
    help="operator: everything; finance: reads (with --partner, that partner's only);"
    " partner: posts and reads for its --partner",
)
@click.option(
    "--partner", "--partner-id", "partner_id", default=None, help="partner the key is bound to"
)
@click.option("--name", default=None, help="what the key is for, as keys list shows it")
def keys_create(role, partner_id, name):
    """Create a key; the key itself is the last line printed (shown once)."""
    from coalition.api.keys import KeyIn

    fields = _checked(KeyIn, role=role, partner_id=partner_id, name=name)
    try:
        auth.check_binding(role, fields.get("partner_id"))
        bound = fields.get("partner_id") not in (None, OPERATOR_PARTNER)
        with databases.opened(upgrade=True, create=not bound) as database:
            row, key = database.run(lambda session: auth.create_key(session, **fields))
    except CoalitionError as error:
        if error.field is None:
            raise
        raise click.ClickException(_about_option(error.field, error.message)) from None
    click.echo(
        f"created {role} key {row.id} in {databases.shown(database)};"
        " store it now, it is not shown again:"
    )
    click.echo(key)


@keys.command("list")
@click.option("--partner", "--partner-id", "partner_id", default=None, help="keys bound to it")
@click.option("--role", type=click.Choice(auth.ROLES), default=None)
@click.option(
    "--status", type=click.Choice(auth.KEY_STATUSES), default=None, help="(default: both)"
)
def keys_list(partner_id, role, status):
    """List keys, oldest first, as GET /api/v1/keys does: never the keys themselves."""
    from coalition.api.keys import KeyQuery

    query = _checked(KeyQuery, partner_id=partner_id, role=role, status=status)
    with databases.opened() as database:
        found = database.run_reading(auth.listing, **query)
    click.echo(_key_table(found))


def _key_table(found) -> str:
    """One line a key under a header, columns aligned; times in UTC, ``-`` for none."""

    def at(moment):
        return "-" if moment is None else _utc(moment)

    lines = [("ID", "ROLE", "PARTNER", "CREATED (UTC)", "REVOKED (UTC)", "NAME")] + [
        (
            row.id,
            row.role,
            row.partner_id or "-",
            at(row.created_at),
            at(row.revoked_at),
            _printable(row.name or "-"),
        )
        for row in found
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[5]
        for line in lines
    )


def _printable(text: str) -> str:
    """A name as it can stand in one line of a terminal's table: a control character
    (a newline, an escape sequence's ESC) written as its Python escape."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key):
    """Revoke a key, by its id (key_…) or, one that leaked, by the key itself (coal_…):
    every request with it is refused (401) from now on."""

    # a key as pasted from a header or a log line ("Bearer coal_…"), never printed back
    leaked = [word for word in key.split() if word.startswith(auth.KEY_PREFIX)]
    if not leaked and not re.fullmatch(auth.KEY_ID, key.strip()):
        if key.strip().startswith("key_"):
            raise click.ClickException("a key's id is key_ and 12 hex digits, as `keys list` shows")
        raise click.ClickException("that is neither a key's id (key_…) nor a key (coal_…)")

    def revoke(session):
        if leaked:
            row = auth.key_by_value(session, leaked[-1])
        else:
            row = auth.get_key(session, key.strip())
        before = row.revoked_at
        return auth.revoke_key(session, row.id), before

    with databases.opened() as database:
        row, before = database.run(revoke)
    name = _printable(row.name or "no name")
    what = f"{row.role} key {row.id} ({name}) in {databases.shown(database)}"
    at = f"{_utc(row.revoked_at)} UTC"
    click.echo(f"{what} was revoked already, at {at}" if before else f"revoked {what} at {at}")


def _utc(moment) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def _checked(schema, **options) -> dict:
    """The options given, checked as the API checks the same fields with ``schema``
    (``POST /api/v1/keys``: a name of 1–200 characters a database can store, a
    partner id of the slug form)."""
    from marshmallow import ValidationError

    try:
        return schema().load(
            {field: value for field, value in options.items() if value is not None}
        )
    except ValidationError as error:
        said = "; ".join(
            _about_option(field, " ".join(why)) for field, why in error.messages.items()
        )
        raise click.ClickException(said) from None


def _about_option(field: str, message: str) -> str:
    """A message about a field, said of the option that gives it (``partner_id``: ``--partner``)."""
    return f"--{field.split('_')[0]}: {message}"
