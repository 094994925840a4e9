"""A small diverging bar chart of one partner's net position by counterparty.

Drawn by hand with ``reportlab.graphics`` shapes rather than ReportLab's
``HorizontalBarChart`` because the layout needs control that chart offers
poorly: names on the left, a zero axis whose position follows the data, each
bar labelled with its amount at its own end, and bars coloured by side.
Positive bars (to the right) are the receivable side — the counterparty's
customers redeemed more here than this partner's customers did there; negative
bars (to the left) are the payable side.

A coalition can have hundreds of partners, so the chart draws only the largest
positions and says so under the bars, with what the rest net together: it is
for seeing at a glance, the table beside it holds every line. The rest are not
folded into one "others" bar, because such a bar dwarfs every real
counterparty. Names need not be unique (a chain's outlets), so a name that two
counterparties share is followed by each one's partner id, as in the table.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

from reportlab.graphics.shapes import Drawing, Group, Line, Rect, String
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

from reports import fonts, styles

_RECEIVABLE_COLOUR = colors.HexColor("#2E7D5B")
_PAYABLE_COLOUR = colors.HexColor("#B23B3B")

_FONT_SIZE = 7.5
_BAR_HEIGHT = 10
_ROW_PITCH = 15
_NAME_WIDTH = 130
_GAP = 4
_LEGEND_HEIGHT = 18
_CAPTION_HEIGHT = 12
_PLOT_X = _NAME_WIDTH + 2 * _GAP


class Bar(NamedTuple):
    """One bar of the chart.

    Attributes:
        label: counterparty name.
        net: value in minus value out, in the base currency.
        tag: the counterparty's partner id, printed after a name another one shares.
    """

    label: str
    net: Decimal
    tag: str = ""


def net_position_chart(
    counterparties: Iterable[Mapping],
    width: float,
    format_amount: Callable[[Decimal], str],
    max_bars: int = 10,
) -> Drawing:
    """Draw net position by counterparty as horizontal bars around a zero axis.

    Args:
        counterparties: statement counterparty rows; ``partner_id``, ``name`` and
            ``net`` (a decimal string) are used.
        width: drawing width in points, normally the frame width.
        format_amount: turns a net into its label, so the chart prints money
            exactly as the statement's tables do.
        max_bars: most bars drawn; beyond it only the largest absolute nets
            are drawn and a caption says how many of how many, and what the
            others net.

    Returns:
        A Drawing sized to its bars, ready to be placed in a story.
    """
    fonts.register()
    rows = _bars(counterparties)
    bars = _largest(rows, max_bars)
    labels = [format_amount(bar.net) for bar in bars]
    shortened = len(bars) < len(rows)
    axis_bottom = _LEGEND_HEIGHT + (2 * _CAPTION_HEIGHT if shortened else 0)
    height = axis_bottom + len(bars) * _ROW_PITCH + _GAP
    # Without an initial font ReportLab opens every drawing in Helvetica.
    drawing = Drawing(width, height, initialFontName=fonts.REGULAR, initialFontSize=_FONT_SIZE)
    zero_x, scale = _axis(bars, labels, width)
    for row, (bar, label) in enumerate(zip(bars, labels, strict=True)):
        _draw_bar(drawing, bar, label, zero_x, scale, height - (row + 1) * _ROW_PITCH)
    drawing.add(
        Line(zero_x, axis_bottom, zero_x, height, strokeColor=styles.MUTED, strokeWidth=0.6)
    )
    _draw_legend(drawing, axis_bottom - _LEGEND_HEIGHT)
    if shortened:
        caption = f"Largest {len(bars)} of {len(rows)} counterparties by size of net position; "
        drawing.add(_text(_PLOT_X, 2 + _CAPTION_HEIGHT, caption + "the table lists them all."))
        others = sum((row.net for row in rows), Decimal(0)) - sum(bar.net for bar in bars)
        remark = f"The other {len(rows) - len(bars)} together: net {format_amount(others)}."
        drawing.add(_text(_PLOT_X, 2, remark))
    return drawing


def _bars(counterparties: Iterable[Mapping]) -> list[Bar]:
    """A bar a counterparty, tagged with its partner id where its name is not its own."""
    rows = list(counterparties)
    names = Counter(row["name"] for row in rows)
    return [
        Bar(row["name"], Decimal(row["net"]), row["partner_id"] if names[row["name"]] > 1 else "")
        for row in rows
    ]


def _largest(bars: list[Bar], max_bars: int) -> list[Bar]:
    """Pick the bars to draw: at most ``max_bars`` of the largest absolute nets.

    Ties are broken by name, then id, so the same statement always draws the
    same chart. The bars come back ordered from the most receivable to the most
    payable, which reads top to bottom like a ranking.
    """
    largest = sorted(bars, key=lambda bar: (-abs(bar.net), bar.label, bar.tag))[:max_bars]
    return sorted(largest, key=lambda bar: (-bar.net, bar.label, bar.tag))


def _axis(bars: list[Bar], labels: list[str], width: float) -> tuple[float, float]:
    """Place the zero axis and choose points per unit of money.

    Room is kept on each side for the widest amount label of that side so
    labels never run into the names or off the drawing.
    """
    most_payable = max((-bar.net for bar in bars if bar.net < 0), default=Decimal(0))
    most_receivable = max((bar.net for bar in bars if bar.net > 0), default=Decimal(0))
    left_room = _widest(label for bar, label in zip(bars, labels, strict=True) if bar.net < 0)
    right_room = _widest(label for bar, label in zip(bars, labels, strict=True) if bar.net >= 0)
    plot_left = _PLOT_X + left_room
    plot_width = width - right_room - plot_left
    span = most_payable + most_receivable
    if span == 0:
        return plot_left, 0.0
    scale = plot_width / float(span)
    return plot_left + float(most_payable) * scale, scale


def _widest(labels: Iterable[str]) -> float:
    """Width of the widest label plus its gap, or nothing when there is none."""
    widths = [stringWidth(label, fonts.REGULAR, _FONT_SIZE) for label in labels]
    return max(widths) + _GAP if widths else 0.0


def _draw_bar(
    drawing: Drawing, bar: Bar, label: str, zero_x: float, scale: float, y: float
) -> None:
    """Draw one row: name (and tag) on the left, the bar from zero, its amount at its end."""
    name_end = _NAME_WIDTH
    if bar.tag:
        tag = fonts.fit(bar.tag, fonts.REGULAR, _FONT_SIZE, _NAME_WIDTH / 2)
        drawing.add(_text(name_end, y + 2, tag, anchor="end", colour=styles.MUTED))
        name_end -= stringWidth(tag, fonts.REGULAR, _FONT_SIZE) + _GAP
    name = fonts.fit(bar.label, fonts.REGULAR, _FONT_SIZE, name_end)
    drawing.add(_text(name_end, y + 2, name, anchor="end", whole=bar.label))
    end = zero_x + float(bar.net) * scale
    colour = _PAYABLE_COLOUR if bar.net < 0 else _RECEIVABLE_COLOUR
    drawing.add(
        Rect(
            min(zero_x, end), y, abs(end - zero_x), _BAR_HEIGHT, fillColor=colour, strokeColor=None
        )
    )
    if bar.net < 0:
        drawing.add(_text(end - _GAP, y + 2, label, anchor="end"))
    else:
        drawing.add(_text(end + _GAP, y + 2, label))


def _text(
    x: float,
    y: float,
    text: str,
    anchor: str = "start",
    whole: str | None = None,
    colour=styles.INK,
) -> Group:
    """A line of text from ``x``, or ending at it, each run in the font that has its glyphs
    (``whole``: the text it was shortened from, see :func:`fonts.runs`)."""
    if anchor == "end":
        x -= fonts.width(text, fonts.REGULAR, _FONT_SIZE, whole)
    line = Group()
    for run, font in fonts.runs(text, whole=whole):
        line.add(String(x, y, run, fontName=font, fontSize=_FONT_SIZE, fillColor=colour))
        x += stringWidth(run, font, _FONT_SIZE)
    return line


def _draw_legend(drawing: Drawing, y: float) -> None:
    """Explain the two colours under the bars."""
    x = _PLOT_X
    for colour, text in (
        (_RECEIVABLE_COLOUR, "Net receivable (value in exceeds value out)"),
        (_PAYABLE_COLOUR, "Net payable (value out exceeds value in)"),
    ):
        drawing.add(Rect(x, y + 3, 8, 8, fillColor=colour, strokeColor=None))
        drawing.add(_text(x + 12, y + 4, text))
        x += 24 + stringWidth(text, fonts.REGULAR, _FONT_SIZE)
