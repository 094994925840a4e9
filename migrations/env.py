"""Alembic environment: runs migrations on the connection Coalition hands it.

``coalition db upgrade`` (and ``serve``) pass their engine's connection in
``config.attributes["connection"]``; the plain ``alembic`` command falls back
to ``COALITION_DATABASE_URL``, opened as the service opens it (psycopg 3 for a
``postgresql://`` URL, sessions in UTC, SQLite's writes serialized). It runs
the migrations alone, for development: without the locks that keep an
upgrade apart from other instances' and from postings, and without the new
generation that tells running instances (:func:`coalition.db.migrate.upgrade`).
"""

from alembic import context

from coalition.config import database_url
from coalition.db import Database
from coalition.db.models import Base


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    database = Database(database_url())
    with database.engine.connect() as fresh:
        run_migrations(fresh)
    database.dispose()
