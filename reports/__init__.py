"""Settlement statements rendered for finance teams (SPEC §8), a period's settlement, and
the transactions behind them.

Pure functions from one partner's statement, or a period's settlement — the
JSON-ready dicts of SPEC §7 — or from transactions as SPEC §6 shows them, to
file bytes. No Flask and no database here, so the service and the tests render
exactly the same bytes from the same statement, and a statement's JSON alone is
enough to render it again anywhere.
"""

from reports.csv import render_settlement_csv, render_statement_csv, render_transactions_csv
from reports.statement import render_pdf

__all__ = ["render_pdf", "render_settlement_csv", "render_statement_csv", "render_transactions_csv"]
