"""The domain and the statement renderer stand alone (SPEC §2, and the style guide's layers): importing them
loads no web framework, no database toolkit and no driver."""

import subprocess
import sys

import pytest

SERVICE_LIBRARIES = ("flask", "werkzeug", "flask_smorest", "sqlalchemy", "psycopg", "alembic")


@pytest.mark.parametrize("module", [
    "coalition.domain.earning", "coalition.domain.errors", "coalition.domain.kpis", "coalition.domain.lots",
    "coalition.domain.money", "coalition.domain.partners", "coalition.domain.periods", "coalition.domain.rates",
    "coalition.domain.repricing", "coalition.domain.settlement", "coalition.domain.totals", "reports",
])
def test_importing_it_loads_no_web_or_database_library(module):
    # a fresh interpreter: this one has the service loaded already
    probe = (f"import sys, {module}; "
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(SERVICE_LIBRARIES)!r}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
