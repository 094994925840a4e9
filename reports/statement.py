"""One partner's settlement statement as an A4 PDF (SPEC §8).

The statement arrives as the JSON-ready dict the API serves (SPEC §7), and the
PDF is laid out the way a bank statement is: who we are and who it is for, one
boxed sentence saying who pays whom and how much, the figures behind it, a
chart to see the counterparties at a glance, then every counterparty line and
every late item, with "Page x of y" and the statement's SHA-256 on each page.

A final statement must download as the same bytes every time (SPEC §7), so
nothing here reads the clock or the environment: ReportLab runs in invariant
mode, and the PDF's creation date and metadata come from the statement itself.

Amounts arrive as decimal strings already rounded by the settlement; they are
printed with thousands separators and padded to the currency's minor unit,
never rounded again, so every digit on paper is a digit in the ledger.
"""

import functools
import io
import threading
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    HRFlowable,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
)

from coalition.domain.partners import OPERATOR_PARTNER
from reports import chart, fonts, styles, written

_PAGE_WIDTH, _PAGE_HEIGHT = A4
_MARGIN_X = 18 * mm
_MARGIN_TOP = 20 * mm
_MARGIN_BOTTOM = 22 * mm
_WIDTH = _PAGE_WIDTH - 2 * _MARGIN_X

_ID_SIZE = 7  # a partner id beside its name

_CELL_PADDING = 6  # ReportLab's default, left and right of every cell
# the counterparty table: five columns of figures, each at least this wide, and the
# names in what is left, never less than the narrowest
_FIGURE_COLUMN = 22 * mm
_NAME_COLUMN_MIN = 40 * mm

# ReportLab keeps one parsed copy of each registered font per process and reads
# its tables through a shared cursor when it embeds a subset in a PDF: two
# renders at once, in a server's threads, read each other's glyphs (a KeyError,
# or other bytes for the same statement). So a process renders one at a time;
# rendering is Python under the GIL, which threads would not run faster anyway.
_RENDERING = threading.Lock()


def render_pdf(statement: Mapping) -> bytes:
    """Render a settlement statement as PDF bytes.

    Args:
        statement: one partner's statement, shaped as in SPEC §7, with money
            as decimal strings and points as ints. ``coalition_name`` is
            optional and defaults to "Coalition".

    Returns:
        The PDF; identical bytes for identical input.

    Raises:
        ValueError: an amount carries more decimals than its currency has,
            which would mean the settlement did not round it.
        RuntimeError: the Roboto fonts cannot be loaded.
    """
    with _RENDERING:
        return _render(statement)


def _render(given: Mapping) -> bytes:
    fonts.register()
    statement = _printable(given)
    buffer = io.BytesIO()
    document = BaseDocTemplate(
        buffer,
        pagesize=A4,
        pageTemplates=[PageTemplate("statement", [_frame()])],
        invariant=1,
        initialFontName=fonts.REGULAR,
        title=f"Settlement statement {statement['number']}",
        # the document's properties are not drawn: names as written, whatever their script
        author=_coalition(given),
        subject=f"{given['partner_name']}, period {statement['period_id']}",
        creator=f"{_coalition(given)} settlement service",
    )
    story = [
        *_header(statement),
        *_summary_box(statement),
        *_figures(statement),
        *_fees(statement),
        *_chart(statement),
        *_counterparties(statement),
        *_late_items(statement),
    ]
    maker = functools.partial(
        _NumberedCanvas,
        furniture=functools.partial(
            _draw_furniture, statement=statement, header=_running_header(statement)
        ),
        created=written.pdf_date(statement),
    )
    document.build(story, canvasmaker=maker)
    return buffer.getvalue()


def _frame() -> Frame:
    """The page's text area, without Frame's default 6 pt inner padding.

    Tables are sized to the full width between the margins; the padding
    would push them past the headings' left edge.
    """
    return Frame(
        _MARGIN_X,
        _MARGIN_BOTTOM,
        _WIDTH,
        _PAGE_HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM,
        leftPadding=0,
        rightPadding=0,
        topPadding=0,
        bottomPadding=0,
    )


class _NumberedCanvas(pdfcanvas.Canvas):
    """Canvas that holds pages back until the end so each can say "of y".

    ReportLab draws a page before it knows how many follow, so the usual
    two-pass trick applies: keep each page's drawing state on ``showPage``,
    and on ``save`` replay them with the footer, now that the count is known.
    """

    def __init__(self, *args, furniture: Callable, created: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._furniture = furniture
        self._pages: list[dict] = []
        self.setDateFormatter(lambda *_: created)

    def showPage(self):
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._furniture(self, number, len(self._pages))
            super().showPage()
        super().save()


def _draw_furniture(
    canvas: pdfcanvas.Canvas, page: int, pages: int, statement: Mapping, header: list
) -> None:
    """Draw what every page carries: the footer, and the running header after page 1."""
    canvas.saveState()
    footer_y = _MARGIN_BOTTOM - 10 * mm
    canvas.setStrokeColor(styles.RULE)
    canvas.setLineWidth(0.5)
    canvas.line(_MARGIN_X, footer_y + 9, _PAGE_WIDTH - _MARGIN_X, footer_y + 9)
    canvas.setFillColor(styles.MUTED)
    canvas.setFont(fonts.REGULAR, 7)
    canvas.drawString(
        _MARGIN_X,
        footer_y,
        f"SHA-256 of canonical JSON {statement['sha256']}",
    )
    canvas.setFont(fonts.BOLD, 7.5)
    canvas.drawRightString(_PAGE_WIDTH - _MARGIN_X, footer_y, f"Page {page} of {pages}")
    if page > 1:
        y = _PAGE_HEIGHT - _MARGIN_TOP + 6 * mm
        for x, runs in header:
            _draw_runs(canvas, x, y, runs)
        canvas.line(_MARGIN_X, y - 4, _PAGE_WIDTH - _MARGIN_X, y - 4)
    canvas.restoreState()


def _running_header(statement: Mapping) -> list[tuple[float, list]]:
    """What names the statement at the top of continuation pages, as banks do: where each
    end of the line starts, and its runs. Worked out once a statement, not once a page.

    Each name on one line, shortened where long: the partner's to half the width,
    the operator's to what the statement's number and period leave of the rest.
    """
    size = 7.5
    name = _spaced(statement["partner_name"])
    partner = fonts.fit(name, fonts.REGULAR, size, _WIDTH / 2)
    partner_width = fonts.width(partner, fonts.REGULAR, size, whole=name)
    title = f" · Settlement statement {statement['number']} · period {statement['period_id']}"
    operator = _spaced(_coalition(statement))
    room = _WIDTH - partner_width - 6 * mm - fonts.width(title, fonts.REGULAR, size)
    coalition = fonts.fit(operator, fonts.REGULAR, size, room)
    return [
        (
            _MARGIN_X,
            _styled(coalition, fonts.REGULAR, size, styles.MUTED, whole=operator)
            + _styled(title, fonts.REGULAR, size, styles.MUTED),
        ),
        (
            _PAGE_WIDTH - _MARGIN_X - partner_width,
            _styled(partner, fonts.REGULAR, size, styles.MUTED, whole=name),
        ),
    ]


def _styled(
    text: str, font: str, size: float, colour: colors.Color, whole: str | None = None
) -> list[tuple[str, str, float, colors.Color]]:
    """``text`` as ``(text, font, size, colour)`` runs, each in the font that has its
    glyphs (``whole``: see :func:`fonts.runs`)."""
    return [(run, run_font, size, colour) for run, run_font in fonts.runs(text, font, whole)]


def _draw_runs(canvas: pdfcanvas.Canvas, x: float, y: float, runs: list) -> None:
    """Draw ``(text, font, size, colour)`` runs on one line from ``x``, in one text object,
    so that a reader extracting the text finds the line whole."""
    line = canvas.beginText()
    for text, font, size, colour in runs:
        line.setTextOrigin(x, y)  # where each run starts, for readers that place text
        line.setFont(font, size)
        line.setFillColor(colour)
        line.textOut(text)
        x += pdfmetrics.stringWidth(text, font, size)
    canvas.drawText(line)


def _header(statement: Mapping) -> list[Flowable]:
    """Issuer and recipient on the left, the statement's identity on the right."""
    issuer = [
        _p(_coalition(statement), styles.TITLE),
        _p("Settlement statement", styles.SUBTITLE),
        Spacer(1, 5 * mm),
        _p("Statement for", styles.SMALL),
        _p(statement["partner_name"], styles.PARTNER),
        _p(
            f"Partner ID {statement['partner_id']} · settles in {statement['currency']} · "
            f"base currency {statement['base_currency']}",
            styles.SMALL,
        ),
    ]
    facts = [
        ("Statement no.", statement["number"]),
        ("Period", statement["period_id"]),
        (
            "Covers",
            written.period_dates(
                statement["period_start"], statement["period_end"], statement.get("timezone")
            ),
        ),
        ("Issued", written.issued(statement["issued_at"], statement.get("timezone"))),
        ("Status", statement["status"].capitalize()),
    ]
    identity = Table(
        [[label, _p(value, styles.CELL_BOLD)] for label, value in facts],
        colWidths=[22 * mm, 58 * mm],
        style=styles.GRID
        + [
            ("TEXTCOLOR", (0, 0), (0, -1), styles.MUTED),
            ("LINEBELOW", (0, 0), (-1, -2), 0.4, styles.RULE),
        ],
    )
    layout = Table(
        [[issuer, identity]],
        colWidths=[_WIDTH - 80 * mm, 80 * mm],
        style=styles.TEXT
        + [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            # the identity table is the column's width: no padding either side
            ("LEFTPADDING", (0, 0), (0, 0), 0),
            ("LEFTPADDING", (-1, 0), (-1, 0), 0),
            ("RIGHTPADDING", (-1, 0), (-1, 0), 0),
        ],
    )
    return [layout, Spacer(1, 4 * mm), HRFlowable(width="100%", thickness=1.2, color=styles.ACCENT)]


def _summary_box(statement: Mapping) -> list[Flowable]:
    """The one sentence a reader needs: who pays whom, how much, at what rate."""
    summary = statement["summary"]
    base = statement["base_currency"]
    net = written.money(summary["net"], base)
    receivable, payable, fees = (
        written.term(summary[key], base) for key in ("receivable", "payable", "fees")
    )
    workings = (
        f"Net {net} {base} = receivable {receivable} − payable {payable} − fees {fees}, in {base}."
    )
    currency = statement["currency"]
    if currency != base and summary["fx_rate"] is None:
        workings += f" Nothing to convert into {currency}, and no fx rate was needed."
    elif currency != base:
        workings += (
            f" Converted at {written.rate_of(summary['fx_rate'], base, currency)},"
            " the rate in force at the end of the period."
        )
    content = [
        _p(_settlement_sentence(statement), styles.SENTENCE),
        Spacer(1, 2 * mm),
        _p(workings, styles.BODY),
    ]
    box = Table(
        [[content]],
        colWidths=[_WIDTH],
        style=styles.TEXT
        + [
            ("BOX", (0, 0), (-1, -1), 1, styles.ACCENT),
            ("BACKGROUND", (0, 0), (-1, -1), styles.SHADE),
            ("LEFTPADDING", (0, 0), (-1, -1), 10),
            ("RIGHTPADDING", (0, 0), (-1, -1), 10),
            ("TOPPADDING", (0, 0), (-1, -1), 9),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 9),
        ],
    )
    return [Spacer(1, 5 * mm), box]


def _settlement_sentence(statement: Mapping) -> str:
    """Say in words who pays whom (SPEC §7: positive net, the operator pays).

    The amount is given without its sign, since the sentence carries the
    direction; the partner's currency comes first because that is what moves.
    """
    summary = statement["summary"]
    base = statement["base_currency"]
    net = Decimal(summary["net"])
    if net == 0:
        position = written.money_in(abs(net), base)
        return f"Nothing to pay: the net position for this period is {position}."
    amount = f"{written.money(abs(net), base)}\xa0{base}"
    if statement["currency"] != base:
        currency = statement["currency"]
        in_currency = Decimal(summary["net_in_currency"])
        converted = written.money(abs(in_currency), currency)
        at_rate = f"at {written.rate_of(summary['fx_rate'], base, currency)}"
        if in_currency == 0:
            return (
                f"Nothing to pay: the net position of {written.money(net, base)}\xa0{base} "
                f"comes to {converted}\xa0{currency} {at_rate}."
            )
        amount = f"{converted}\xa0{currency} ({amount} {at_rate})"
    partner = statement["partner_name"]
    if statement["partner_id"] == OPERATOR_PARTNER:  # the account its bonus points are paid from
        account = f"{partner}, the operator's own account,"
        if net > 0:
            return f"The clearing house pays {account} {amount}."
        return f"{account} pays the clearing house {amount}."
    if net > 0:
        return f"The coalition operator pays {partner} {amount}."
    return f"{partner} pays the coalition operator {amount}."


def _figures(statement: Mapping) -> list[Flowable]:
    """Money on the left, points on the right, one row per figure of SPEC §7."""
    summary = statement["summary"]
    base, currency = statement["base_currency"], statement["currency"]
    money_rows = [
        ("Receivable", written.money_in(summary["receivable"], base)),
        ("Payable", written.money_in(summary["payable"], base)),
        ("Fees", written.money_in(summary["fees"], base)),
        ("Net", written.money_in(summary["net"], base)),
        (
            f"Net in {currency}",
            written.money_in(summary["net_in_currency"], currency),
        ),
        ("FX rate at period end", written.fx_rate(summary["fx_rate"], base, currency)),
        ("Outstanding liability", written.liability(summary["liability"], base)),
    ]
    points_rows = [
        ("Points issued", summary["points_issued"]),
        ("Points redeemed here", summary["points_redeemed"]),
        ("Points reversed", summary["points_reversed"]),
        ("Shortfall points", summary["shortfall_points"]),
        ("Points expired", summary["points_expired"]),
        ("Late items", summary["late_count"]),
        ("Outstanding liability (points)", summary["liability_points"]),
    ]
    rows = [["Money", "", "Points", ""]] + [
        [money_label, money_value, points_label, written.points(points_value)]
        for (money_label, money_value), (points_label, points_value) in zip(
            money_rows, points_rows, strict=True
        )
    ]
    gutter = 8 * mm
    column = (_WIDTH - gutter) / 2
    widths = [column * 0.5, column * 0.5 + gutter, column * 0.66, column * 0.34]
    money_room = widths[0] + widths[1] - gutter - _CELL_PADDING  # to the value's right padding
    table = Table(
        rows,
        colWidths=widths,
        style=styles.GRID
        + [
            ("FONTSIZE", (1, 1), (1, -1), _figure_size(money_rows, money_room)),
            ("FONTNAME", (0, 0), (-1, 0), fonts.BOLD),
            ("TEXTCOLOR", (0, 0), (-1, 0), styles.ACCENT),
            ("LINEBELOW", (0, 0), (1, 0), 0.8, styles.ACCENT),
            ("LINEBELOW", (2, 0), (3, 0), 0.8, styles.ACCENT),
            ("LINEBELOW", (0, 1), (1, -1), 0.4, styles.RULE),
            ("LINEBELOW", (2, 1), (3, -1), 0.4, styles.RULE),
            ("FONTNAME", (0, 4), (1, 4), fonts.BOLD),
            ("ALIGN", (1, 0), (1, -1), "RIGHT"),
            ("ALIGN", (3, 0), (3, -1), "RIGHT"),
            ("RIGHTPADDING", (1, 0), (1, -1), gutter + 6),
            ("LEFTPADDING", (0, 0), (0, -1), 0),
            ("LEFTPADDING", (2, 0), (2, -1), 0),
            ("RIGHTPADDING", (3, 0), (3, -1), 0),
        ],
    )
    return [KeepTogether([_p("Figures for the period", styles.HEADING), table])]


def _figure_size(rows: list[tuple[str, str]], room: float) -> float:
    """The font size of the figures beside their labels in ``room`` (from the label's
    start to the figure's end): the table's own, or smaller where a figure would run
    into its label, as a net of 10³³ dong (10²¹ of a base worth 10¹² dong each) or a
    rate written with twelve decimals would. Measured in bold, the net's font."""
    size = styles.CELL.fontSize
    scales = [
        (room - _CELL_PADDING - pdfmetrics.stringWidth(label, fonts.BOLD, size))
        / pdfmetrics.stringWidth(figure, fonts.BOLD, size)
        for label, figure in rows
    ]
    return size * min(1, *scales)


def _fees(statement: Mapping) -> list[Flowable]:
    """Fees written out by fee rate, so the one rounded figure can be recomputed by hand
    (statements closed before fee lines were kept have none, and print none)."""
    lines = statement["summary"].get("fee_lines")
    if not lines:
        return []
    base = statement["base_currency"]
    terms = "; ".join(
        f"{written.points(line['points'])} × {line['fee_rate']} {base} = "
        f"{Decimal(line['exact_fees']):,f} {base}"
        for line in lines
    )
    fees = written.money(statement["summary"]["fees"], base)
    return [
        _p(
            f"Fees on points issued, net of returns: {terms}. "
            f"Rounded once, half to even: {fees} {base}.",
            styles.FOOTNOTE,
        )
    ]


def _chart(statement: Mapping) -> list[Flowable]:
    """Net position by counterparty; left out when there are no counterparties."""
    if not statement["counterparties"]:
        return []
    base = statement["base_currency"]
    rows = [{**row, "name": _spaced(row["name"])} for row in statement["counterparties"]]
    drawing = chart.net_position_chart(
        rows, _WIDTH, functools.partial(written.money, currency=base)
    )
    return [KeepTogether([_p(f"Net position by counterparty, {base}", styles.HEADING), drawing])]


def _counterparties(statement: Mapping) -> list[Flowable]:
    """The counterparty section: heading, a note on the columns, the own-redemption note,
    then the table (or a line saying there were none)."""
    own = _own(statement)
    if not statement["counterparties"]:
        notes = [_p("No counterparty activity in this period.", styles.BODY), *own]
        return [*_section("Counterparties", notes), *notes]
    # the note before the table, where it cannot be left alone on a page after the table's last
    notes = [_columns_note(statement), *own]
    table, opening = _counterparty_table(statement)
    return [*_section("Counterparties", [*notes, opening]), *notes, table]


def _columns_note(statement: Mapping) -> Flowable:
    partner = fonts.markup(statement["partner_name"], styles.NOTE.fontName)
    return _p(
        f"Points in: the counterparty's points redeemed at {partner}, value receivable. "
        f"Points out: {partner}'s points redeemed at the counterparty, value payable. "
        "Net is value in less value out.",
        styles.NOTE,
        escaped=True,
    )


def _counterparty_table(statement: Mapping) -> tuple[Table, Table]:
    """Every counterparty line in the order given, with totals, header repeated per page;
    and its opening (see :func:`_listing`)."""
    rows, base = statement["counterparties"], statement["base_currency"]
    titles = ["Points in", f"Value in, {base}", "Points out", f"Value out, {base}", f"Net, {base}"]
    header = [_p("Counterparty", styles.HEAD)] + [_p(title, styles.HEAD_RIGHT) for title in titles]
    figures = [
        [
            written.points(row["points_in"]),
            written.money(row["value_in"], base),
            written.points(row["points_out"]),
            written.money(row["value_out"], base),
            written.money(row["net"], base),
        ]
        for row in rows
    ]
    totals = [
        written.points(sum(row[key] for row in rows))
        if key.startswith("points")
        else written.money(sum(Decimal(row[key]) for row in rows), base)
        for key in ("points_in", "value_in", "points_out", "value_out", "net")
    ]
    size, widths = _figure_columns(titles, [*figures, totals])
    name_column = _WIDTH - sum(widths)
    body = [
        [_counterparty_name(row, name_column - 2 * _CELL_PADDING), *line]
        for row, line in zip(rows, figures, strict=True)
    ]
    return _listing(
        [header, *body, ["Total", *totals]],
        [name_column, *widths],
        styles.LISTING
        + [
            ("FONTSIZE", (1, 1), (-1, -1), size),
            ("FONTNAME", (0, -1), (-1, -1), fonts.BOLD),
            ("LINEABOVE", (0, -1), (-1, -1), 0.6, styles.ACCENT),
            # the total goes over with the last two lines: alone under the repeated
            # header, a page would hold nothing to add up
            ("NOSPLIT", (0, -3), (-1, -1)),
        ],
    )


def _own(statement: Mapping) -> list[Flowable]:
    """Own redemption (SPEC §7): counted in the points redeemed here, with no money,
    so the table's points in fall short of them by exactly this much."""
    points = statement["summary"].get("own_redemption_points", 0)
    if not points:
        return []
    partner = fonts.markup(statement["partner_name"], styles.NOTE.fontName)
    count = written.points(abs(points))
    what = (
        f"{count} of {partner}'s own points were redeemed at {partner}"
        if points > 0
        else f"{count} of {partner}'s own points redeemed at {partner} were given back"
    )
    return [
        _p(
            f"Own redemption: {what}, with no money between partners. They count in "
            "Points redeemed here, not among the counterparties.",
            styles.NOTE,
            escaped=True,
        )
    ]


def _figure_columns(titles: list[str], lines: list[list[str]]) -> tuple[float, list[float]]:
    """The font size and widths of the counterparty table's figure columns: each as wide
    as its widest figure, and at least ``_FIGURE_COLUMN`` while the names keep their
    narrowest column. Figures too wide for that together (billions of rupiah or won)
    are printed smaller until they fit, rather than over one another; a column stays
    as wide as its title's longest word, which wraps between words, never within one."""
    size = styles.CELL.fontSize
    # measured in bold, the total's and the titles' font and the wider of the two
    texts = [
        max(pdfmetrics.stringWidth(figure, fonts.BOLD, size) for figure in column)
        for column in zip(*lines, strict=True)
    ]
    floors = [
        max(
            pdfmetrics.stringWidth(word, fonts.BOLD, styles.HEAD.fontSize) for word in title.split()
        )
        + 2 * _CELL_PADDING
        for title in titles
    ]

    def widths(scale: float, least: float = 0) -> list[float]:
        return [
            max(least, floor, text * scale + 2 * _CELL_PADDING)
            for text, floor in zip(texts, floors, strict=True)
        ]

    room = _WIDTH - _NAME_COLUMN_MIN
    if sum(widths(1, _FIGURE_COLUMN)) <= room:
        return size, widths(1, _FIGURE_COLUMN)
    smaller, larger = 0.0, 1.0  # the largest scale that fits, to within a millionth
    while larger - smaller > 1e-6:
        middle = (smaller + larger) / 2
        smaller, larger = (middle, larger) if sum(widths(middle)) <= room else (smaller, middle)
    return size * smaller, widths(smaller)


def _counterparty_name(row: Mapping, room: float) -> Flowable:
    """The name as partners know it, the id in small print for reconciliation.

    On one line drawn straight onto the canvas when it fits, as nearly every
    name does; a paragraph, which wraps, otherwise. A paragraph per name was
    a third of the time of rendering a statement of twenty counterparties.
    """
    name, partner_id = _spaced(row["name"]), row["partner_id"]
    if name == partner_id:  # the id, standing in for a name no font here can print
        runs = [(partner_id, styles.CELL.fontName, styles.CELL.fontSize, styles.CELL.textColor)]
        markup = escape(partner_id)
    else:
        runs = [
            *_styled(f"{name} ", styles.CELL.fontName, styles.CELL.fontSize, styles.CELL.textColor),
            (partner_id, styles.CELL.fontName, _ID_SIZE, styles.MUTED),
        ]
        small = f"<font size={_ID_SIZE} color='{styles.MUTED.hexval()}'>{escape(partner_id)}</font>"
        markup = f"{fonts.markup(row['name'], styles.CELL.fontName)} {small}"
    line = _Line(runs, styles.CELL.leading)
    return line if line.width <= room else Paragraph(markup, styles.CELL)


def _printable(statement: Mapping) -> Mapping:
    """The statement with each partner's name as the page can print it.

    A name with letters no font here has the glyphs for would print with blanks
    ("   pays the coalition operator 0.16 KWD"), so the partner's id stands in
    for it: the reader can still tell who pays whom. An emoji or another symbol
    no font has is left out of the name instead. The JSON and the CSV keep the
    name as written, and so do the document's properties.
    """

    def legible(name: str, partner_id: str) -> str:
        # composed: Korean typed as jamo (as macOS may) is syllables the Korean font has
        name = fonts.isolate(fonts.without_symbols(unicodedata.normalize("NFC", name)))
        return name if name and fonts.draws(_spaced(name)) else partner_id

    return {
        **statement,
        # the operator's own name, which no id stands in for, falls back to "Coalition"
        "coalition_name": legible(_coalition(statement), "Coalition"),
        "partner_name": legible(statement["partner_name"], statement["partner_id"]),
        "counterparties": [
            {**row, "name": legible(row["name"], row["partner_id"])}
            for row in statement["counterparties"]
        ],
    }


def _spaced(name: str) -> str:
    """A name for one drawn line as a paragraph lays it out: a tab or a line break
    is a space (drawn as is, it would print as a missing glyph), a soft hyphen
    is not shown."""
    return " ".join(name.replace("\xad", "").split())


class _Line(Flowable):
    """Runs of text, each in its own font, size and colour, on one line that does not wrap."""

    def __init__(self, runs: list[tuple[str, str, float, colors.Color]], leading: float):
        super().__init__()
        self.runs = runs
        self.width = sum(pdfmetrics.stringWidth(text, font, size) for text, font, size, _ in runs)
        self.height = leading

    def wrap(self, available_width, available_height):
        return self.width, self.height

    def draw(self):
        # the baseline where a paragraph of the first run's size puts its first line
        baseline = self.height - self.runs[0][2]
        _draw_runs(self.canv, 0, baseline, self.runs)


def _late_items(statement: Mapping) -> list[Flowable]:
    """Transactions from closed periods settled here instead (SPEC §7), listed when there
    are any: the figures say how many ("Late items 0"), and a heading over "none" would
    often take a page of its own when the counterparties filled the first."""
    items = statement["late_items"]
    if not items:
        return []
    header = [
        _p(title, styles.HEAD) for title in ("Transaction", "External ID", "Type", "Occurred at")
    ] + [_p("Points", styles.HEAD_RIGHT), _p("Closed period", styles.HEAD)]
    body = [
        [
            str(item["transaction_id"]),
            _p(fonts.isolate(item["external_id"]), styles.CELL),
            item["type"],
            written.timestamp(item["occurred_at"], statement.get("timezone")),
            written.points(item["points"]),
            item["original_period_id"],
        ]
        for item in items
    ]
    # as wide as a ten-digit id, "burn_reversal", "30 Sep 2026 23:10 UTC+05:45" and
    # "-100,000,000" need; the external id, which wraps, has the rest
    widths = [22 * mm, _WIDTH - 135 * mm, 23 * mm, 46 * mm, 22 * mm, 22 * mm]
    style = styles.LISTING + [
        ("ALIGN", (1, 0), (-1, -1), "LEFT"),
        ("ALIGN", (4, 0), (4, -1), "RIGHT"),
    ]
    table, opening = _listing([header, *body], widths, style)
    note = _p(
        "Transactions that occurred in a period already closed; they settle in this one."
        " Points as posted, the change to the member's balance: negative for burns and"
        " returns.",
        styles.NOTE,
    )
    return [*_section("Late items", [note, opening]), note, table]


class _Windowed(Flowable):
    """A listing's table with its header row repeated on each page, handed to ReportLab
    :data:`_WINDOW` rows at a time: the same pages, in time that grows with the rows.

    ReportLab splits a table at a page's foot into what fits and a new table of every
    row left, which it builds and measures again: time in the square of the rows (a
    statement's 2,000 late items drew in 1.9 s, 20,000 in 100 s). Split from a window
    of the rows left instead, each page builds and measures at most a window; the
    page's part is the one the whole table gives (its shading starts again on each
    page either way). A window is taller than any page, so the rows past it are
    never drawn unsplit; a listing of more rows is said to be taller than the room."""

    def __init__(self, header: list, rows: list[list], widths: list[float], style: list):
        super().__init__()
        self.header, self.rows, self.widths, self.style = header, rows, widths, style
        self._table: Table | None = None

    def _window(self) -> Table:
        rows = [self.header, *self.rows[:_WINDOW]]
        return Table(rows, colWidths=self.widths, repeatRows=1, style=self.style)

    def wrap(self, availWidth, availHeight):
        self._table = self._window()
        self.width, self.height = self._table.wrap(availWidth, availHeight)
        if len(self.rows) > _WINDOW:
            self.height = max(self.height, availHeight + 1)
        return self.width, self.height

    def split(self, availWidth, availHeight):
        parts = self._window().split(availWidth, availHeight)
        if len(self.rows) <= _WINDOW or not parts:
            return parts
        shown = len(parts[0]._cellvalues) - 1  # its rows but the header
        return [parts[0], _Windowed(self.header, self.rows[shown:], self.widths, self.style)]

    def drawOn(self, canvas, x, y, _sW=0):
        """Drawn whole, it is the table it wrapped, drawn where the frame puts it."""
        self._table.drawOn(canvas, x, y, _sW)


# rows of a listing ReportLab is given at a time (_Windowed): a row is at least 16.5 pt
# (a line of 10.5 pt and 6 pt of padding), so 100 of them are taller than a page
_WINDOW = 100


def _listing(rows: list[list], widths: list[float], style: list) -> tuple[Flowable, Table]:
    """A listing's table, its header row repeated on each page (:class:`_Windowed`), and
    its opening: the header and first row as a table of their own, to measure (see
    :func:`_section`)."""
    table = _Windowed(rows[0], rows[1:], widths, style)
    return table, Table(rows[:2], colWidths=widths, style=style)


def _section(title: str, opening: list[Flowable]) -> list[Flowable]:
    """Start a listing section on a new page unless its opening fits on this one.

    ``opening`` is what must follow the heading on its page: the notes, and
    the table's header row and first row, as tall as they are drawn (a
    name or an external id of 200 characters is a row of several lines). A
    ``KeepTogether`` would push a long table's start to the next page and
    leave a gap; a conditional break only avoids a heading stranded at the
    foot of a page.
    """
    heading = _p(title, styles.HEADING)
    room = sum(
        part.wrap(_WIDTH, _PAGE_HEIGHT)[1] + part.getSpaceBefore() + part.getSpaceAfter()
        for part in [heading, *opening]
    )
    return [CondPageBreak(room), heading]


def _p(text: str, style: ParagraphStyle, escaped: bool = False) -> Paragraph:
    """A paragraph of plain text, unless ``escaped`` says it is markup already: names
    may hold '&' or '<', and Chinese, Japanese or Korean for their own fonts."""
    return Paragraph(text if escaped else fonts.markup(text, style.fontName), style)


def _coalition(statement: Mapping) -> str:
    return statement.get("coalition_name") or "Coalition"
