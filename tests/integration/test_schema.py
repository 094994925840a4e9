"""The models describe the schema the migrations build.

The migrations are the only way the schema is made (SPEC §2); the ORM models
are how the code reads it. Alembic's comparison of the two, on the database
the suite migrated, must find no table, column, type or nullability of one
missing from or differing in the other. Indexes are the migrations' alone
(the models declare none), so they are left out of the comparison.
"""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from coalition.db import models


# SQLite's reflection skips an index on an expression (migration 0004's): indexes are not compared
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_models_match_the_migrated_tables_and_columns(database):
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), models.Base.metadata)
    assert [
        difference
        for difference in differences
        if not (isinstance(difference, tuple) and difference[0] == "remove_index")
    ] == []
