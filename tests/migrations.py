"""One Alembic migration's steps, run by hand on a connection, as an upgrade of a live database runs them."""

import importlib.util
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.operations import Operations

VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"


def migration(filename: str):
    """The module of ``migrations/versions/<filename>``."""
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), VERSIONS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def migrate(connection, filename: str, direction: str) -> None:
    """Run the migration's ``upgrade`` or ``downgrade`` on ``connection``."""
    with Operations.context(MigrationContext.configure(connection)):
        getattr(migration(filename), direction)()
