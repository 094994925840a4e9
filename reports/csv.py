"""Settlement figures as CSV, for finance teams to reconcile: one partner's statement,
or a whole period's settlement; and the transactions behind them.

Blocks separated by a blank line, each table with its own header row, written
even when it has no rows, so a parser always finds the same shape. A
statement: key/value rows describing it and its figures, the counterparty
table, then the late items. A settlement: key/value rows describing the period
and its netting, the partners' table, the pair lines, then what each partner's
fees are made of (a line per fee rate; none for settlements closed before fee
lines were kept).

Choices, made for machines first and spreadsheets second:

- UTF-8 **without** a byte-order mark. A BOM makes Excel guess the encoding
  on double-click, but it breaks tools that read the first key literally and
  turns the file into something other than plain UTF-8 text; Excel opens it
  correctly through Data › From Text/CSV.
- Amounts exactly as the settlement produced them (``"7568.18"``): no
  thousands separators, no re-rounding, sign as given.
- Text cells that a spreadsheet would run as a formula (starting with
  ``=``, ``+``, ``-``, ``@``, tab, carriage return or line feed, after any
  spaces, which an import may trim) get a leading apostrophe. Names and external ids come from partners' systems, and CSV
  injection is how such a field attacks the finance team opening the file.
  Numeric columns are never touched.
- ``\\r\\n`` line endings, as RFC 4180 and the csv module's default dialect.
"""

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

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
_PAIR_LINE_COLUMNS = ("issuer_id", "redeemer_id", "points", "value", "own_redemption")
_FEE_LINE_COLUMNS = ("partner_id", "fee_rate", "points", "exact_fees")
_NETTING_KEYS = (
    "gross",
    "bilateral_net",
    "multilateral_net",
    "netting_ratio",
    "payments_gross",
    "payments_net",
    "payments_saved",
)
_MOVEMENT_COLUMNS = (
    "transaction_id",
    "external_id",
    "type",
    "partner_id",
    "member_id",
    "occurred_at",
    "recorded_at",
    "period_id",
    "late",
    "amount",
    "currency",
    "category",
    "reason",
    "original_id",
    "rate_ids",
    "lot_id",
    "issuer_id",
    "points",
    "shortfall_points",
    "available_at",
    "expires_at",
    "key_id",
)
_TEXT_COLUMNS = {
    "partner_id",
    "name",
    "external_id",
    "type",
    "issuer_id",
    "redeemer_id",
    "member_id",
    "category",
    "reason",
}
# A statement's figures, in its CSV's rows. Frozen: an issued statement's CSV never
# changes (docs/decisions.md, "Own redemption"), so figures added since (own redemption
# points, fee lines) are in the JSON and the PDF but not here; the settlement CSV, which
# has no hash to keep, adds them (_PARTNER_COLUMNS, the fee lines block).
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
_PARTNER_COLUMNS = ("partner_id", "name", "currency", *_SUMMARY_KEYS, "own_redemption_points")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def render_statement_csv(statement: Mapping) -> bytes:
    """Render a settlement statement as CSV bytes (UTF-8, no BOM).

    Args:
        statement: one partner's statement, shaped as in SPEC §7.

    Returns:
        The CSV; identical bytes for identical input.
    """
    return _blocks(
        _header_block(statement),
        _table(statement["counterparties"], _COUNTERPARTY_COLUMNS),
        _table(statement["late_items"], _LATE_ITEM_COLUMNS),
    )


def render_settlement_csv(settlement: Mapping) -> bytes:
    """Render a period's settlement as CSV bytes (UTF-8, no BOM).

    Args:
        settlement: the settlement of SPEC §7, final or a draft (a draft's partners
            may lack an fx rate, an empty cell here, and it names them in missing_fx).

    Returns:
        The CSV; identical bytes for identical input.
    """
    identity = [
        ("period_id", settlement["period_id"]),
        ("status", settlement["status"]),
        ("period_start", settlement["start"]),
        ("period_end", settlement["end"]),
        ("base_currency", settlement["base_currency"]),
    ]
    netting = [(key, settlement["netting"][key]) for key in _NETTING_KEYS]
    missing = (
        [("missing_fx", " ".join(settlement["missing_fx"]))] if "missing_fx" in settlement else []
    )
    return _blocks(
        identity + netting + missing,
        _table(settlement["partners"], _PARTNER_COLUMNS),
        _table(settlement["pair_lines"], _PAIR_LINE_COLUMNS),
        _table(_fee_lines(settlement["partners"]), _FEE_LINE_COLUMNS),
    )


def render_transactions_csv(pages: Iterable[Iterable[Mapping]]) -> Iterator[bytes]:
    """Render the movements of transactions as CSV, a row each, one chunk per page.

    Args:
        pages: movement rows (:mod:`coalition.services.exports`: a transaction's fields
            as the API shows them, with the ``lot_id``, ``issuer_id`` and signed
            ``points`` of one lot it moved points into or out of), a list a page, in the
            order the file lists them; instants as RFC 3339 text or aware datetimes.

    Yields:
        The header row, then each page's rows; UTF-8, no BOM.
    """
    yield _blocks([_MOVEMENT_COLUMNS])
    for page in pages:
        yield _blocks(
            [[_cell(column, row[column]) for column in _MOVEMENT_COLUMNS] for row in page]
        )


def _fee_lines(partners: Iterable[Mapping]) -> list[dict]:
    """Each partner's fee lines, each naming its partner, in the partners' order."""
    return [
        {"partner_id": partner["partner_id"], **line}
        for partner in partners
        for line in partner.get("fee_lines", ())
    ]


def _blocks(*blocks: Iterable[Iterable]) -> bytes:
    """Blocks of rows, a blank row between each, as CSV (UTF-8, no BOM)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for index, block in enumerate(blocks):
        if index:
            writer.writerow([])
        writer.writerows(block)
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
    return [list(columns)] + [[_cell(column, row[column]) for column in columns] for row in rows]


def _cell(column: str, value):
    """A cell as the JSON writes it: a flag ``true`` or ``false``, an instant in RFC 3339,
    ids separated by spaces, nothing for null."""
    if column in _TEXT_COLUMNS:
        return _safe(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return value


def _safe(text: str | None) -> str | None:
    """Keep a spreadsheet from reading a text cell as a formula, behind leading spaces too
    (an import that trims them runs `` =1+1``)."""
    return "'" + text if text and text.lstrip(" ").startswith(_FORMULA_STARTS) else text
