"""Roboto for statements, registered with ReportLab from the font-roboto package.

ReportLab's built-in Type 1 fonts only cover Latin-1, so a Cyrillic partner
name or the ₽ sign would come out as black boxes. SPEC §8 asks for any Unicode
name to render as real, extractable text on a fresh machine with no system
fonts, so the TTFs come from the ``font-roboto`` wheel on PyPI and are embedded
(subset) into every PDF.

Roboto has no Chinese, Japanese or Korean. For those the statement uses
Adobe's standard CJK fonts through ReportLab's CID fonts: PDF viewers supply
them (Acrobat, pdf.js, MuPDF, Preview), so nothing is embedded and the text
still extracts. Nor has Roboto Arabic, Hebrew or Thai: Noto Sans Arabic, Heebo
and Noto Sans Thai come from their fontpkg wheels and are embedded like
Roboto. A name is cut into runs, each drawn by the font that has it.

ReportLab draws a string left to right, one glyph per character, so a text
with Arabic or Hebrew is first put in the order and the letter forms it is
seen in (:func:`_visual`): Arabic letters joined into their initial, medial
and final forms, and each right-to-left run reversed, within a line read
left to right, as a statement's English is.
"""

import functools
import os
import re
import unicodedata
from xml.sax.saxutils import escape

import arabic_reshaper
import fontpkg
from bidi.algorithm import get_display
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

REGULAR = "Roboto"
BOLD = "Roboto-Bold"

_FILES = {REGULAR: "Roboto-Regular.ttf", BOLD: "Roboto-Bold.ttf"}

# Adobe's CJK fonts, one per character collection; they come in one weight. What
# each maps is its national character set, as Python's codec for that set knows
# it: against MuPDF's copy of Adobe's maps, all but ten rare symbols agree.
_JAPANESE = "HeiseiKakuGo-W5"
_KOREAN = "HYGothic-Medium"
_CHINESE = "STSong-Light"
_CHARACTER_SETS = {_JAPANESE: "cp932", _KOREAN: "cp949", _CHINESE: "gbk"}

# Scripts Roboto lacks, from fontpkg wheels (font name: fontpkg family); one weight
# each, as the CJK fonts. Thai's marks sit well enough without the font's positioning.
_FONTPKG = {
    "NotoSansArabic": "Noto Sans Arabic",
    "Heebo": "Heebo",
    "NotoSansThai": "Noto Sans Thai",
}

_ISOLATE, _ISOLATE_END = "\u2068", "\u2069"  # first strong isolate, pop directional isolate
# a name set apart, to its end mark or, shortened to fit, to the end of the text
_ISOLATED = re.compile(f"{_ISOLATE}([^{_ISOLATE}{_ISOLATE_END}]*)(?:{_ISOLATE_END}|$)")
# marks that steer the bidirectional algorithm, as a name may carry them pasted from elsewhere
_BIDI_MARKS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# emoji and other symbols (skin tones among them, as modifier symbols)
_SYMBOLS = frozenset({"So", "Sk", "Sm", "Sc"})
# what only ever dresses an emoji: text or emoji presentation, a keycap's frame
_EMOJI_DRESS = frozenset("\ufe0e\ufe0f\u20e3")
# what joins another character to a symbol left out, and goes with it: the zero-width
# joiner, tag characters (a region's flag); marks, by their category
_JOINERS = re.compile("[\u200d\U000e0020-\U000e007f]")

_KANA = ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF65, 0xFF9F))  # with halfwidth katakana
_HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7A3), (0xFFA0, 0xFFDC))


def register() -> None:
    """Register Roboto regular and bold, the CJK fonts and the fontpkg ones, once
    per process.

    Safe to call before every render: ReportLab keeps fonts in a process-wide
    registry, so later calls return at once. The family mapping makes ``<b>``
    in paragraphs pick the bold face.

    Raises:
        RuntimeError: a font package (font-roboto, or a fontpkg wheel) or
            one of its TTF files is missing or unreadable.
    """
    if {*_FILES, *_CHARACTER_SETS, *_FONTPKG} <= set(pdfmetrics.getRegisteredFontNames()):
        return
    directory = _font_directory()
    for name, filename in _FILES.items():
        pdfmetrics.registerFont(_load(name, os.path.join(directory, filename)))
    for name in _CHARACTER_SETS:
        pdfmetrics.registerFont(UnicodeCIDFont(name))
    for name, family in _FONTPKG.items():
        pdfmetrics.registerFont(_load(name, *_fontpkg_file(family)))
        pdfmetrics.registerFontFamily(name, normal=name, bold=name, italic=name, boldItalic=name)
    pdfmetrics.registerFontFamily(
        REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD
    )


def runs(text: str, font: str = REGULAR, whole: str | None = None) -> list[tuple[str, str]]:
    """``text``, in the order it is seen (:func:`_visual`), cut into runs of
    ``(text, font)``: ``font`` where it has the glyphs (Latin, Greek, Cyrillic),
    a CJK font for Chinese, Japanese and Korean, Noto Sans Arabic, Heebo or Noto
    Sans Thai for Arabic, Hebrew and Thai. A character in none stays in ``font``.

    A CJK character takes the font of the text's language where that font has
    it: Japanese if the text has kana, so a Japanese name's kanji match its
    kana; Korean if it has hangul; Chinese if neither. ``whole``, the text that
    ``text`` was shortened from, decides the language when given.
    """
    register()
    text = _visual(text)
    glyphs = pdfmetrics.getFont(font).face.charWidths
    if all(ord(char) in glyphs for char in text):  # nearly every text a statement prints
        return [(text, font)]
    preferred = (*_preference(whole or text), *_FONTPKG)
    found: list[tuple[str, str]] = []
    for char in text:
        chosen = font
        if ord(char) not in glyphs:
            chosen = next((other for other in preferred if _has(other, char)), font)
        if found and found[-1][1] == chosen:
            found[-1] = (found[-1][0] + char, chosen)
        else:
            found.append((char, chosen))
    return found


def draws(text: str) -> bool:
    """Whether every character of ``text``, as it is seen, has a glyph in Roboto or
    another font here. One in none (Devanagari, emoji, a character no CJK font's
    map has …) would print as nothing and extract as a blank."""
    register()
    glyphs = pdfmetrics.getFont(REGULAR).face.charWidths
    return all(
        ord(char) in glyphs or any(_has(other, char) for other in (*_CHARACTER_SETS, *_FONTPKG))
        for char in _visual(text)
    )


def without_symbols(name: str) -> str:
    """``name`` without the emoji and other symbols no font here draws: "Tom's Bar 🍕"
    prints as "Tom's Bar", the name a reader knows, where a blank would stand. What
    joins or marks a symbol left out goes with it. A letter no font draws is kept, for
    :func:`draws` to refuse the whole name: a word with letters left out would read
    as another word. Empty when nothing visible is left ("🍕" alone)."""
    kept, left_out = [], False
    for char in name:
        category = unicodedata.category(char)
        joins_one_left_out = left_out and (category[0] == "M" or _JOINERS.match(char) is not None)
        left_out = (
            char in _EMOJI_DRESS or joins_one_left_out or (category in _SYMBOLS and not draws(char))
        )
        if not left_out:
            kept.append(char)
    if len(kept) == len(name):
        return name
    printed = " ".join("".join(kept).split())
    return printed if any(unicodedata.category(char)[0] not in "CZ" for char in printed) else ""


def isolate(name: str) -> str:
    """A name with Arabic or Hebrew set apart from the line it is printed in, with
    Unicode's isolate marks: it then reads in its own direction, and a sentence's
    figure beside it ("pays مقهى 7,568.18 RUB") stays out of its run. The marks
    are not drawn. Marks of direction the name carried itself are dropped: one
    pasted with it would end the isolate early, or print as a blank."""
    name = _BIDI_MARKS.sub("", name)
    return f"{_ISOLATE}{name}{_ISOLATE_END}" if _right_to_left(name) else name


def markup(text: str, font: str) -> str:
    """``text`` escaped for a paragraph in ``font``, each run Roboto lacks in the font
    that has it (see :func:`runs`)."""
    return "".join(
        escape(run) if run_font == font else f'<font name="{run_font}">{escape(run)}</font>'
        for run, run_font in runs(text, font)
    )


def width(text: str, font: str, size: float, whole: str | None = None) -> float:
    """The width of ``text`` drawn in its runs (see :func:`runs`), in points."""
    return sum(
        pdfmetrics.stringWidth(run, run_font, size) for run, run_font in runs(text, font, whole)
    )


def fit(text: str, font: str, size: float, room: float) -> str:
    """``text`` shortened with an ellipsis until it is no wider than ``room``; drawn,
    its runs take the whole text's language (``runs(…, whole=text)``)."""
    if width(text, font, size) <= room:
        return text
    shortened = text
    while shortened and width(shortened + "…", font, size, whole=text) > room:
        shortened = shortened[:-1]
    return shortened.rstrip() + "…"


def _preference(text: str) -> tuple[str, ...]:
    """The CJK fonts in the order a text's language prefers them."""
    codes = [ord(char) for char in text]
    if any(_within(code, _KANA) for code in codes):
        return _JAPANESE, _CHINESE, _KOREAN
    if any(_within(code, _HANGUL) for code in codes):
        return _KOREAN, _CHINESE, _JAPANESE
    return _CHINESE, _JAPANESE, _KOREAN


@functools.lru_cache(maxsize=4096)
def _visual(text: str) -> str:
    """``text`` in the order and letter forms it is seen in, where it has Arabic or
    Hebrew: Arabic letters in their joined forms (the presentation forms the
    font maps), each right-to-left run reversed and its brackets mirrored, in a
    line read left to right; a name set apart (:func:`isolate`) in its own
    direction, in its place in the line. Any other text is returned as it is.

    python-bidi's algorithm that mirrors brackets does not read isolates, so the
    text is cut at them: outside them a statement's line has no right-to-left
    text of its own, and each isolate stands in it as one neutral piece."""
    if not _right_to_left(text):
        return text
    pieces = _ISOLATED.split(text)  # the line's own text at even places, names at odd ones
    return "".join(_seen(piece, None if place % 2 else "L") for place, piece in enumerate(pieces))


def _seen(text: str, direction: str | None) -> str:
    """One piece as it is seen, read left to right (``"L"``) or in the direction of
    its first letter (``None``)."""
    if not _right_to_left(text):
        return text
    # the reshaper leaves out Arabic's vowel marks, as most print does: drawn without the
    # font's positioning, which ReportLab does not apply, they would stand beside their letters
    return get_display(arabic_reshaper.reshape(text), base_dir=direction)


def _right_to_left(text: str) -> bool:
    return any(unicodedata.bidirectional(char) in ("R", "AL") for char in text)


@functools.cache
def _has(other: str, char: str) -> bool:
    """Whether a font other than Roboto has ``char``: a fontpkg font's glyphs, or a
    CJK font's map, which has what its character set encodes and decodes as the
    same character."""
    code = ord(char)
    if code < 0x80:
        return False  # ASCII is Roboto's: what it lacks are controls, blank in any font
    if other in _FONTPKG:
        return code in pdfmetrics.getFont(other).face.charWidths
    if other == _CHINESE and 0x3400 <= code <= 0x4DB5:
        return True  # Extension A: in GB 18030, which Adobe-GB1 follows, not in GBK
    if 0xF900 <= code <= 0xFAFF or 0xFE30 <= code <= 0xFE4F:
        return False  # compatibility ideographs (NFC makes them unified ones), vertical forms
    try:
        return char.encode(_CHARACTER_SETS[other]).decode(_CHARACTER_SETS[other]) == char
    except UnicodeError:
        return False


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


def _fontpkg_file(family: str) -> tuple[str, str]:
    """The TTF of a fontpkg family and the package it comes from, or a clear
    error naming the package to install."""
    package = "fontpkg-" + family.lower().replace(" ", "-")
    try:
        return str(fontpkg.path(family)), package
    except fontpkg.FontpkgError as error:
        raise RuntimeError(
            f"Statement PDFs need the '{package}' package for names in {family}'s "
            f"script; install it with 'pip install {package}'"
        ) from error


def _load(name: str, path: str, package: str = "font-roboto") -> TTFont:
    """Load one TTF, turning ReportLab's low-level errors into a clear message."""
    if not os.path.isfile(path):
        raise RuntimeError(
            f"Font file {path} is missing; the '{package}' package looks "
            f"incomplete, reinstall it with 'pip install --force-reinstall {package}'"
        )
    try:
        return TTFont(name, path)
    except TTFError as error:
        raise RuntimeError(f"Font file {path} from '{package}' cannot be read: {error}") from error
