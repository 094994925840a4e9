"""Configuration from the environment, with defaults a new user needs nothing for.

``COALITION_DATABASE_URL`` selects the database (default: ``coalition.sqlite3``
in the working directory); ``COALITION_SCHEDULER=off`` keeps the jobs from
starting inside ``coalition serve``.
"""

import os
from pathlib import Path

DEFAULT_FILE = "coalition.sqlite3"  # in the working directory, without COALITION_DATABASE_URL


def database_url() -> str:
    return named_database() or f"sqlite:///{Path.cwd() / DEFAULT_FILE}"


def named_database() -> str:
    """``COALITION_DATABASE_URL`` as set ("" if not), without the spaces and newline a
    secret's file often ends in: a SQLite file's name would take them, and with them
    a new, empty database beside the real one."""
    return os.environ.get("COALITION_DATABASE_URL", "").strip()


class Unreadable(ValueError):
    """A variable of the environment set to a value the service does not read."""


SWITCH = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}


def scheduler() -> bool:
    """Whether the jobs run. A value read as neither on nor off is refused: taken as on,
    a scheduler meant to be off would close periods the operator meant to close by hand."""
    value = os.environ.get("COALITION_SCHEDULER") or "on"  # set empty, as unset
    try:
        return SWITCH[value.strip().lower()]
    except KeyError:
        on = ", ".join(word for word, runs in SWITCH.items() if runs)
        off = ", ".join(word for word, runs in SWITCH.items() if not runs)
        raise Unreadable(
            f"COALITION_SCHEDULER={value!r} is neither on nor off ({on}; {off})"
        ) from None


def from_environment() -> dict:
    return {"DATABASE_URL": database_url()}
