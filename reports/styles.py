"""The statement's look: its palette, paragraph styles and table styles, shared by
the pages and the chart so that both print in the same inks."""

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm

from reports import fonts

INK = colors.HexColor("#1B2430")
MUTED = colors.HexColor("#5A6472")
ACCENT = colors.HexColor("#1F3A5F")
RULE = colors.HexColor("#C9D1DB")
SHADE = colors.HexColor("#F1F4F8")

BODY = ParagraphStyle("body", fontName=fonts.REGULAR, fontSize=9, leading=12, textColor=INK)
SMALL = ParagraphStyle("small", BODY, fontSize=7.5, leading=10, textColor=MUTED)
NOTE = ParagraphStyle("note", SMALL, spaceAfter=2 * mm)
FOOTNOTE = ParagraphStyle("footnote", NOTE, spaceBefore=2 * mm)
TITLE = ParagraphStyle(
    "title", BODY, fontName=fonts.BOLD, fontSize=20, leading=24, textColor=ACCENT
)
SUBTITLE = ParagraphStyle("subtitle", BODY, fontSize=11, leading=14, textColor=MUTED)
PARTNER = ParagraphStyle("partner", BODY, fontName=fonts.BOLD, fontSize=14, leading=18)
HEADING = ParagraphStyle(
    "heading",
    BODY,
    fontName=fonts.BOLD,
    fontSize=11,
    leading=14,
    textColor=ACCENT,
    spaceBefore=12,
    spaceAfter=6,
)
SENTENCE = ParagraphStyle("sentence", BODY, fontName=fonts.BOLD, fontSize=12.5, leading=17)
CELL = ParagraphStyle("cell", BODY, fontSize=8.5, leading=10.5)
CELL_BOLD = ParagraphStyle("cell_bold", CELL, fontName=fonts.BOLD)
HEAD = ParagraphStyle("head", CELL, fontName=fonts.BOLD, textColor=colors.white)
HEAD_RIGHT = ParagraphStyle("head_right", HEAD, alignment=TA_RIGHT)

# Every table names its font, even one holding only paragraphs: ReportLab
# selects the cell font before drawing any cell and would otherwise pull
# Helvetica, which cannot show Cyrillic, into the PDF.
TEXT = [
    ("FONTNAME", (0, 0), (-1, -1), fonts.REGULAR),
    ("FONTSIZE", (0, 0), (-1, -1), 8.5),
    ("LEADING", (0, 0), (-1, -1), 10.5),
    ("TEXTCOLOR", (0, 0), (-1, -1), INK),
]
GRID = TEXT + [
    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ("TOPPADDING", (0, 0), (-1, -1), 3),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
]
LISTING = GRID + [
    ("BACKGROUND", (0, 0), (-1, 0), ACCENT),
    ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, SHADE]),
    ("LINEBELOW", (0, -1), (-1, -1), 0.6, ACCENT),
    ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
]
