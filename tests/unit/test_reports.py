"""Statement PDF and CSV rendering (SPEC §8), read back the way a finance team would.

The PDF is checked through its text layer (pypdf), which is also how we know
Cyrillic names are real text and not boxes. Figures in the fixture are worked
out by hand: net = receivable − payable − fees, net_in_currency = net ÷ fx_rate.
"""

import io
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pypdf
import pytest
from reportlab.pdfbase.pdfmetrics import stringWidth

from reports import fonts, render_pdf, render_settlement_csv, render_statement_csv, written
from reports import statement as statement_module
from tests.documents import csv_blocks

SHA = "3f7a9c0e5b1d2468ace013579bdf2468ace013579bdf2468ace013579bdf2468"
REPO = Path(__file__).resolve().parents[2]


def make_statement(**changes) -> dict:
    """Aroma's October statement: 120.40 − 35.10 − 2.05 = 83.25 EUR = 7 568.18 RUB at 0.0110."""
    statement = {
        "id": 7,
        "number": "2026-10-0003",
        "period_id": "2026-10",
        "period_start": "2026-10-01T00:00:00+00:00",
        "period_end": "2026-11-01T00:00:00+00:00",
        "partner_id": "aroma",
        "partner_name": "Кофейня Арома",
        "coalition_name": "Coalition",
        "status": "final",
        "sha256": SHA,
        "issued_at": "2026-11-04T09:00:00+00:00",
        "currency": "RUB",
        "base_currency": "EUR",
        "summary": {
            "partner_id": "aroma",
            "currency": "RUB",
            "receivable": "120.40",
            "payable": "35.10",
            "fees": "2.05",
            "net": "83.25",
            "fx_rate": "0.0110",
            "net_in_currency": "7568.18",
            "points_issued": 1370,
            "points_redeemed": 12040,
            "points_reversed": 0,
            "shortfall_points": 0,
            "points_expired": 150,
            "late_count": 1,
            "liability_points": 4200,
            "liability": "42.00",
        },
        "counterparties": [
            {
                "partner_id": "skyair",
                "name": "SkyAir",
                "points_in": 9000,
                "value_in": "90.00",
                "points_out": 0,
                "value_out": "0.00",
                "net": "90.00",
            },
            {
                "partner_id": "fitgym",
                "name": "Фитнес Зал",
                "points_in": 3040,
                "value_in": "30.40",
                "points_out": 3510,
                "value_out": "35.10",
                "net": "-4.70",
            },
        ],
        "late_items": [
            {
                "transaction_id": 55,
                "external_id": "till-7-000999",
                "type": "burn",
                "occurred_at": "2026-09-30T23:10:00+00:00",
                "points": -300,
                "original_period_id": "2026-09",
            },
        ],
    }
    summary_changes = changes.pop("summary", {})
    statement.update(changes)
    statement["summary"] = {**statement["summary"], **summary_changes}
    return statement


def pages_text(pdf: bytes) -> list[str]:
    """Each page's text with runs of whitespace (wraps, no-break spaces) as one space."""
    return [
        " ".join(page.extract_text().split()) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages
    ]


def summary_text(statement: dict) -> str:
    return pages_text(render_pdf(statement))[0]


def test_pdf_text_names_partner_period_number_net_and_hash():
    text = " ".join(pages_text(render_pdf(make_statement())))

    assert "Кофейня Арома" in text
    assert "2026-10" in text
    assert "2026-10-0003" in text
    assert "83.25 EUR" in text
    assert "7,568.18 RUB" in text
    assert SHA in text


def test_pdf_keeps_currency_signs_and_markup_characters_as_text():
    text = " ".join(pages_text(render_pdf(make_statement(partner_name="Обмен € & ₽ <Центр>"))))

    assert "Обмен € & ₽ <Центр>" in text


def test_pdf_embeds_roboto_so_cyrillic_needs_no_system_font():
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(make_statement())))
    fonts = {font["/BaseFont"] for font in reader.pages[0]["/Resources"]["/Font"].values()}

    assert fonts and all("Roboto" in name for name in fonts)


def test_same_statement_renders_identical_pdf_bytes():
    assert render_pdf(make_statement()) == render_pdf(make_statement())


def test_the_pdfs_creation_date_is_when_the_statement_was_issued():
    # what a reader's document properties show; ReportLab's invariant mode would
    # otherwise write 1 January 2000 in every statement
    pdf = render_pdf(make_statement(issued_at="2026-11-04T09:15:30+00:00"))
    assert pypdf.PdfReader(io.BytesIO(pdf)).metadata["/CreationDate"] == "D:20261104091530+00'00'"


def test_same_statement_renders_identical_pdf_bytes_in_another_process():
    script = (
        "import sys, json; from reports import render_pdf; "
        "sys.stdout.buffer.write(render_pdf(json.loads(sys.stdin.read())))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(make_statement()).encode(),
        capture_output=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout

    assert other == render_pdf(make_statement())


def test_a_process_renders_one_statement_at_a_time(monkeypatch):
    """Renders asked for at once in threads run one after another (the reason is below)."""
    inside, most = [0], [0]
    real = statement_module._render

    def render_counting(statement):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for every other thread to arrive
        inside[0] -= 1
        return real(statement)

    monkeypatch.setattr(statement_module, "_render", render_counting)
    with ThreadPoolExecutor(4) as pool:
        rendered = list(pool.map(lambda _: render_pdf(make_statement()), range(4)))
    assert most[0] == 1
    assert len(set(rendered)) == 1


def test_statements_rendered_at_once_in_threads_are_the_bytes_each_renders_alone():
    """A server renders in several threads (SPEC §7: the same bytes every time).
    ReportLab reads an embedded font's tables through one cursor per process; a
    switch between threads every few microseconds makes two renders meet there."""
    statements = [
        make_statement(partner_name=name, number=f"2026-10-000{index}")
        for index, name in enumerate(["Кофейня Арома", "SkyAir ✈", "Фитнес Зал", "Ünïcødé €₽"])
    ]
    alone = [render_pdf(statement) for statement in statements]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda k: render_pdf(statements[k % 4]), range(240)))
    finally:
        sys.setswitchinterval(interval)
    assert [k for k, pdf in enumerate(together) if pdf != alone[k % 4]] == []


def test_long_counterparty_table_numbers_pages_and_repeats_its_header():
    counterparties = [
        {
            "partner_id": f"p{n:03d}",
            "name": f"Partner {n:03d}",
            "points_in": 100 * n,
            "value_in": f"{n}.00",
            "points_out": 0,
            "value_out": "0.00",
            "net": f"{n}.00",
        }
        for n in range(120)
    ]
    pages = pages_text(render_pdf(make_statement(counterparties=counterparties)))
    pages_with_rows = [page for page in pages if "Partner 0" in page or "Partner 1" in page]

    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
    assert len(pages_with_rows) >= 2
    assert all("Counterparty Points in" in page for page in pages_with_rows)
    assert all(f"Partner {n:03d}" in " ".join(pages) for n in range(120))


def _netting(partner_id: str, name: str, net: str) -> dict:
    return {"partner_id": partner_id, "name": name, "points_in": 0, "value_in": "0.00",
            "points_out": 0, "value_out": "0.00", "net": net}


def test_the_chart_of_many_counterparties_says_what_those_it_leaves_out_net_together():
    """Ten bars of 20.00 to 29.00 (or their negatives) are drawn; the two smallest
    nets, 0.25 and -0.10, are not: together 0.15."""
    drawn = [_netting(f"p{n}", f"Partner {n}", f"{(-1) ** n * (20 + n)}.00") for n in range(10)]
    left_out = [_netting("small", "Small", "0.25"), _netting("tiny", "Tiny", "-0.10")]
    first = pages_text(render_pdf(make_statement(counterparties=drawn + left_out)))[0]

    assert "Largest 10 of 12 counterparties by size of net position" in first
    assert "The other 2 together: net 0.15." in first
    chart = first[first.index("Net position by counterparty"):first.index("Largest 10")]
    assert "Partner 9" in chart and "Small" not in chart and "Tiny" not in chart


def test_a_chart_with_every_counterparty_drawn_says_nothing_of_others():
    rows = [_netting("small", "Small", "0.25"), _netting("tiny", "Tiny", "-0.10")]
    first = pages_text(render_pdf(make_statement(counterparties=rows)))[0]
    assert "Largest" not in first and "The other" not in first


def test_a_name_two_counterparties_share_is_told_apart_by_their_ids_in_the_chart():
    """A chain's outlets may share a name; the chart's labels then carry each one's id
    (the table always does), and a name of its own is printed alone."""
    rows = [_netting("sb-north", "Starbucks", "5.00"), _netting("sb-south", "Starbucks", "-3.00"),
            _netting("aroma-2", "Aroma", "1.00")]
    runs = [run for run in text_runs(render_pdf(make_statement(counterparties=rows))) if run[3] == 7.5]
    chart_ids = [text for text, *_ in runs if text in ("sb-north", "sb-south", "aroma-2")]
    assert chart_ids == ["sb-north", "sb-south"]  # in bar order: most receivable first
    ends = {text: x + stringWidth(text, "Roboto", 7.5) for text, x, *_ in runs}
    starts = {text: x for text, x, *_ in runs}
    assert ends["Starbucks"] < starts["sb-north"]  # the name, then its id
    assert ends["Aroma"] == pytest.approx(ends["sb-north"], abs=0.01)  # both at the column's edge


@pytest.mark.parametrize("count", [45, 87])
def test_a_counterparty_tables_total_never_stands_alone_under_its_header(count):
    # 45 lines filled pages 1 and 2 exactly, and page 3 held the repeated header and the
    # total alone; 87 did the same on page 4
    counterparties = [
        {"partner_id": f"p{n:03d}", "name": f"Partner {n:03d}", "points_in": 100 * n,
         "value_in": f"{n}.00", "points_out": 0, "value_out": "0.00", "net": f"{n}.00"}
        for n in range(count)
    ]
    pages = pages_text(render_pdf(make_statement(counterparties=counterparties)))
    with_the_table = [page for page in pages if "Counterparty Points in" in page]
    assert len(with_the_table) >= 2
    assert all("Partner " in page for page in with_the_table)
    assert f"Partner {count - 2:03d}" in with_the_table[-1]
    assert f"Partner {count - 1:03d}" in with_the_table[-1]


_LONG_LINE = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
_LONG_ID = {"transaction_id": 55, "external_id": "x" * 200, "type": "burn",
            "occurred_at": "2026-09-30T23:10:00+00:00", "points": -300, "original_period_id": "2026-09"}


@pytest.mark.parametrize(
    "changes, heading, note, first",
    [
        ({"counterparties": [{**_LONG_LINE, "partner_id": f"p{n:03d}",
                              "name": "Very Long Hotel Chain International " * 5 if n == 0 else f"Partner {n:03d}"}
                             for n in range(12)]},
         "Counterparties", "Points in: ", "Very Long Hotel Chain"),
        ({"late_items": [_LONG_ID]}, "Late items", "Transactions that occurred", "55"),
        # one counterparty's name on two lines left 32 to 36 mm, what the late items'
        # opening takes with a one-line row, where 32 mm were asked for
        ({"counterparties": [{**_LONG_LINE, "partner_id": f"p{n:03d}",
                              "name": "Very Long Hotel Chain International Holdings Group" if n == 0
                              else f"Partner {n:03d}"} for n in range(3)]},
         "Late items", "Transactions that occurred", "55"),
    ],
)
def test_a_listings_heading_is_on_the_page_its_tables_first_row_starts(changes, heading, note, first):
    # the heading and its note were left at the foot of page 1, the table on page 2: room
    # was asked for as 40 mm and 32 mm, less than a first row of several lines takes (a
    # name or an external id of 180 to 200 characters), and for the late items less than
    # even a one-line row does
    pages = [[box[0] for box in page] for page in drawn_boxes(render_pdf(make_statement(**changes)))]
    page, at = next((page, k) for page in pages for k, text in enumerate(page) if text.startswith(note))
    assert page[at - 1] == heading
    assert any(text.startswith(first) for text in page[at:])


def page_runs(pdf: bytes) -> list[list[tuple[str, float, float, dict, float]]]:
    """Each page's runs of text as pypdf reads them: text, x, baseline y, font and size."""
    pages = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        runs = []

        def visit(text, cm, tm, font, size, runs=runs):
            if text.strip():
                runs.append((text, tm[4] + cm[4], tm[5] + cm[5], font, size))

        page.extract_text(visitor_text=visit)
        pages.append(runs)
    return pages


def text_runs(pdf: bytes) -> list[tuple[str, float, float, float]]:
    """Every run of text on every page: its text, x, baseline y and font size."""
    return [(text.strip(), x, y, size) for page in page_runs(pdf) for text, x, y, _, size in page]


def test_counterparty_name_stays_in_its_column_with_its_id_in_small_print():
    """A short name and its id share one line; a name too long for the column wraps
    onto a second line instead of running under the figures beside it."""
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    long_name = "Northern Railways and Ferries Passenger Services Company Limited"
    statement = make_statement(
        counterparties=[
            {**line, "partner_id": "rail", "name": long_name},
            {**line, "partner_id": "cafe", "name": "Cafe Aroma"},
        ]
    )
    runs = text_runs(render_pdf(statement))
    table = runs[next(i for i, run in enumerate(runs) if run[0] == "Counterparty") :]

    name = next(i for i, run in enumerate(table) if run[0] == "Cafe Aroma")
    partner_id = table.index(next(run for run in table if run[0] == "cafe"))
    assert partner_id == name + 1  # right after the name
    assert table[partner_id][2] == table[name][2]  # on its line
    assert table[partner_id][3] < table[name][3]  # in small print
    long_lines = [run for run in table if run[0] in long_name and run[0] != long_name]
    assert " ".join(run[0] for run in long_lines) == long_name
    assert len({run[2] for run in long_lines}) == 2


def drawn_boxes(pdf: bytes) -> list[list[tuple[str, float, float, float]]]:
    """Each page's runs of text as (text, left, right, baseline), the width measured
    in the run's own font and size, as the reader's eye would find them."""
    fonts.register()

    def box(text, x, y, font, size):
        face = fonts.BOLD if "Bold" in font["/BaseFont"] else fonts.REGULAR
        left = x + (len(text) - len(text.lstrip())) * stringWidth(" ", face, size)
        return text.strip(), left, left + stringWidth(text.strip(), face, size), y

    return [[box(*run) for run in page if run[3]] for page in page_runs(pdf)]


def overprinted(boxes: list[tuple[str, float, float, float]]) -> list[tuple[str, str]]:
    """Pairs of runs on one baseline that run into each other."""
    lines = {}
    for box in boxes:
        lines.setdefault(round(box[3], 1), []).append(box)
    pairs = []
    for line in lines.values():
        line.sort(key=lambda box: box[1])
        pairs += [(one[0], next_[0]) for one, next_ in zip(line, line[1:]) if one[2] > next_[1] + 0.01]
    return pairs


@pytest.mark.parametrize(
    "value, points",
    [
        # a 2-million-euro month between two partners of an Indonesian coalition
        ("35000000000.10", 35_000_000_000),
        # near what the API accepts: 10¹² points at a rate of almost 10⁹ IDR each
        ("999999999999999999999.00", 999_999_999_999),
    ],
)
def test_figures_too_wide_for_the_counterparty_columns_are_never_printed_over_each_other(value, points):
    """Each figure column is as wide as its widest figure; past what the page holds, the
    figures print smaller. In 22 mm columns, 35,000,000,000.10 ran into the next."""
    line = {"points_in": points, "value_in": value, "points_out": points, "value_out": value, "net": "0.00"}
    counterparties = [{**line, "partner_id": "skyair", "name": "SkyAir"}, {**line, "partner_id": "fitgym", "name": "Фитнес Зал"}]
    pdf = render_pdf(make_statement(base_currency="IDR", counterparties=counterparties))
    pages = drawn_boxes(pdf)
    figures = [box for page in pages for box in page if box[0] in (f"{points:,}", f"{points * 2:,}")]

    assert len(figures) == 6  # points in and out, of each line and of the total
    # the titles wrap between words, never within one ("Ne" / "t, I" / "DR")
    words = [word for run in text_runs(pdf) for word in run[0].split()]
    assert all(word in words for word in ("Points", "Value", "out,", "Net,", "IDR"))
    assert [pair for page in pages for pair in overprinted(page)] == []
    margin = 18 * 72 / 25.4
    assert all(margin - 0.01 <= box[1] and box[2] <= 595.28 - margin + 0.01 for page in pages for box in page)


def test_figures_that_fit_keep_the_tables_own_size_and_columns():
    pdf = render_pdf(make_statement())
    boxes, runs = drawn_boxes(pdf)[0], text_runs(pdf)
    counterparty = next(i for i, run in enumerate(runs) if run[0] == "Counterparty")
    assert [run[3] for run in runs[counterparty:] if run[0] == "9,000"] == [8.5]
    # five 22 mm figure columns: "Points in" ends four columns and a cell's padding
    # short of the right margin
    right = 595.28 - 18 * 72 / 25.4 - 4 * 22 * 72 / 25.4 - 6
    assert abs(next(box for box in boxes if box[0] == "Points in")[2] - right) < 0.5


def test_each_figure_column_is_as_wide_as_its_widest_figure_in_any_line():
    """A large figure in one line and a small one in another (the total's net is 0.01):
    the column is as wide as the large one, wherever it stands, and its figures end
    a cell's padding short of the next column."""
    big = {"partner_id": "rail", "name": "Rail", "points_in": 999_999_999, "value_in": "999999999.99",
           "points_out": 0, "value_out": "0.00", "net": "999999999.99"}
    small = {"partner_id": "cafe", "name": "Cafe", "points_in": 1, "value_in": "0.01",
             "points_out": 888_888_888, "value_out": "999999999.99", "net": "-999999999.98"}
    pdf = render_pdf(make_statement(base_currency="EUR", currency="EUR", counterparties=[big, small],
                                    late_items=[], summary={"fx_rate": None}))
    boxes = drawn_boxes(pdf)[0]
    header = next(box[3] for box in boxes if box[0] == "Counterparty")  # below the chart's names
    starts = [box[3] for box in boxes if box[0] in ("Rail", "Cafe", "Total") and box[3] < header]
    lines = [sorted((box for box in boxes if box[3] == y), key=lambda box: box[1]) for y in starts]
    figures = [line[-5:] for line in lines]

    # widest per column, in bold, the total's font: 1,000,000,000 points in;
    # 1,000,000,000.00 value in; 888,888,888 points out, narrower than 22 mm;
    # 999,999,999.99 value out; -999,999,999.98 net (the total nets 0.01)
    widest = ["1,000,000,000", "1,000,000,000.00", None, "999,999,999.99", "-999,999,999.98"]
    widths = [22 * 72 / 25.4 if text is None else stringWidth(text, "Roboto-Bold", 8.5) + 12 for text in widest]
    right = 595.28 - 18 * 72 / 25.4
    ends = [right - sum(widths[k + 1:]) - 6 for k in range(5)]
    assert [[box[0] for box in line] for line in figures] == [
        ["999,999,999", "999,999,999.99", "0", "0.00", "999,999,999.99"],
        ["1", "0.01", "888,888,888", "999,999,999.99", "-999,999,999.98"],
        ["1,000,000,000", "1,000,000,000.00", "888,888,888", "999,999,999.99", "0.01"],
    ]
    for line in figures:
        assert [box[2] for box in line] == pytest.approx(ends, abs=0.01)
    assert overprinted([box for line in lines for box in line]) == []


@pytest.mark.parametrize(
    "currency, summary",
    [
        # 10¹² points at 10⁹ BHD, converted at 10⁻¹² BHD per dong: 10³³ VND, 34 digits
        ("VND", {"receivable": "1000000000000000000000.000", "payable": "0.000", "fees": "0.000",
                 "net": "1000000000000000000000.000", "fx_rate": "0.000000000001",
                 "net_in_currency": "1000000000000000000000000000000000", "liability": "0.000",
                 "points_issued": 10**12, "liability_points": 10**12}),
        # a rate at the limit, 10⁹ − 10⁻¹², with its twelve decimals
        ("KWD", {"receivable": "0.000", "payable": "0.000", "fees": "30000000000000000000000.000",
                 "net": "-30000000000000000000000.000", "fx_rate": "999999999.999999999999",
                 "net_in_currency": "-30000000000000.000", "liability": "0.000"}),
    ],
)
def test_figures_too_wide_for_the_figures_table_are_never_printed_over_their_labels(currency, summary):
    """Each money figure stands clear of its label; past what the column holds, the
    figures print smaller. "Net in VND" ran under a net of 10³³ dong, and
    "FX rate at period end" under a rate written with twelve decimals."""
    statement = make_statement(base_currency="BHD", currency=currency, counterparties=[], late_items=[],
                               summary={"currency": currency, "fx_rate": "0.4", "net_in_currency": "0.000",
                                        **{key: "0.000" for key in ("receivable", "payable", "fees", "net",
                                                                    "liability")}, **summary})
    first = drawn_boxes(render_pdf(statement))[0]

    assert overprinted(first) == []
    drawn = {box[0] for box in first}
    assert f"{Decimal(summary['net_in_currency']):,} {currency}" in drawn
    assert f"{summary['fx_rate']} BHD per {currency}" in drawn


def test_counterparty_name_with_a_tab_or_line_break_prints_spaced_in_chart_and_table():
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    statement = make_statement(counterparties=[{**line, "partner_id": "tab", "name": "Tab\tand\nbreak  here"}])
    runs = text_runs(render_pdf(statement))
    # in the chart, then in the table
    assert [run[0] for run in runs if run[0].startswith("Tab")] == ["Tab and break here"] * 2


def test_a_name_just_too_wide_for_its_column_wraps_and_one_just_narrow_enough_does_not():
    fonts.register()
    # the column is A4 less 18 mm margins less five 22 mm columns, less ReportLab's 6 pt of padding on each side;
    # a name and its id share it: name, a space, then the id in 7 pt
    room = (210 - 2 * 18 - 5 * 22) * 72 / 25.4 - 12 - stringWidth(" ", "Roboto", 8.5) - stringWidth("p0", "Roboto", 7)

    def name_of_width(first: str, target: float) -> str:
        name = first
        while stringWidth(name + "i", "Roboto", 8.5) <= target:
            name += "i"
        return name

    narrow, wide = name_of_width("A", room - 0.5), name_of_width("B", room) + "i"
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": f"p{n}", "name": name} for n, name in enumerate((narrow, wide))]
    runs = text_runs(render_pdf(make_statement(counterparties=rows)))
    table = runs[next(i for i, run in enumerate(runs) if run[0] == "Counterparty") :]

    def baselines(name: str, partner_id: str) -> tuple[float, float]:
        return (next(run[2] for run in table if run[0].startswith(name[:8])),
                next(run[2] for run in table if run[0] == partner_id))

    name_y, id_y = baselines(narrow, "p0")
    assert name_y == id_y  # one line
    name_y, id_y = baselines(wide, "p1")
    assert id_y < name_y  # the id wrapped onto a second line


def test_a_name_the_font_cannot_print_is_printed_as_its_partners_id():
    # no font here has Devanagari or emoji: such a name printed as blanks, and the summary
    # read "    Gym   pays the coalition operator"; the JSON and CSV keep it, as does the PDF's subject
    name = "कैफ़े Gym 🏋️"
    counterparty = {"partner_id": "p0", "name": "कैफ़े Ltd", "points_in": 0, "value_in": "0.00",
                    "points_out": 10, "value_out": "0.10", "net": "-0.10"}
    statement = make_statement(partner_id="gymkw", partner_name=name, counterparties=[counterparty])
    statement["summary"] = {**statement["summary"], "net": "-0.10", "net_in_currency": "-9.09"}
    pdf = render_pdf(statement)
    first = pages_text(pdf)[0]
    assert first.startswith("Coalition Settlement statement Statement for gymkw Partner ID gymkw")
    assert "gymkw pays the coalition operator 9.09" in first
    assert "Ltd" not in first and "Gym" not in first
    table = [run[0] for run in text_runs(pdf) if run[0].strip() == "p0"]
    assert len(table) == 2  # the chart's label, the table's name, and no second id in small print
    assert pypdf.PdfReader(io.BytesIO(pdf)).metadata.subject == f"{name}, period 2026-10"
    assert "Кофейня Арома pays" not in first and "Кофейня Арома" in summary_text(make_statement())


def test_an_emoji_in_a_name_is_left_out_and_the_rest_of_the_name_printed():
    # the emoji printed as a blank, so the whole name gave way to "pizza": the reader lost the name
    # they know for one character of decoration; a name of emoji alone still prints as its id
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": "flags", "name": "Flag \U0001F1EF\U0001F1F5 Shop"},
            {**line, "partner_id": "smiles", "name": "\U0001F600\U0001F600"},
            {**line, "partner_id": "spaced", "name": "\U0001F600\u200b"}]
    statement = make_statement(partner_id="pizza", partner_name="Tom's Bar \U0001F355",
                               counterparties=rows)
    pdf = render_pdf(statement)
    first = pages_text(pdf)[0]
    assert "Statement for Tom's Bar Partner ID pizza" in first
    assert "The coalition operator pays Tom's Bar 7,568.18 RUB" in first
    names = [run[0] for run in text_runs(pdf)]
    assert names.count("Flag Shop") == 2  # the chart's label and the table's
    assert names.count("smiles") == names.count("spaced") == 2
    assert pypdf.PdfReader(io.BytesIO(pdf)).metadata.subject == "Tom's Bar \U0001F355, period 2026-10"


@pytest.mark.parametrize("name, printed", [
    ("\u2615 Caf\u00e9", "Caf\u00e9"),  # hot beverage
    ("\U0001F468\u200d\U0001F469\u200d\U0001F467 Family Gym", "Family Gym"),  # joined by ZWJ
    ("Stop 1\ufe0f\u20e3", "Stop 1"),  # a keycap: digit, variation selector, enclosing keycap
    ("Caf\u00e9 \u2116 5 \u00a9", "Caf\u00e9 \u2116 5 \u00a9"),  # symbols Roboto has stay
    ("\u0915\u0948\u092b\u093c\u0947 \U0001F3CB", "\u0915\u0948\u092b\u093c\u0947"),  # letters stay
    ("\U0001F44D\U0001F3FD Gym", "Gym"),  # a skin tone, a modifier symbol
    ("\U0001F355\u0301 Bar", "Bar"),  # a mark on a symbol left out goes with it
    ("\U0001F355\u200b", ""),  # nothing visible left: the id stands in
    ("\u0647\u200d \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Arabic's joiner, Persian's
     "\u0647\u200d \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),  # non-joiner: not an emoji's
])
def test_only_symbols_no_font_draws_are_left_out_of_a_name(name, printed):
    assert fonts.without_symbols(name) == printed


# Arabic as drawn, worked from the Unicode charts: meem, qaf, heh and alef maksura joined (initial
# U+FEE3, medial U+FED8 and U+FEEC, final U+FEF0), the run reversed to be drawn left to right;
# pypdf reads a right-to-left run back in reading order
CAFE_SEEN = "\ufef0\ufeec\ufed8\ufee3"  # مقهى
CAFE_READ = CAFE_SEEN[::-1]


def test_arabic_hebrew_and_thai_names_print_in_their_own_fonts_arabic_joined_and_right_to_left():
    # Roboto has none of them: they printed as the partner's id
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": "cafe", "name": "مقهى"}, {**line, "partner_id": "shalom", "name": "שלום Ltd"},
            {**line, "partner_id": "bkk", "name": "ร้านกาแฟ"}]
    statement = make_statement(partner_id="gymkw", partner_name="مقهى", counterparties=rows)
    statement["late_items"][0]["external_id"] = "فاتورة-7"
    pdf = render_pdf(statement)
    first = pages_text(pdf)[0]
    assert first.startswith(f"Coalition Settlement statement Statement for {CAFE_READ} Partner ID gymkw")
    # set apart from the sentence, the name keeps the figure after it, where a plain right-to-left
    # run would have taken it in ("pays 7,568.18 <name> RUB")
    assert f"The coalition operator pays {CAFE_READ} 7,568.18 RUB" in first
    # a right-to-left name reads from the right: "Ltd" is drawn on the left of שלום
    assert f"{CAFE_READ} cafe" in first and "Ltd שלום shalom" in first
    fonts = fonts_by_run(pdf)
    assert fonts[CAFE_READ] == {"NotoSansArabic-Regular"}
    assert fonts["ร้านกาแฟ"] == {"NotoSansThai-Regular"}
    assert fonts["שלום"] == {"Heebo-Regular"}
    # feh initial, alef final, teh initial, waw final; reh and teh marbuta alone, as alef,
    # waw and reh join nothing after them
    assert fonts["\ufed3\ufe8e\ufe97\ufeee\ufead\ufe93"] == {"NotoSansArabic-Regular"}


@pytest.mark.parametrize(("name", "seen"), [
    ("مقهى", CAFE_SEEN),
    ("لا", "\ufefb"),  # lam and alef are one ligature
    ("שלום", "\u05dd\u05d5\u05dc\u05e9"),  # no joining, the final mem its own letter: reversed
    ("Кофейня", "Кофейня"),
    # brackets mirrored in a right-to-left run: they printed ")الرياض(", facing away from it;
    # alef alone, lam initial, reh final, yeh initial, alef final, dad alone, reversed
    ("مقهى (الرياض)", "(\ufebd\ufe8e\ufef3\ufeae\ufedf\ufe8d) " + CAFE_SEEN),
    # marks of direction pasted with a name are dropped: this one ended the isolate at once,
    # and the name read left to right; in a Latin name it printed as a blank, so as the id
    ("\u2069مقهى Ltd", "Ltd " + CAFE_SEEN),
    ("\u202eCafé\u202c", "Café"),
])
def test_a_name_is_drawn_as_it_is_seen(name, seen):
    assert "".join(run for run, _ in fonts.runs(fonts.isolate(name))) == seen


def test_a_right_to_left_name_shortened_to_fit_ends_on_the_left():
    name = fonts.isolate("مقهى " * 12)
    shortened = fonts.fit(name, fonts.REGULAR, 7.5, 60)
    runs = fonts.runs(shortened, whole=name)
    assert runs[0] == ("…", fonts.REGULAR)  # where the reader's eye ends a right-to-left line
    assert runs[-1] == (CAFE_SEEN, "NotoSansArabic")  # and the name's first word on the right


def fonts_by_run(pdf: bytes, page: int = 0) -> dict[str, set[str]]:
    """Each run of text on a page with the fonts it is drawn in, subset prefixes dropped."""
    found: dict[str, set[str]] = {}
    for text, _, _, font, _ in page_runs(pdf)[page]:
        found.setdefault(text.strip(), set()).add(font["/BaseFont"].lstrip("/").split("+")[-1])
    return found


def test_chinese_japanese_and_korean_names_print_in_the_cid_font_of_their_language():
    # Roboto has none of them: they printed as the partner's id; now each run prints in Adobe's
    # font for its language, which viewers supply, and extracts as written. A name with kana is
    # Japanese, its kanji too (渋谷店 alone would be Chinese); the Latin beside them stays Roboto
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": "kal", "name": "대한항공 Korean Air"},
            {**line, "partner_id": "bjcafe", "name": "北京咖啡馆"}]
    pdf = render_pdf(make_statement(partner_id="sakura", partner_name="さくらカフェ 渋谷店",
                                    counterparties=rows, coalition_name="ポイント連合"))
    first = pages_text(pdf)[0]
    assert first.startswith("ポイント連合 Settlement statement Statement for さくらカフェ 渋谷店 Partner ID sakura")
    assert "The coalition operator pays さくらカフェ 渋谷店 7,568.18 RUB" in first
    assert "대한항공 Korean Air kal" in first and "北京咖啡馆 bjcafe" in first
    assert "さくらカフェ 渋谷店's points redeemed at the counterparty" in first
    fonts = fonts_by_run(pdf)
    assert fonts["さくらカフェ"] == fonts["渋谷店"] == fonts["ポイント連合"] == {"HeiseiKakuGo-W5"}
    assert fonts["대한항공"] == {"HYGothic-Medium"}
    assert fonts["北京咖啡馆"] == {"STSong-Light"}
    assert fonts["Korean Air"] == {"Roboto-Regular"}


def test_a_cjk_name_in_the_running_header_ends_at_the_right_margin():
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": f"p{n:03d}", "name": f"Partner {n:03d}"} for n in range(60)]
    pdf = render_pdf(make_statement(partner_name="Café 東京", counterparties=rows))
    header = [(text.rstrip("\n"), x, font) for text, x, y, font, size in page_runs(pdf)[1]
              if size == 7.5 and y > 780]
    assert [text for text, _, _ in header][-2:] == ["Café ", "東京"]
    (_, roboto_x, _), (_, cjk_x, _) = header[-2:]
    # Roboto's "Café " then two full-width ideographs of 7.5 pt each, ending at A4's width less 18 mm
    assert cjk_x == pytest.approx(roboto_x + stringWidth("Café ", "Roboto", 7.5), abs=0.01)
    assert cjk_x + 2 * 7.5 == pytest.approx((210 - 18) * 72 / 25.4, abs=0.01)


def test_a_cjk_name_in_the_chart_ends_at_the_name_columns_edge():
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    pdf = render_pdf(make_statement(counterparties=[{**line, "partner_id": "tokyo", "name": "Café 東京"}]))
    chart = [(text.rstrip("\n"), x) for text, x, y, font, size in page_runs(pdf)[0] if size == 7.5]
    (_, roboto_x), (_, cjk_x) = [run for run in chart if run[0] in ("Café ", "東京")]
    assert cjk_x == pytest.approx(roboto_x + stringWidth("Café ", "Roboto", 7.5), abs=0.01)
    # names end 130 pt into the chart, which starts at the 18 mm margin
    assert cjk_x + 2 * 7.5 == pytest.approx(18 * 72 / 25.4 + 130, abs=0.01)


def test_the_running_header_shortens_long_names_to_share_its_line():
    # a 150-letter name was drawn right-aligned in full: it ran off the page's left edge
    # and over the statement's number; a tab and a line break print as spaces, and the
    # operator's name gives way to the rest
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": f"p{n:03d}", "name": f"Partner {n:03d}"} for n in range(60)]
    pdf = render_pdf(make_statement(partner_name="Northern\tRailways " * 10, counterparties=rows,
                                    coalition_name="The Grand Coalition of Shops\nand Cafes " * 4))
    header = [box for box in drawn_boxes(pdf)[1] if box[3] > 780]
    assert overprinted(header) == []
    assert min(box[1] for box in header) >= 18 * 72 / 25.4 - 0.01
    assert max(box[2] for box in header) <= (210 - 18) * 72 / 25.4 + 0.01
    text = " ".join(box[0] for box in header)
    # the statement's number and period whole, the partner's name in up to half the line
    assert text.startswith("The Grand")
    assert "… · Settlement statement 2026-10-0003 · period 2026-10 Northern Railways Northern" in text
    assert text.endswith("…") and "\t" not in text


def test_the_running_header_is_on_every_page_but_the_first():
    # page 1 names the statement in its own header, which the running one would stand
    # over as a second, smaller title
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": f"p{n:03d}", "name": f"Partner {n:03d}"} for n in range(120)]
    pdf = render_pdf(make_statement(counterparties=rows))
    # above the text area: 6 mm over the 20 mm top margin, on A4's 841.89 pt
    tops = [[box for box in page if box[3] > 841.89 - 20 * 72 / 25.4] for page in drawn_boxes(pdf)]

    assert len(tops) >= 3
    assert tops[0] == []
    for top in tops[1:]:
        assert " ".join(box[0] for box in top) == (
            "Coalition · Settlement statement 2026-10-0003 · period 2026-10 Кофейня Арома"
        )
        assert [box[3] for box in top] == pytest.approx([841.89 - 14 * 72 / 25.4] * len(top), abs=0.01)


def test_cjk_runs_extract_as_one_line_in_the_table_and_the_running_header():
    # each run was its own text object, which pypdf read as a line of its own:
    # "서울\n \n커피하우스"
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": f"p{n:03d}", "name": f"서울 커피하우스 {n:03d}"} for n in range(60)]
    pdf = render_pdf(make_statement(partner_name="Café 東京 Tokyo", counterparties=rows))
    lines = pypdf.PdfReader(io.BytesIO(pdf)).pages[1].extract_text().splitlines()
    assert "Café 東京 Tokyo" in lines
    assert "서울 커피하우스 020 p020" in [line[:len("서울 커피하우스 020 p020")] for line in lines]


def test_korean_typed_as_jamo_prints_composed():
    # macOS may give 한 as ᄒ, ᅡ, ᆫ: no CID font has those, and the name printed as its id
    pdf = render_pdf(make_statement(partner_name="\u1112\u1161\u11ab Cafe"))
    assert "Statement for 한 Cafe Partner ID aroma" in pages_text(pdf)[0]


def test_a_japanese_name_shortened_in_the_running_header_keeps_the_japanese_font():
    # cut before its kana, its kanji were set in the Chinese font on every page but the first
    name = "東京国際空港旅客施設管理" * 3 + "センター"
    line = {"points_in": 1, "value_in": "1.00", "points_out": 0, "value_out": "0.00", "net": "1.00"}
    rows = [{**line, "partner_id": f"p{n:03d}", "name": f"Partner {n:03d}"} for n in range(60)]
    pdf = render_pdf(make_statement(partner_name=name, counterparties=rows))
    header = [(text.strip(), font["/BaseFont"]) for text, _, y, font, _ in page_runs(pdf)[1] if y > 780]
    assert header[-2:] == [(name[:len(header[-2][0])], "/HeiseiKakuGo-W5"), ("…", "/AAAAAA+Roboto-Regular")]
    assert 10 < len(header[-2][0]) < len(name) - 4  # shortened, the kana cut off


@pytest.mark.parametrize(("text", "runs"), [
    ("Café 東京", [("Café ", "Roboto"), ("東京", "STSong-Light")]),
    ("Café מקום", [("Café ", "Roboto"), ("\u05dd\u05d5\u05e7\u05de", "Heebo")]),
    # Thai reads left to right, its marks drawn after their letters as typed
    ("ร้านกาแฟ Café", [("ร้านกาแฟ", "NotoSansThai"), (" Café", "Roboto")]),
    ("臺北 Gym", [("臺北", "STSong-Light"), (" Gym", "Roboto")]),
    ("東京カフェ", [("東京カフェ", "HeiseiKakuGo-W5")]),
    ("ｶﾌｪ 東京", [("ｶﾌｪ", "HeiseiKakuGo-W5"), (" ", "Roboto"), ("東京", "HeiseiKakuGo-W5")]),
    ("서울 카페", [("서울", "HYGothic-Medium"), (" ", "Roboto"), ("카페", "HYGothic-Medium")]),
    ("서울 漢江", [("서울", "HYGothic-Medium"), (" ", "Roboto"), ("漢江", "HYGothic-Medium")]),
    # the Japanese font has no hangul: it printed as blanks
    ("さくら 서울", [("さくら", "HeiseiKakuGo-W5"), (" ", "Roboto"), ("서울", "HYGothic-Medium")]),
    # nor has the Korean font simplified Chinese (乐, 玛), nor the Japanese one 们: they
    # printed as blanks in the font of the name's language, and print in the Chinese one
    ("롯데마트 乐天玛特", [("롯데마트", "HYGothic-Medium"), (" ", "Roboto"), ("乐", "STSong-Light"),
                       ("天", "HYGothic-Medium"), ("玛", "STSong-Light"), ("特", "HYGothic-Medium")]),
    ("们カフェ", [("们", "STSong-Light"), ("カフェ", "HeiseiKakuGo-W5")]),
    ("㐀", [("㐀", "STSong-Light")]),  # Extension A, in GB 18030 only
    ("Кофейня", [("Кофейня", "Roboto")]),
])
def test_a_text_is_cut_into_runs_of_the_font_that_draws_them(text, runs):
    assert fonts.runs(text) == runs
    assert fonts.draws(text)


@pytest.mark.parametrize("text", ["कैफ़े", "ကော်ဖီ", "Gym 🏋", "\U00020000", "\u9fa6", "\uffa1", "\u1100", "\u31f0"])
def test_a_character_no_font_here_draws_is_told(text):
    # Devanagari, Myanmar, emoji, and what no CID font's map has: ideographs of Extension B and of Unicode
    # 4.1, halfwidth hangul, a conjoining jamo, a katakana extension of JIS X 0213
    assert not fonts.draws(text)


def test_an_operator_name_the_font_cannot_print_is_printed_as_coalition():
    pdf = render_pdf(make_statement(coalition_name="अंक गठबंधन"))
    assert pages_text(pdf)[0].startswith("Coalition Settlement statement Statement for Кофейня Арома")
    assert pypdf.PdfReader(io.BytesIO(pdf)).metadata.author == "अंक गठबंधन"


def test_a_soft_hyphen_in_a_name_is_not_printed():
    runs = text_runs(render_pdf(make_statement(counterparties=[
        {"partner_id": "p0", "name": "Soft\xadhyphen", "points_in": 1, "value_in": "1.00",
         "points_out": 0, "value_out": "0.00", "net": "1.00"}])))
    assert [run[0] for run in runs if run[0].startswith("Soft")] == ["Softhyphen"] * 2  # chart, table


def test_summary_says_operator_pays_partner_when_net_is_positive():
    assert (
        "The coalition operator pays Кофейня Арома 7,568.18 RUB (83.25 EUR at 0.0110 EUR per RUB)"
        in summary_text(make_statement())
    )


def test_summary_says_partner_pays_operator_when_net_is_negative():
    # 35.10 − 116.30 − 2.05 = −83.25 EUR; −83.25 ÷ 0.0110 = −7 568.18 RUB
    statement = make_statement(
        summary={
            "receivable": "35.10",
            "payable": "116.30",
            "net": "-83.25",
            "net_in_currency": "-7568.18",
        }
    )

    assert (
        "Кофейня Арома pays the coalition operator 7,568.18 RUB (83.25 EUR at 0.0110 EUR per RUB)"
        in summary_text(statement)
    )


def test_the_workings_put_a_negative_term_in_parentheses():
    # 35.10 − 10.00 − (−2.23) = 27.33: a period whose returns recovered more fees than it owed
    statement = make_statement(
        summary={"receivable": "35.10", "payable": "10.00", "fees": "-2.23", "net": "27.33",
                 "net_in_currency": "2484.55"}
    )
    assert "Net 27.33 EUR = receivable 35.10 − payable 10.00 − fees (-2.23), in EUR." in summary_text(statement)
    assert "Net 83.25 EUR = receivable 120.40 − payable 35.10 − fees 2.05, in EUR." in summary_text(make_statement())


@pytest.mark.parametrize(("net", "sentence"), [
    ("-9.40", "Коалиция Плюс, the operator's own account, pays the clearing house 9.40 EUR."),
    ("9.40", "The clearing house pays Коалиция Плюс, the operator's own account, 9.40 EUR."),
])
def test_summary_of_the_operators_own_account_does_not_say_it_pays_itself(net, sentence):
    # the reserved partner `coalition` settles its bonus points like any partner, in the base currency
    statement = make_statement(
        partner_id="coalition", partner_name="Коалиция Плюс", currency="EUR",
        summary={"partner_id": "coalition", "currency": "EUR", "fees": "0.00", "net": net, "fx_rate": "1",
                 "net_in_currency": net},
    )
    text = summary_text(statement)

    assert sentence in text
    assert "coalition operator" not in text


@pytest.mark.parametrize(("currency", "fx_rate"), [("RUB", "0.0110"), ("EUR", "1")])
def test_summary_says_nothing_to_pay_when_net_is_zero(currency, fx_rate):
    # 37.15 − 35.10 − 2.05 = 0.00, in the partner's currency too: a partner settling in the
    # base currency has no conversion to fall back on for its "Nothing to pay"
    statement = make_statement(
        currency=currency,
        summary={"currency": currency, "receivable": "37.15", "net": "0.00", "fx_rate": fx_rate,
                 "net_in_currency": "0.00"},
    )
    text = summary_text(statement)

    assert "Nothing to pay: the net position for this period is 0.00 EUR." in text
    assert " pays " not in text


def test_summary_says_nothing_to_pay_when_the_net_converts_to_less_than_a_minor_unit():
    # −0.01 EUR at 3.2500 EUR per KWD = −0.003076… KWD, which rounds to 0.000 KWD
    statement = make_statement(
        currency="KWD",
        summary={"currency": "KWD", "receivable": "37.14", "net": "-0.01", "fx_rate": "3.2500",
                 "net_in_currency": "0.000"},
    )
    text = summary_text(statement)

    assert "Nothing to pay: the net position of -0.01 EUR comes to 0.000 KWD at 3.2500 EUR per KWD." in text
    assert " pays " not in text


def test_summary_skips_conversion_when_partner_settles_in_base_currency():
    statement = make_statement(
        currency="EUR", summary={"currency": "EUR", "fx_rate": "1", "net_in_currency": "83.25"}
    )

    assert "The coalition operator pays Кофейня Арома 83.25 EUR." in summary_text(statement)


def test_the_workings_name_the_fx_rate_the_net_was_converted_at_and_only_for_another_currency():
    converted = "Converted at 0.0110 EUR per RUB, the rate in force at the end of the period."
    assert converted in summary_text(make_statement())
    in_base = make_statement(
        currency="EUR", summary={"currency": "EUR", "fx_rate": "1", "net_in_currency": "83.25"}
    )
    assert "Converted at" not in summary_text(in_base)


def test_a_partner_settling_in_the_base_currency_is_told_no_rate_is_needed_not_one_to_one():
    # "FX rate at period end 1 EUR per EUR" read as a rate for the reader to check
    in_base = make_statement(
        currency="EUR", summary={"currency": "EUR", "fx_rate": "1", "net_in_currency": "83.25"}
    )
    text = summary_text(in_base)
    assert "FX rate at period end none needed: settles in EUR" in text
    assert "EUR per EUR" not in text
    assert "FX rate at period end 0.0110 EUR per RUB" in summary_text(make_statement())


def _late_items(count: int) -> list[dict]:
    late = make_statement()["late_items"][0]
    return [{**late, "transaction_id": 1000 + n, "external_id": f"till-{n:05d}"} for n in range(count)]


def test_a_long_late_items_listing_repeats_its_header_and_lists_every_item_once():
    """250 late items: over 100 rows (the window ReportLab is given at a time), on pages
    of about 40 rows each."""
    pages = pages_text(render_pdf(make_statement(late_items=_late_items(250))))
    listed = [page for page in pages if "till-" in page]

    assert len(listed) >= 6
    assert all("Transaction External ID Type" in page for page in listed)
    text = " ".join(pages)
    assert all(text.count(f"till-{n:05d}") == 1 for n in range(250))
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page


def _counterparties(count: int) -> list[dict]:
    line = make_statement()["counterparties"][0]
    return [{**line, "partner_id": f"p{n:05d}", "name": f"Partner {n:05d}"} for n in range(count)]


@pytest.mark.parametrize(
    "listed",
    [lambda count: {"late_items": _late_items(count)}, lambda count: {"counterparties": _counterparties(count)}],
    ids=["late items", "counterparties"],
)
def test_the_rows_a_statement_builds_its_tables_of_grow_with_its_listings_not_their_square(
    monkeypatch, listed
):
    """ReportLab splits a table at a page's foot into what fits and a new table of every
    row left: a listing of n rows built about n²/80 rows in all, and a statement of 20,000
    late items drew in 100 s (2,000 in 1.9 s); one of a coalition's thousand partners has
    as many counterparties. Four times the rows now build about four times the rows (at
    most five): 400 fill some 10 pages, each built from a window of at most 101 rows; the
    square would be sixteen times."""
    built = []

    class Counted(statement_module.Table):
        def __init__(self, data, *args, **kwargs):
            built.append(len(data))
            super().__init__(data, *args, **kwargs)

    monkeypatch.setattr(statement_module, "Table", Counted)

    def rows_built(count: int) -> int:
        built.clear()
        render_pdf(make_statement(**listed(count)))
        return sum(built)

    assert rows_built(1600) <= 5 * rows_built(400)


def test_late_items_say_their_points_are_the_members_signed_change():
    # a late burn shows -5 where the counterparty table counts the same 5 points in
    text = pages_text(render_pdf(make_statement()))[-1]
    assert "Points as posted, the change to the member's balance: negative for burns and returns." in text


def test_a_late_items_period_is_headed_as_the_closed_period_it_is_dated_in():
    # "Original period" read, for a late return, as the period of the earn it returns;
    # the column holds the closed period the item's occurred_at falls in
    text = pages_text(render_pdf(make_statement()))[-1]
    assert "Occurred at Points Closed period 55 till-7-000999 burn" in text


def test_forints_print_with_isos_two_decimals():
    # 83.25 EUR at 0.0026 EUR per HUF = 32,019.23 HUF (ISO: 2 decimals; CLDR's 0 refused it)
    statement = make_statement(
        currency="HUF", summary={"currency": "HUF", "fx_rate": "0.0026", "net_in_currency": "32019.23"}
    )
    assert "32,019.23 HUF" in summary_text(statement)


def test_amount_with_more_decimals_than_its_currency_is_refused_not_rounded():
    with pytest.raises(ValueError, match="EUR"):
        render_pdf(make_statement(summary={"fees": "2.049"}))


MOSCOW_OCTOBER = {"period_start": "2026-09-30T21:00:00+00:00", "period_end": "2026-10-31T21:00:00+00:00"}


def test_period_is_shown_in_the_days_of_the_coalitions_time_zone():
    # Moscow is UTC+3: 30 Sep 21:00 UTC is 1 October 00:00 there, 31 Oct 21:00 UTC is 1 November
    text = summary_text(make_statement(**MOSCOW_OCTOBER, timezone="Europe/Moscow"))

    assert "1 October 2026 – 31 October 2026 (Europe/Moscow)" in text
    assert "21:00" not in text


def test_a_late_item_is_shown_at_its_local_time_beside_local_days():
    # 23:10 UTC on 30 September is 01:10 on 1 October in Berlin (summer time, UTC+02:00);
    # 11:00 UTC on 25 October, hours after the clocks went back, is 12:00 (UTC+01:00)
    late = make_statement()["late_items"][0]
    items = [late, {**late, "transaction_id": 56, "occurred_at": "2026-10-25T11:00:00+00:00"}]
    berlin = pages_text(render_pdf(make_statement(timezone="Europe/Berlin", late_items=items)))[-1]
    assert "1 Oct 2026 01:10 UTC+02:00" in berlin and "25 Oct 2026 12:00 UTC+01:00" in berlin
    assert "23:10" not in berlin
    assert "30 Sep 2026 23:10 UTC" in pages_text(render_pdf(make_statement(late_items=items)))[-1]


def test_late_items_of_every_type_at_the_widest_times_keep_to_their_columns():
    # "earn_reversal" ran into its time ("earn_reversal20 Nov 2026 …") and a time at
    # UTC+05:45 into the points; Kathmandu is UTC+05:45, so 23:10 UTC is 04:55 the next day
    late = make_statement()["late_items"][0]
    items = [{**late, "transaction_id": 9_876_543_210, "type": kind, "points": -100_000_000,
              "occurred_at": "2026-09-30T23:10:00+00:00"}
             for kind in ("earn", "bonus", "burn", "earn_reversal", "burn_reversal", "expiry")]
    pdf = render_pdf(make_statement(timezone="Asia/Kathmandu", late_items=items))
    assert "earn_reversal 1 Oct 2026 04:55 UTC+05:45 -100,000,000 2026-09" in pages_text(pdf)[-1]
    assert [overprinted(page) for page in drawn_boxes(pdf)] == [[]] * len(drawn_boxes(pdf))


def test_the_statements_identity_box_ends_at_the_right_margin():
    # its 80 mm sat 6 pt into the right margin, past every other rule on the page: the
    # column's padding was added on its left; its labels stand 6 pt into its cells
    labels = [run for run in text_runs(render_pdf(make_statement())) if run[0] == "Statement no."]
    assert [x for _, x, _, _ in labels] == [pytest.approx((210 - 18 - 80) * 72 / 25.4 + 6, abs=0.01)]


def test_the_issue_date_is_the_coalitions_local_day_as_the_periods_days_are():
    # Lord Howe is UTC+11 in summer: the day of 2 December 2026 ends at 13:00 UTC, so a
    # close at 21:24 UTC issues its statement at 08:24 on 3 December there, though
    # in UTC it is still the 2nd, the day the statement covers
    lord_howe_day = {"period_id": "2026-12-02", "period_start": "2026-12-01T13:00:00+00:00",
                     "period_end": "2026-12-02T13:00:00+00:00",
                     "issued_at": "2026-12-02T21:24:16.043220+00:00"}
    text = summary_text(make_statement(**lord_howe_day, timezone="Australia/Lord_Howe"))

    assert "Covers 2 December 2026 (Australia/Lord_Howe)" in text
    assert "Issued 3 December 2026" in text
    assert "Issued 2 December 2026" in summary_text(make_statement(**lord_howe_day))


def test_period_in_utc_is_shown_as_days_without_naming_the_zone():
    text = summary_text(make_statement(timezone="UTC"))

    assert "1 October 2026 – 31 October 2026" in text
    assert "(UTC)" not in text


def test_a_day_that_daylight_saving_starts_at_one_oclock_is_still_shown_as_that_day():
    # Santiago moved its clocks from 00:00 to 01:00 on 6 September 2026 (UTC−4 → UTC−3):
    # that day ran from 04:00 UTC to 03:00 UTC the next day, and began at 01:00 local
    text = summary_text(make_statement(
        period_id="2026-09-06", period_start="2026-09-06T04:00:00+00:00",
        period_end="2026-09-07T03:00:00+00:00", timezone="America/Santiago"))

    assert "Covers 6 September 2026 (America/Santiago)" in text


def test_statement_without_a_time_zone_shows_bounds_at_utc_midnights_as_days():
    # statements issued before they named their zone: 1 October 00:00 UTC to 1 November
    # 00:00 UTC covers the days 1 to 31 October, shown without a zone, as in UTC
    text = summary_text(make_statement())

    assert "1 October 2026 – 31 October 2026" in text
    assert "00:00" not in text


def test_statement_without_a_time_zone_shows_bounds_that_are_not_midnight_as_instants():
    # statements issued before they named their zone keep rendering as they did
    text = summary_text(make_statement(**MOSCOW_OCTOBER))

    assert "30 Sep 2026 21:00 UTC – 31 Oct 2026 21:00 UTC" in text


def test_fees_are_written_out_by_fee_rate_then_rounded_once():
    # 1,000 × 0.0012 = 1.2000 and 370 × 0.0023 = 0.8510: 2.0510 EUR, 2.05 once rounded
    statement = make_statement()
    statement["summary"] = {**statement["summary"], "fee_lines": [
        {"fee_rate": "0.0012", "points": 1000, "exact_fees": "1.2000"},
        {"fee_rate": "0.0023", "points": 370, "exact_fees": "0.8510"},
    ]}
    assert ("Fees on points issued, net of returns: 1,000 × 0.0012 EUR = 1.2000 EUR; "
            "370 × 0.0023 EUR = 0.8510 EUR. Rounded once, half to even: 2.05 EUR.") in summary_text(statement)


def test_a_large_negative_fee_line_prints_grouped_and_signed():
    # returns recovered more than was issued: −1,234,567 × 0.001 = −1,234.567 EUR
    statement = make_statement()
    statement["summary"] = {**statement["summary"], "fees": "-1234.57", "fee_lines": [
        {"fee_rate": "0.001", "points": -1234567, "exact_fees": "-1234.567"}]}
    assert "-1,234,567 × 0.001 EUR = -1,234.567 EUR. Rounded once, half to even: -1,234.57 EUR." in (
        " ".join(pages_text(render_pdf(statement))))


def test_a_fee_line_below_a_millionth_prints_its_digits_not_an_exponent():
    # 1 × 0.00000001 = 0.00000001 EUR: Python writes such a Decimal as 1E-8 unless told "f"
    statement = make_statement()
    statement["summary"] = {**statement["summary"], "fees": "0.00", "fee_lines": [
        {"fee_rate": "0.00000001", "points": 1, "exact_fees": "0.00000001"}]}
    assert "1 × 0.00000001 EUR = 0.00000001 EUR. Rounded once, half to even: 0.00 EUR." in (
        " ".join(pages_text(render_pdf(statement))))


def test_a_statement_closed_before_fee_lines_were_kept_prints_none():
    assert "Fees on points issued" not in " ".join(pages_text(render_pdf(make_statement())))


def test_liability_valued_is_printed_as_its_amount_in_the_base_currency():
    # 4,200 points outstanding × 0.01 EUR = 42.00 EUR, as the settlement valued them
    text = summary_text(make_statement())

    assert "Outstanding liability 42.00 EUR" in text
    assert "not valued" not in text


def test_liability_without_a_redemption_rate_to_value_it_is_said_not_valued():
    statement = make_statement()
    statement["summary"] = {**statement["summary"], "liability": None}
    text = summary_text(statement)

    assert "Outstanding liability not valued: no redemption rate" in text
    assert "4,200" in text  # the points are still shown


def test_statement_without_late_items_says_so_among_its_figures_and_lists_none():
    statement = make_statement(late_items=[])
    statement["summary"] = {**statement["summary"], "late_count": 0}
    pages = pages_text(render_pdf(statement))

    assert re.search(r"Late items\s+0\b", pages[0])
    assert "Transactions that occurred in a period already closed" not in " ".join(pages)


def test_csv_header_block_carries_statement_identity_and_figures():
    header = dict(csv_blocks(render_statement_csv(make_statement()))[0])

    assert header["statement_number"] == "2026-10-0003"
    assert header["period_id"] == "2026-10"
    assert header["partner_name"] == "Кофейня Арома"
    assert (header["currency"], header["base_currency"], header["fx_rate"]) == (
        "RUB",
        "EUR",
        "0.0110",
    )
    assert (header["receivable"], header["payable"], header["fees"]) == ("120.40", "35.10", "2.05")
    assert (header["net"], header["net_in_currency"]) == ("83.25", "7568.18")
    assert header["sha256"] == SHA


def test_csv_lists_counterparties_then_late_items_with_header_rows():
    _, counterparties, late_items = csv_blocks(render_statement_csv(make_statement()))

    assert counterparties == [
        ["partner_id", "name", "points_in", "value_in", "points_out", "value_out", "net"],
        ["skyair", "SkyAir", "9000", "90.00", "0", "0.00", "90.00"],
        ["fitgym", "Фитнес Зал", "3040", "30.40", "3510", "35.10", "-4.70"],
    ]
    assert late_items == [
        ["transaction_id", "external_id", "type", "occurred_at", "points", "original_period_id"],
        ["55", "till-7-000999", "burn", "2026-09-30T23:10:00+00:00", "-300", "2026-09"],
    ]


def test_csv_is_plain_utf8_without_byte_order_mark_and_deterministic():
    data = render_statement_csv(make_statement())

    assert not data.startswith(b"\xef\xbb\xbf")
    assert "Кофейня Арома".encode() in data
    assert data == render_statement_csv(make_statement())


def _partner_entry(partner_id, name, currency, receivable, payable, fees, net, fx_rate, net_in_currency):
    return {"partner_id": partner_id, "name": name, "currency": currency, "receivable": receivable,
            "payable": payable, "fees": fees, "net": net, "fx_rate": fx_rate,
            "net_in_currency": net_in_currency, "points_issued": 9000, "points_redeemed": 0,
            "own_redemption_points": 0, "points_reversed": 0, "shortfall_points": 0, "points_expired": 0,
            "late_count": 0, "liability_points": 0, "liability": None}


def _settlement(**overrides) -> dict:
    """SPEC §7's example world cut down: skyair's 9000 points redeemed at aroma at 0.01 (90.00),
    aroma's own 40; skyair pays fees of 9000 × 0.001 = 9.00; nets 90.00 and −99.00."""
    return {
        "period_id": "2026-10", "status": "final", "start": "2026-10-01T00:00:00+00:00",
        "end": "2026-11-01T00:00:00+00:00", "base_currency": "EUR",
        "partners": [
            _partner_entry("aroma", "=Кофейня Арома", "RUB", "90.00", "0.00", "0.00", "90.00", None, None),
            {**_partner_entry("skyair", "SkyAir", "EUR", "0.00", "90.00", "9.00", "-99.00", "1", "-99.00"),
             "fee_lines": [{"fee_rate": "0.001", "points": 9000, "exact_fees": "9.000"}]},
        ],
        "pair_lines": [
            {"issuer_id": "aroma", "redeemer_id": "aroma", "points": 40, "value": "0.00", "own_redemption": True},
            {"issuer_id": "skyair", "redeemer_id": "aroma", "points": 9000, "value": "90.00",
             "own_redemption": False},
        ],
        "netting": {"gross": "90.00", "bilateral_net": "90.00", "multilateral_net": "189.00",
                    "netting_ratio": "-1.1000", "payments_gross": 1, "payments_net": 2, "payments_saved": -1},
        **overrides,
    }


def test_a_settlement_as_csv_is_its_period_and_netting_then_partners_then_pair_lines():
    header, partners, pair_lines, fee_lines = csv_blocks(render_settlement_csv(_settlement(missing_fx=["RUB"])))

    assert header == [["period_id", "2026-10"], ["status", "final"], ["period_start", "2026-10-01T00:00:00+00:00"],
                      ["period_end", "2026-11-01T00:00:00+00:00"], ["base_currency", "EUR"],
                      ["gross", "90.00"], ["bilateral_net", "90.00"], ["multilateral_net", "189.00"],
                      ["netting_ratio", "-1.1000"], ["payments_gross", "1"], ["payments_net", "2"],
                      ["payments_saved", "-1"], ["missing_fx", "RUB"]]
    assert partners[0][:9] == ["partner_id", "name", "currency", "fx_rate", "receivable", "payable", "fees", "net",
                               "net_in_currency"]
    # a name a spreadsheet would run is neutralised; a draft's missing fx rate is an empty cell
    assert partners[1][:9] == ["aroma", "'=Кофейня Арома", "RUB", "", "90.00", "0.00", "0.00", "90.00", ""]
    assert partners[2][:9] == ["skyair", "SkyAir", "EUR", "1", "0.00", "90.00", "9.00", "-99.00", "-99.00"]
    assert dict(zip(partners[0], partners[2]))["liability"] == ""  # not valued: null
    assert pair_lines == [["issuer_id", "redeemer_id", "points", "value", "own_redemption"],
                          ["aroma", "aroma", "40", "0.00", "true"],  # as the JSON writes it, not Python's True
                          ["skyair", "aroma", "9000", "90.00", "false"]]
    # skyair's fees: 9000 points × 0.001 = 9.000, rounded once to 9.00; aroma has no fee lines
    assert fee_lines == [["partner_id", "fee_rate", "points", "exact_fees"], ["skyair", "0.001", "9000", "9.000"]]


def test_a_final_settlement_as_csv_has_no_missing_fx_row_and_the_same_bytes_each_time():
    data = render_settlement_csv(_settlement())

    assert "missing_fx" not in data.decode()
    assert data == render_settlement_csv(_settlement())
    assert not data.startswith(b"\xef\xbb\xbf")


def test_csv_keeps_spreadsheets_from_running_text_as_formulas():
    statement = make_statement(partner_name='=HYPERLINK("http://evil")')
    header = dict(csv_blocks(render_statement_csv(statement))[0])

    assert header["partner_name"] == '\'=HYPERLINK("http://evil")'
    assert header["net"] == "83.25"


def test_csv_header_block_is_the_identity_then_every_figure_in_a_fixed_order():
    header = csv_blocks(render_statement_csv(make_statement()))[0]

    assert header == [
        ["statement_number", "2026-10-0003"],
        ["statement_id", "7"],
        ["period_id", "2026-10"],
        ["period_start", "2026-10-01T00:00:00+00:00"],
        ["period_end", "2026-11-01T00:00:00+00:00"],
        ["partner_id", "aroma"],
        ["partner_name", "Кофейня Арома"],
        ["status", "final"],
        ["issued_at", "2026-11-04T09:00:00+00:00"],
        ["currency", "RUB"],
        ["base_currency", "EUR"],
        ["fx_rate", "0.0110"],
        ["receivable", "120.40"],
        ["payable", "35.10"],
        ["fees", "2.05"],
        ["net", "83.25"],
        ["net_in_currency", "7568.18"],
        ["points_issued", "1370"],
        ["points_redeemed", "12040"],
        ["points_reversed", "0"],
        ["shortfall_points", "0"],
        ["points_expired", "150"],
        ["late_count", "1"],
        ["liability_points", "4200"],
        ["liability", "42.00"],
        ["sha256", SHA],
    ]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n"])
def test_csv_quotes_a_name_starting_with_any_formula_character(start):
    header = dict(csv_blocks(render_statement_csv(make_statement(partner_name=start + "SUM(A1:A9)")))[0])

    assert header["partner_name"] == "'" + start + "SUM(A1:A9)"


def test_csv_quotes_a_formula_behind_leading_spaces():
    # LibreOffice Calc's import with "Trim spaces" ticked ran " =1+1" as the formula =1+1
    statement = make_statement(partner_name="  =SUM(A1:A9)")
    statement["late_items"][0]["external_id"] = " =1+1"
    header, _, late_items = csv_blocks(render_statement_csv(statement))

    assert dict(header)["partner_name"] == "'  =SUM(A1:A9)"
    assert late_items[1][1] == "' =1+1"


def test_csv_quotes_formulas_in_counterparty_names_and_late_item_external_ids_but_not_in_figures():
    statement = make_statement()
    statement["counterparties"][1]["name"] = "@SUM(A1:A9)"
    statement["late_items"][0]["external_id"] = "-000999"
    _, counterparties, late_items = csv_blocks(render_statement_csv(statement))

    assert counterparties[2] == ["fitgym", "'@SUM(A1:A9)", "3040", "30.40", "3510", "35.10", "-4.70"]
    assert late_items[1] == ["55", "'-000999", "burn", "2026-09-30T23:10:00+00:00", "-300", "2026-09"]


def test_own_redemption_is_said_above_the_counterparties_with_no_money():
    # 12,540 redeemed here: 9,000 + 3,040 of the counterparties' points, and 500 of aroma's own
    own = make_statement(summary={"points_redeemed": 12540, "own_redemption_points": 500})
    text = " ".join(pages_text(render_pdf(own)))

    assert (
        "Own redemption: 500 of Кофейня Арома's own points were redeemed at Кофейня Арома, "
        "with no money between partners." in text
    )
    assert "Own redemption" not in " ".join(pages_text(render_pdf(make_statement())))


def test_own_redemption_is_said_on_the_page_the_counterparty_table_starts():
    # 43 counterparties filled page 2 to its foot, and page 3 held the sentence alone
    counterparties = [
        {"partner_id": f"p{n:03d}", "name": f"Partner {n:03d}", "points_in": 100 * n,
         "value_in": f"{n}.00", "points_out": 0, "value_out": "0.00", "net": f"{n}.00"}
        for n in range(43)
    ]
    own = make_statement(counterparties=counterparties, summary={"own_redemption_points": 500})
    pages = pages_text(render_pdf(own))
    (page,) = [page for page in pages if "Own redemption" in page]
    assert page.index("Net is value in less value out. Own redemption: 500 of") < page.index("Counterparty Points in")
    assert "Partner 000" in page


def test_the_counterparties_heading_and_own_redemption_are_never_left_at_a_pages_foot():
    # with three fee lines above it, ten counterparties put the heading, the notes and the
    # own-redemption line at the foot of page 1 and the table on page 2
    fee_lines = [{"fee_rate": "0.001", "points": 1000, "exact_fees": "1.000"}] * 3
    for count in range(6, 15):
        counterparties = [
            {"partner_id": f"p{n:03d}", "name": f"Partner {n:03d}", "points_in": 100 * n,
             "value_in": f"{n}.00", "points_out": 0, "value_out": "0.00", "net": f"{n}.00"}
            for n in range(count)
        ]
        statement = make_statement(counterparties=counterparties,
                                   summary={"own_redemption_points": 500, "fee_lines": fee_lines})
        pages = pages_text(render_pdf(statement))
        (notes,) = [page for page in pages if "Own redemption" in page]
        assert "Counterparty Points in" in notes, count


def test_own_redemption_given_back_is_said_as_such():
    # an own burn of an earlier period reversed in this one: 11,540 = 9,000 + 3,040 − 500
    back = make_statement(summary={"points_redeemed": 11540, "own_redemption_points": -500})
    text = " ".join(pages_text(render_pdf(back)))

    assert "Own redemption: 500 of Кофейня Арома's own points redeemed at Кофейня Арома were given back" in text


def test_own_redemption_is_said_when_there_are_no_counterparties():
    alone = make_statement(counterparties=[], summary={"own_redemption_points": 40})
    text = " ".join(pages_text(render_pdf(alone)))

    assert "No counterparty activity in this period. Own redemption: 40 of" in text


def test_fees_of_zero_are_written_plain_in_the_workings():
    # 120.40 − 35.10 − 0.00 = 85.30 EUR; 85.30 / 0.0110 = 7754.5454… → 7754.55 RUB
    statement = make_statement(summary={"fees": "0.00", "net": "85.30", "net_in_currency": "7754.55"})
    assert "Net 85.30 EUR = receivable 120.40 − payable 35.10 − fees 0.00, in EUR." in summary_text(statement)


def test_an_offset_west_of_utc_is_written_with_a_minus():
    assert written.timestamp("2026-09-30T20:10:00-03:00") == "30 Sep 2026 20:10 UTC-03:00"
    assert written.timestamp("2026-09-30T23:10:00+00:00", "America/Sao_Paulo") == "30 Sep 2026 20:10 UTC-03:00"


def test_a_settlement_csv_names_every_missing_fx_currency_apart():
    header = dict(csv_blocks(render_settlement_csv(_settlement(missing_fx=["JPY", "RUB"])))[0])
    assert header["missing_fx"] == "JPY RUB"


def test_the_pdf_shows_each_figure_each_counterparty_and_their_totals():
    text = pages_text(render_pdf(make_statement()))[0]
    assert "Receivable 120.40 EUR Points issued 1,370 Payable 35.10 EUR" in text
    # the rows as given; the totals by hand: 9000 + 3040, 90.00 + 30.40, 0 + 3510, 0.00 + 35.10, 90.00 − 4.70
    assert "SkyAir skyair 9,000 90.00 0 0.00 90.00" in text
    assert "Фитнес Зал fitgym 3,040 30.40 3,510 35.10 -4.70" in text
    assert "Total 12,040 120.40 3,510 35.10 85.30" in text
