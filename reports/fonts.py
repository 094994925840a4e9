"""Roboto for statements, registered with ReportLab from the font-roboto package.

ReportLab's built-in Type 1 fonts only cover Latin-1, so a Cyrillic partner
name or the ₽ sign would come out as black boxes. SPEC §8 asks for any Unicode
name to render as real, extractable text on a fresh machine with no system
fonts, so the TTFs come from the ``font-roboto`` wheel on PyPI and are embedded
(subset) into every PDF.

Roboto has no Chinese, Japanese or Korean. For those the statement uses
Adobe's standard CJK fonts through ReportLab's CID fonts: PDF viewers supply
them (Acrobat, pdf.js, MuPDF, Preview), so nothing is embedded and the text
still extracts. A name is cut into runs, each drawn by the font that has it.
"""

import os
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

REGULAR = "Roboto"
BOLD = "Roboto-Bold"

_FILES = {REGULAR: "Roboto-Regular.ttf", BOLD: "Roboto-Bold.ttf"}

# Adobe's CJK fonts, one per character collection; they come in one weight
_JAPANESE = "HeiseiKakuGo-W5"
_KOREAN = "HYGothic-Medium"
_CHINESE = "STSong-Light"  # Adobe-GB1 holds GB 18030's ideographs, traditional ones too

# What their UCS-2 encodings map, in the Basic Multilingual Plane: ideographs
# to U+9FA5 and Extension A to U+4DB5 (later additions have no glyph there)
_KANA = ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF65, 0xFF9F))  # with halfwidth katakana
_HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7A3), (0xFFA0, 0xFFDC))
_CJK = (
    *_KANA,
    *_HANGUL,
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3400, 0x4DB5),
    (0x4E00, 0x9FA5),
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0xFF00, 0xFFEF),  # halfwidth and fullwidth forms
)


def register() -> None:
    """Register Roboto regular and bold, and the CJK fonts, once per process.

    Safe to call before every render: ReportLab keeps fonts in a process-wide
    registry, so later calls return at once. The family mapping makes ``<b>``
    in paragraphs pick the bold face.

    Raises:
        RuntimeError: the font-roboto package or one of its TTF files is
            missing or unreadable.
    """
    if {*_FILES, _JAPANESE, _KOREAN, _CHINESE} <= set(pdfmetrics.getRegisteredFontNames()):
        return
    directory = _font_directory()
    for name, filename in _FILES.items():
        pdfmetrics.registerFont(_load(name, os.path.join(directory, filename)))
    for name in (_JAPANESE, _KOREAN, _CHINESE):
        pdfmetrics.registerFont(UnicodeCIDFont(name))
    pdfmetrics.registerFontFamily(
        REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD
    )


def runs(text: str, font: str = REGULAR) -> list[tuple[str, str]]:
    """``text`` cut into runs of ``(text, font)``: ``font`` where Roboto has the
    glyphs (Latin, Greek, Cyrillic), a CJK font for Chinese, Japanese and Korean.
    A character in neither stays in ``font``.

    Hangul is Korean. Ideographs and kana take the text's language: Japanese
    if it has kana, so a Japanese name's kanji match its kana; Korean if it has
    hangul; Chinese if neither.
    """
    register()
    glyphs = pdfmetrics.getFont(font).face.charWidths
    if all(ord(char) in glyphs for char in text):  # nearly every text a statement prints
        return [(text, font)]
    cjk = _cjk_font(text)
    found: list[tuple[str, str]] = []
    for char in text:
        code = ord(char)
        if code in glyphs or not _within(code, _CJK):
            chosen = font
        else:  # the Japanese font has no hangul
            chosen = _KOREAN if _within(code, _HANGUL) else cjk
        if found and found[-1][1] == chosen:
            found[-1] = (found[-1][0] + char, chosen)
        else:
            found.append((char, chosen))
    return found


def draws(text: str) -> bool:
    """Whether every character of ``text`` has a glyph in Roboto or a CJK font. One
    in neither (Arabic, emoji …) would print as nothing and extract as a blank."""
    register()
    glyphs = pdfmetrics.getFont(REGULAR).face.charWidths
    return all(ord(char) in glyphs or _within(ord(char), _CJK) for char in text)


def markup(text: str, font: str) -> str:
    """``text`` escaped for a paragraph in ``font``, its CJK runs in their own font."""
    return "".join(
        escape(run) if run_font == font else f'<font name="{run_font}">{escape(run)}</font>'
        for run, run_font in runs(text, font)
    )


def width(text: str, font: str, size: float) -> float:
    """The width of ``text`` drawn in its runs, in points."""
    return sum(pdfmetrics.stringWidth(run, run_font, size) for run, run_font in runs(text, font))


def fit(text: str, font: str, size: float, room: float) -> str:
    """``text`` shortened with an ellipsis until it is no wider than ``room``."""
    if width(text, font, size) <= room:
        return text
    while text and width(text + "…", font, size) > room:
        text = text[:-1]
    return text.rstrip() + "…"


def _cjk_font(text: str) -> str:
    codes = [ord(char) for char in text]
    if any(_within(code, _KANA) for code in codes):
        return _JAPANESE
    if any(_within(code, _HANGUL) for code in codes):
        return _KOREAN
    return _CHINESE


def _within(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(first <= code <= last for first, last in ranges)


def _font_directory() -> str:
    """Return the folder holding the font-roboto TTFs.

    Imported here rather than at module level so that a missing package
    surfaces as the clear error below, not an ImportError at import time.
    """
    try:
        import font_roboto
    except ImportError as error:
        raise RuntimeError(
            "Statement PDFs need the 'font-roboto' package for Cyrillic, € and ₽ "
            "glyphs; install it with 'pip install font-roboto'"
        ) from error
    return font_roboto.font_directory


def _load(name: str, path: str) -> TTFont:
    """Load one TTF, turning ReportLab's low-level errors into a clear message."""
    if not os.path.isfile(path):
        raise RuntimeError(
            f"Font file {path} is missing; the 'font-roboto' package looks "
            "incomplete, reinstall it with 'pip install --force-reinstall font-roboto'"
        )
    try:
        return TTFont(name, path)
    except TTFError as error:
        raise RuntimeError(
            f"Font file {path} from 'font-roboto' cannot be read: {error}"
        ) from error
