"""Alembic environment: runs migrations on the connection Coalition hands it.

``coalition db upgrade`` (and ``serve``) pass their engine's connection in
``config.attributes["connection"]``; the plain ``alembic`` command falls back
to ``COALITION_DATABASE_URL``.
"""

from alembic import context
from sqlalchemy import create_engine

from coalition.config import database_url
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
    engine = create_engine(database_url())
    with engine.connect() as fresh:
        run_migrations(fresh)
    engine.dispose()
