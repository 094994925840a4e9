"""One partner's settlement statement as CSV, for finance teams to reconcile.

Three blocks separated by a blank line: key/value rows describing the
statement and its figures, the counterparty table, then the late items, each
table with its own header row. The late-items header is written even when
there are none, so a parser always finds the same shape.

Choices, made for machines first and spreadsheets second:

- UTF-8 **without** a byte-order mark. A BOM makes Excel guess the encoding
  on double-click, but it breaks tools that read the first key literally and
  turns the file into something other than plain UTF-8 text; Excel opens it
  correctly through Data › From Text/CSV.
- Amounts exactly as the settlement produced them (``"7568.18"``): no
  thousands separators, no re-rounding, sign as given.
- Text cells that a spreadsheet would run as a formula (starting with
  ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a leading
  apostrophe. Names and external ids come from partners' systems, and CSV
  injection is how such a field attacks the finance team opening the file.
  Numeric columns are never touched.
- ``\\r\\n`` line endings, as RFC 4180 and the csv module's default dialect.
"""

import csv
import io
from collections.abc import Iterable, Mapping

_COUNTERPARTY_COLUMNS = (
    "partner_id",
    "name",
    "points_in",
    "value_in",
    "points_out",
    "value_out",
    "net",
)
_LATE_ITEM_COLUMNS = (
    "transaction_id",
    "external_id",
    "type",
    "occurred_at",
    "points",
    "original_period_id",
)
_TEXT_COLUMNS = {"partner_id", "name", "external_id", "type"}
_SUMMARY_KEYS = (
    "fx_rate",
    "receivable",
    "payable",
    "fees",
    "net",
    "net_in_currency",
    "points_issued",
    "points_redeemed",
    "points_reversed",
    "shortfall_points",
    "points_expired",
    "late_count",
    "liability_points",
    "liability",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(statement: Mapping) -> bytes:
    """Render a settlement statement as CSV bytes (UTF-8, no BOM).

    Args:
        statement: one partner's statement, shaped as in SPEC §7.

    Returns:
        The CSV; identical bytes for identical input.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(_header_block(statement))
    writer.writerow([])
    writer.writerows(_table(statement["counterparties"], _COUNTERPARTY_COLUMNS))
    writer.writerow([])
    writer.writerows(_table(statement["late_items"], _LATE_ITEM_COLUMNS))
    return buffer.getvalue().encode("utf-8")


def _header_block(statement: Mapping) -> list[list]:
    """Key/value rows: who, which period, which currencies, then the figures."""
    identity = [
        ("statement_number", statement["number"]),
        ("statement_id", statement["id"]),
        ("period_id", statement["period_id"]),
        ("period_start", statement["period_start"]),
        ("period_end", statement["period_end"]),
        ("partner_id", _safe(statement["partner_id"])),
        ("partner_name", _safe(statement["partner_name"])),
        ("status", statement["status"]),
        ("issued_at", statement["issued_at"]),
        ("currency", statement["currency"]),
        ("base_currency", statement["base_currency"]),
    ]
    figures = [(key, statement["summary"][key]) for key in _SUMMARY_KEYS]
    return [list(row) for row in identity + figures + [("sha256", statement["sha256"])]]


def _table(rows: Iterable[Mapping], columns: tuple[str, ...]) -> list[list]:
    """A header row and one row per item, text cells neutralised."""
    return [list(columns)] + [
        [_safe(row[column]) if column in _TEXT_COLUMNS else row[column] for column in columns]
        for row in rows
    ]


def _safe(text: str) -> str:
    """Keep a spreadsheet from reading a text cell as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
