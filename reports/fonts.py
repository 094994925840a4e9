"""Roboto for statements, registered with ReportLab from the font-roboto package.

ReportLab's built-in Type 1 fonts only cover Latin-1, so a Cyrillic partner
name or the ₽ sign would come out as black boxes. SPEC §8 asks for any Unicode
name to render as real, extractable text on a fresh machine with no system
fonts, so the TTFs come from the ``font-roboto`` wheel on PyPI and are embedded
(subset) into every PDF.
"""

import os

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

REGULAR = "Roboto"
BOLD = "Roboto-Bold"

_FILES = {REGULAR: "Roboto-Regular.ttf", BOLD: "Roboto-Bold.ttf"}


def register() -> None:
    """Register Roboto regular and bold once per process.

    Safe to call before every render: ReportLab keeps fonts in a process-wide
    registry, so later calls return at once. The family mapping makes ``<b>``
    in paragraphs pick the bold face.

    Raises:
        RuntimeError: the font-roboto package or one of its TTF files is
            missing or unreadable.
    """
    if set(_FILES) <= set(pdfmetrics.getRegisteredFontNames()):
        return
    directory = _font_directory()
    for name, filename in _FILES.items():
        pdfmetrics.registerFont(_load(name, os.path.join(directory, filename)))
    pdfmetrics.registerFontFamily(
        REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD
    )


def draws(text: str, font: str = REGULAR) -> bool:
    """Whether ``font`` has a glyph for every character of ``text``. Roboto covers
    Latin, Greek and Cyrillic; a character it lacks (Arabic, Chinese, emoji …) is
    drawn as nothing and extracts as a blank."""
    register()
    glyphs = pdfmetrics.getFont(font).face.charWidths
    return all(ord(char) in glyphs for char in text)


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
