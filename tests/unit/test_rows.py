"""The book's plain rows have exactly the columns of their tables, so nothing is dropped on write."""

from dataclasses import fields
from types import SimpleNamespace

import pytest

from coalition.db import models, rows
from coalition.domain import lots, rates


@pytest.mark.parametrize(
    ("row", "model"),
    [(rows.Transaction, models.Transaction), (rows.Lot, models.Lot), (rows.Allocation, models.Allocation)],
)
def test_a_row_has_one_field_per_column(row, model):
    assert {field.name for field in fields(row)} == {column.key for column in model.__table__.columns}


@pytest.mark.parametrize(
    ("convert", "value", "model"), [(rows.as_lot, lots.Lot, models.Lot), (rows.as_rate, rates.Rate, models.Rate)]
)
def test_a_row_becomes_the_domain_value_field_by_field(convert, value, model):
    """The converters read each of the value's fields from the column of that name."""
    columns = {column.key for column in model.__table__.columns}
    assert {field.name for field in fields(value)} <= columns
    row = SimpleNamespace(**{column: f"{column}-value" for column in columns})
    converted = convert(row)
    assert isinstance(converted, value)
    assert {field.name: getattr(converted, field.name) for field in fields(value)} == {
        field.name: f"{field.name}-value" for field in fields(value)}
