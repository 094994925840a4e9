"""Settlement statements rendered for finance teams (SPEC §8).

Pure functions from one partner's statement — the JSON-ready dict of SPEC §7 —
to file bytes. No Flask and no database here, so the service, the CLI and the
tests all render exactly the same bytes from the same statement.
"""

from reports.csv import render_csv
from reports.statement import render_pdf

__all__ = ["render_csv", "render_pdf"]
