"""Configuration from the environment, with defaults a new user needs nothing for.

``COALITION_DATABASE_URL`` selects the database (default: ``coalition.sqlite3``
in the working directory); ``COALITION_SCHEDULER=off`` keeps the jobs from
starting inside ``coalition serve``.
"""

import os
from pathlib import Path


def database_url() -> str:
    return (
        os.environ.get("COALITION_DATABASE_URL") or f"sqlite:///{Path.cwd() / 'coalition.sqlite3'}"
    )


def from_environment() -> dict:
    return {
        "DATABASE_URL": database_url(),
        "SCHEDULER": os.environ.get("COALITION_SCHEDULER", "on").lower()
        not in ("off", "0", "false"),
    }
