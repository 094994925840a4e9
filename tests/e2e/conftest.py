"""Fixtures shared by the API tests."""

import pytest

from tests.e2e.helpers import setup_coalition


@pytest.fixture
def coalition(operator):
    """The standard coalition of tests/e2e/helpers.py, posted through the operator's key."""
    setup_coalition(operator)
    return operator
