"""Schema upgrades through Alembic, the only way the schema is made (SPEC §2)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade(database) -> None:
    """Bring the database to the newest revision; a no-op when it is there already."""
    if not MIGRATIONS.is_dir():
        raise RuntimeError(f"migrations not found at {MIGRATIONS}: install with `pip install -e .`")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
