"""The book's plain rows have exactly the columns of their tables, so nothing is dropped on write."""

from dataclasses import fields

import pytest

from coalition.db import models, rows


@pytest.mark.parametrize(
    ("row", "model"),
    [(rows.Transaction, models.Transaction), (rows.Lot, models.Lot), (rows.Allocation, models.Allocation)],
)
def test_a_row_has_one_field_per_column(row, model):
    assert {field.name for field in fields(row)} == {column.key for column in model.__table__.columns}
