"""Statement documents for finance teams: PDF text layer and CSV (SPEC §7–§8).

The month is :func:`small_closed_month`: Кофейня Арома (aroma, RUB) nets
23.45 − 0.67 − 0.10 = 22.68 EUR, at 0.0125 EUR per RUB 22.68 / 0.0125 =
1814.40 RUB, the operator pays it; its statement is number {period}-0001.
"""

import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from coalition.api.settlements import StatementOut
from coalition.db import models
from coalition.services import statements
from tests.documents import csv_blocks
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    current_month_id,
    earn,
    expect,
    partner_entry,
    previous_month,
    small_closed_month,
    small_month,
    statement_of,
)


@pytest.fixture
def aroma_statement(operator) -> dict:
    return statement_of(operator, "aroma", small_closed_month(operator))


def _pdf_text(operator, statement) -> str:
    response = operator.get(f"/api/v1/statements/{statement['id']}/pdf")
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.data))
    return "\n".join(page.extract_text() for page in reader.pages)


def _digits(text: str) -> str:
    """Text with digit-group separators (comma, spaces) between digits removed."""
    return re.sub(r"(?<=\d)[,\u00a0\u202f\u2009 ](?=\d{3})", "", text)


def _csv_rows(operator, statement) -> list[list[str]]:
    response = operator.get(f"/api/v1/statements/{statement['id']}/csv")
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.data.decode("utf-8"))))


def test_statement_json_carries_the_hand_computed_net(aroma_statement):
    assert (aroma_statement["summary"]["net"], aroma_statement["summary"]["net_in_currency"]) == (
        "22.68", "1814.40")


def test_statements_bear_the_coalition_name_of_the_operators_own_partner(operator):
    expect(operator.patch("/api/v1/partners/coalition", json={"name": "Клуб Малина"}), 200)
    statement = statement_of(operator, "aroma", small_closed_month(operator))
    assert statement["coalition_name"] == "Клуб Малина"
    assert "Клуб Малина" in _pdf_text(operator, statement).split("\n")[0]


def test_pdf_is_a_pdf_document(operator, aroma_statement):
    response = operator.get(f"/api/v1/statements/{aroma_statement['id']}/pdf")
    assert response.data.startswith(b"%PDF-")


def test_pdf_text_contains_the_cyrillic_partner_name(operator, aroma_statement):
    assert "Кофейня Арома" in _pdf_text(operator, aroma_statement)


def test_pdf_text_contains_the_period_id(operator, aroma_statement):
    assert aroma_statement["period_id"] in _pdf_text(operator, aroma_statement)


def test_pdf_text_contains_the_statement_number(operator, aroma_statement):
    assert f"{aroma_statement['period_id']}-0001" == aroma_statement["number"]
    assert aroma_statement["number"] in _pdf_text(operator, aroma_statement)


def test_statement_names_its_time_zone_and_its_pdf_shows_that_zones_day(operator):
    tokyo = ZoneInfo("Asia/Tokyo")
    expect(operator.put("/api/v1/settings", json={"period": "daily", "timezone": "Asia/Tokyo"}), 200)
    add_partner(operator, "shop", "Shop", "shop", "EUR")
    add_rate(operator, "earn", "1", partner_id="shop")
    day = (datetime.now(tokyo) - timedelta(days=2)).date()
    earn(operator, "e1", "shop", "m1", datetime.combine(day, time(0, 30), tokyo).isoformat(), "10.00", "EUR")
    close(operator, day.isoformat())

    statement = statement_of(operator, "shop", day.isoformat())
    # the day began at 15:00 UTC the day before: Tokyo is UTC+9
    assert (statement["timezone"], statement["period_start"]) == (
        "Asia/Tokyo", f"{day - timedelta(days=1)}T15:00:00+00:00")
    text = " ".join(_pdf_text(operator, statement).split())
    assert f"Covers {day.day} {day:%B %Y} (Asia/Tokyo)" in text


def test_pdf_text_contains_the_net_in_base_and_partner_currency(operator, aroma_statement):
    text = _digits(_pdf_text(operator, aroma_statement))
    assert "22.68" in text
    assert "1814.40" in text


def test_pdf_writes_out_the_fees_by_fee_rate(operator, aroma_statement):
    # small_month: aroma issued 100 points at 0.001 EUR a point
    text = " ".join(_pdf_text(operator, aroma_statement).split())
    assert ("Fees on points issued, net of returns: 100 × 0.001 EUR = 0.100 EUR. "
            "Rounded once, half to even: 0.10 EUR.") in text


def test_pdf_text_contains_the_sha256(operator, aroma_statement):
    assert aroma_statement["sha256"] in _pdf_text(operator, aroma_statement).replace("\n", "")


def test_pdf_content_type_and_attachment_filename(operator, aroma_statement):
    response = operator.get(f"/api/v1/statements/{aroma_statement['id']}/pdf")
    assert response.headers.getlist("Content-Type") == ["application/pdf"]
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    filename = re.search(r'filename="?([^";]+)"?', disposition).group(1)
    assert filename.endswith(".pdf") and aroma_statement["number"] in filename


def test_csv_content_type_and_attachment_filename(operator, aroma_statement):
    response = operator.get(f"/api/v1/statements/{aroma_statement['id']}/csv")
    assert response.headers.getlist("Content-Type") == ["text/csv; charset=utf-8"]
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    filename = re.search(r'filename="?([^";]+)"?', disposition).group(1)
    assert filename.endswith(".csv") and aroma_statement["number"] in filename


@pytest.mark.parametrize("document", ["", "/pdf", "/csv"])
def test_a_download_is_tagged_with_the_statement_hash_as_a_weak_etag(operator, aroma_statement, document):
    # weak: a strong tag promises the same bytes, and a release may render the statement in others
    response = operator.get(f"/api/v1/statements/{aroma_statement['id']}{document}")
    assert response.headers["ETag"] == f'W/"{aroma_statement["sha256"]}"'  # RFC 9110: quoted


@pytest.mark.parametrize("document", ["", "/pdf", "/csv"])
def test_a_statement_may_be_kept_by_its_reader_and_no_shared_cache(operator, aroma_statement, document):
    # final statements never change: the reader's cache may keep one and ask with its ETag
    path = f"/api/v1/statements/{aroma_statement['id']}{document}"
    full = operator.get(path)
    held = operator.client.get(path, headers={**operator.headers, "If-None-Match": full.headers["ETag"]})
    assert (full.status_code, held.status_code) == (200, 304)
    for response in (full, held):
        assert response.headers["Cache-Control"] == "private, no-cache"
    # the settlement of a period, a draft until closed, is kept by none
    settlement = operator.get(f"/api/v1/settlements/{aroma_statement['period_id']}")
    assert (settlement.status_code, settlement.headers["Cache-Control"]) == (200, "no-store")


@pytest.mark.parametrize("document", ["", "/pdf", "/csv"])
def test_a_client_holding_the_download_gets_304_and_a_stale_one_the_bytes(operator, aroma_statement, document):
    path = f"/api/v1/statements/{aroma_statement['id']}{document}"
    full = operator.get(path)
    held = operator.client.get(path, headers={**operator.headers, "If-None-Match": full.headers["ETag"]})
    assert (held.status_code, held.data, held.headers["ETag"]) == (304, b"", f'W/"{aroma_statement["sha256"]}"')
    # a client that kept the strong tag an earlier release sent is holding it too
    strong = operator.client.get(path, headers={**operator.headers, "If-None-Match": f'"{aroma_statement["sha256"]}"'})
    assert strong.status_code == 304
    stale = operator.client.get(path, headers={**operator.headers, "If-None-Match": '"' + "0" * 64 + '"'})
    assert (stale.status_code, stale.data) == (200, full.data)
    # If-Match is not a condition these downloads take: no 412 carrying the document's bytes
    other = operator.client.get(path, headers={**operator.headers, "If-Match": '"' + "0" * 64 + '"'})
    assert (other.status_code, other.data) == (200, full.data)

def test_json_content_type(operator, aroma_statement):
    response = operator.get(f"/api/v1/statements/{aroma_statement['id']}")
    assert response.headers.getlist("Content-Type") == ["application/json"]


def test_a_statements_json_is_its_stored_bytes_read_alone_or_listed(operator, database, aroma_statement):
    # what was hashed is what is served: the stored canonical JSON, its id in it, and its hash
    # before it, which a finance team strips to check the SHA-256 (not a dump of it parsed again)
    rows = database.run_reading(lambda session: session.query(models.Statement).order_by(models.Statement.id).all())
    served = [f'{{"sha256":"{row.sha256}",{row.body[1:]}'.encode() for row in rows]
    assert all(json.loads(row.body)["id"] == row.id for row in rows)
    assert [hashlib.sha256(row.body.encode()).hexdigest() for row in rows] == [row.sha256 for row in rows]
    alone = [operator.get(f"/api/v1/statements/{row.id}").data for row in rows]
    assert alone == served and "Кофейня Арома".encode() in alone[0]
    first, rest = (operator.get("/api/v1/statements", query_string={"limit": 2, **cursor})
                   for cursor in ({}, {"cursor": str(rows[1].id)}))
    assert first.data == b'{"items":[' + b",".join(served[:2]) + b'],"next_cursor":"%d"}' % rows[1].id
    assert rest.data == b'{"items":[' + b",".join(served[2:]) + b'],"next_cursor":null}'
    assert [StatementOut().dump(item) for item in first.get_json()["items"]] == first.get_json()["items"]


def test_a_statement_stored_without_its_id_is_served_with_it_first():
    """Statements issued by a release before 2026-12-06 were stored, and hashed, without their id: they
    are answered as they always were, id and hash before the stored bytes; one stored with
    its id is answered with its hash alone before them (an id twice would be two keys)."""
    before = statements.Issued(7, "ab", '{"base_currency":"EUR","partner_id":"aroma"}')
    since = statements.Issued(7, "ab", '{"base_currency":"EUR","id":7,"partner_id":"aroma"}')
    assert before.served() == '{"id":7,"sha256":"ab","base_currency":"EUR","partner_id":"aroma"}'
    assert since.served() == '{"sha256":"ab","base_currency":"EUR","id":7,"partner_id":"aroma"}'
    assert before.document() == since.document() == {
        "id": 7, "sha256": "ab", "base_currency": "EUR", "partner_id": "aroma"
    }


def test_csv_parses_and_contains_the_net(operator, aroma_statement):
    cells = {cell for row in _csv_rows(operator, aroma_statement) for cell in row}
    assert "22.68" in cells
    assert "1814.40" in cells


def test_csv_contains_the_partner_name_and_statement_number(operator, aroma_statement):
    cells = {cell for row in _csv_rows(operator, aroma_statement) for cell in row}
    assert "Кофейня Арома" in cells
    assert aroma_statement["number"] in cells


def test_csv_lists_each_counterparty_with_its_values(operator, aroma_statement):
    rows = _csv_rows(operator, aroma_statement)
    # skyair → aroma 2345 pts 23.45; aroma → skyair 67 pts 0.67; 23.45 − 0.67 = 22.78
    skyair = [row for row in rows if row and row[0] == "skyair"]
    assert len(skyair) == 1
    assert {"2345", "23.45", "67", "0.67", "22.78"} <= set(skyair[0])


@pytest.mark.parametrize("document", ["", "/pdf", "/csv"])
@pytest.mark.parametrize("tag", ["hash", "*"])
def test_another_partners_key_holding_the_hash_gets_404_not_304(operator, make_key, aroma_statement, document, tag):
    # a 304 would tell skyair that aroma's statement exists, and which hash it has
    skyair = make_key("partner", "skyair")
    held = f'"{aroma_statement["sha256"]}"' if tag == "hash" else "*"
    path = f"/api/v1/statements/{aroma_statement['id']}{document}"
    response = skyair.client.get(path, headers={**skyair.headers, "If-None-Match": held})
    assert (response.status_code, response.get_json()["reason"]) == (404, "not_found")
    assert "ETag" not in response.headers


def test_the_openapi_document_says_each_statement_read_is_tagged_and_may_answer_304(client):
    document = client.get("/api/openapi.json").get_json()
    for suffix in ("", "/pdf", "/csv"):
        path = document["paths"][f"/api/v1/statements/{{statement_id}}{suffix}"]
        assert "304" in path["get"]["responses"], suffix
        assert "ETag" in path["get"]["responses"]["200"]["headers"], suffix
        assert {"$ref": "#/components/parameters/IF_NONE_MATCH"} in path["parameters"], suffix
    assert document["components"]["parameters"]["IF_NONE_MATCH"]["name"] == "If-None-Match"


def test_the_openapi_document_gives_a_csv_as_text_and_a_pdf_as_bytes(client):
    """A CSV is UTF-8 text: documented as bytes (``format: binary``) under ``text/csv``, the
    client openapi-python-client generated read the text into a bytes buffer and failed on
    every CSV download (a consumer probe)."""
    document = client.get("/api/openapi.json").get_json()
    downloads = {
        (template, type_): content[type_]["schema"]
        for template, item in document["paths"].items()
        for content in [item.get("get", {}).get("responses", {}).get("200", {}).get("content", {})]
        for type_ in content
        if type_ != "application/json"
    }
    csv_paths = ["/api/v1/settlements/{period_id}/csv", "/api/v1/statements/{statement_id}/csv", "/api/v1/transactions/csv"]
    assert sorted(template for template, type_ in downloads if type_ == "text/csv") == csv_paths
    assert {str(schema) for (_, type_), schema in downloads.items() if type_ == "text/csv"} == {"{'type': 'string'}"}
    assert downloads["/api/v1/statements/{statement_id}/pdf", "application/pdf"] == {"type": "string", "format": "binary"}


FIGURES = {
    "PartnerEntry": ["receivable", "payable", "fees", "fee_lines", "net", "fx_rate", "net_in_currency",
                     "points_issued", "points_redeemed", "own_redemption_points", "points_reversed",
                     "shortfall_points", "points_expired", "late_count", "liability_points", "liability"],
    "FeeLine": ["fee_rate", "points", "exact_fees"],
    "PairLine": ["points", "value", "own_redemption"],
    "NettingOut": ["gross", "bilateral_net", "multilateral_net", "netting_ratio", "payments_gross",
                   "payments_net", "payments_saved"],
    "Counterparty": ["points_in", "value_in", "points_out", "value_out", "net"],
    "LateItem": ["points", "original_period_id"],
}


def test_the_openapi_document_says_how_each_figure_of_a_settlement_and_statement_is_made(client):
    """A finance team reconciling a statement reads in the API's document what each figure
    is made of (a finance probe found most undescribed: fx_rate's direction, the liability,
    a late item's original_period_id, which is not a reversal's original's period)."""
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    undescribed = [
        f"{schema}.{field}"
        for schema, names in FIGURES.items()
        for field in names
        if not schemas[schema]["properties"][field].get("description")
    ]
    assert undescribed == []
    entry = schemas["PartnerEntry"]["properties"]
    assert "Base currency per 1 unit of the partner's currency" in entry["fx_rate"]["description"]
    assert "net ÷ fx_rate" in entry["net_in_currency"]["description"]


def test_the_openapi_document_says_when_a_settlement_answers_null_zero_or_404(client, operator):
    """In a yen base, jp earns 100 JPY × 1 = 100 points for m1, who spends 30 at jp itself
    (jp's own redemption rate; the coalition has none): jp's own redemption is worth 0 yen,
    jp's 70 points outstanding have no value (null), and quiet, with none, a liability of
    0 yen. The document said null without a rate and 0.00 for own redemption; and listed
    two 404s of a draft, where a period no posting can ever be dated in is one too."""
    expect(operator.put("/api/v1/settings", json={"base_currency": "JPY"}), 200)
    start, _, period_id = previous_month()
    add_partner(operator, "jp", "Nippon Mart", "shop", "JPY")
    add_partner(operator, "quiet", "Quiet", "shop", "JPY")
    add_rate(operator, "earn", "1", partner_id="jp")
    add_rate(operator, "redemption", "1", partner_id="jp")
    earn(operator, "e-1", "jp", "m1", at(start, 1), "100", "JPY")
    burn(operator, "b-1", "jp", "m1", at(start, 2), 30)
    draft = expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)
    assert [(line["points"], line["value"], line["own_redemption"]) for line in draft["pair_lines"]] == [
        (30, "0", True)]
    jp, quiet = partner_entry(draft, "jp"), partner_entry(draft, "quiet")
    assert (jp["liability_points"], jp["liability"]) == (70, None)
    assert (quiet["liability_points"], quiet["liability"]) == (0, "0")
    expect(operator.get("/api/v1/settlements/1026-11"), 404)

    document = client.get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    assert "0 in JPY" in schemas["PairLine"]["properties"]["value"]["description"]
    assert "null when points are outstanding" in schemas["PartnerEntry"]["properties"]["liability"][
        "description"]
    for path in ("/api/v1/settlements/{period_id}", "/api/v1/settlements/{period_id}/csv"):
        assert "before every transaction" in document["paths"][path]["get"]["responses"]["404"]["description"]


def test_every_header_a_statement_read_sends_is_in_the_openapi_document(client, operator, aroma_statement):
    """A client generated from the document learns of the ETag on a 304 and of a download's
    file name: neither was documented there."""
    document = client.get("/api/openapi.json").get_json()
    for suffix in ("", "/pdf", "/csv"):
        path = f"/api/v1/statements/{aroma_statement['id']}{suffix}"
        documented = document["paths"][f"/api/v1/statements/{{statement_id}}{suffix}"]["get"]["responses"]
        full = operator.get(path)
        held = operator.client.get(path, headers={**operator.headers, "If-None-Match": full.headers["ETag"]})
        for response in (full, held):
            # what every answer carries is not each operation's to say
            sent = set(response.headers.keys()) - {"Content-Type", "Content-Length", "X-Content-Type-Options"}
            said = set(documented[str(response.status_code)].get("headers", {}))
            assert sent and sent <= said, (suffix, response.status_code, sent - said)


def test_a_cursor_past_the_last_statement_is_an_empty_last_page(operator, aroma_statement):
    # a client that keeps its last cursor asks from it later and misses nothing: not 422
    for cursor in (str(aroma_statement["id"] + 1000), "2147483647"):
        page = expect(operator.get("/api/v1/statements", query_string={"cursor": cursor, "limit": 10}), 200)
        assert page == {"items": [], "next_cursor": None}, cursor
    refused = operator.get("/api/v1/statements", query_string={"cursor": "2147483648"})
    assert (refused.status_code, refused.get_json()["reason"]) == (422, "bad_cursor")


def test_a_partner_that_took_no_part_closes_without_an_fx_rate_and_says_so(operator):
    """gym (GBP) joins but posts nothing in the small month, and GBP has no fx rate: it
    nets 0.00 EUR, which is 0.00 GBP at any rate, so the month closes; its statement
    shows no rate and says none was needed."""
    period_id = small_month(operator)
    add_partner(operator, "gym", "Iron Gym", "gym", "GBP")
    close(operator, period_id)
    statement = statement_of(operator, "gym", period_id)
    summary = statement["summary"]
    assert (summary["fx_rate"], summary["net"], summary["net_in_currency"]) == (None, "0.00", "0.00")
    text = _pdf_text(operator, statement)
    assert "Nothing to pay" in text
    assert "Nothing to convert into GBP, and no fx rate was needed." in " ".join(text.split())
    assert "none needed" in text
    rows = {row[0]: row[1:] for row in _csv_rows(operator, statement) if row}
    assert (rows["fx_rate"], rows["net_in_currency"]) == ([""], ["0.00"])


def _settlement_csv(caller, period_id: str):
    """A settlement's CSV: its key/value block as a dict, its partners', pair lines' and fee
    lines' tables, and its file name."""
    response = caller.get(f"/api/v1/settlements/{period_id}/csv")
    assert (response.status_code, response.mimetype) == (200, "text/csv")
    header, partners, pair_lines, fee_lines = csv_blocks(response.data)
    return dict(header), partners, pair_lines, fee_lines, response.headers["Content-Disposition"]


def test_a_closed_settlement_as_csv_carries_the_hand_computed_figures(operator):
    """small_closed_month: aroma nets 23.45 − 0.67 − 0.10 = 22.68 EUR = 1814.40 RUB, skyair
    0.67 − 23.45 − 2.47 = −25.25 EUR; pair lines skyair → aroma 2345 points, 23.45 and
    aroma → skyair 67 points, 0.67; gross 23.45 + 0.67 = 24.12."""
    period_id = small_closed_month(operator)
    header, partners, pair_lines, fee_lines, disposition = _settlement_csv(operator, period_id)

    assert disposition == f'attachment; filename="coalition-settlement-{period_id}-final.csv"'
    assert (header["period_id"], header["status"], header["base_currency"], header["gross"]) == (
        period_id, "final", "EUR", "24.12")
    assert "missing_fx" not in header
    by_partner = {row[0]: dict(zip(partners[0], row)) for row in partners[1:]}
    assert sorted(by_partner) == ["aroma", "coalition", "skyair"]
    assert by_partner["coalition"]["net"] == "0.00"
    aroma, skyair = by_partner["aroma"], by_partner["skyair"]
    assert (aroma["name"], aroma["receivable"], aroma["payable"], aroma["fees"], aroma["net"]) == (
        "Кофейня Арома", "23.45", "0.67", "0.10", "22.68")
    assert (aroma["fx_rate"], aroma["net_in_currency"]) == ("0.0125", "1814.40")
    assert (skyair["fees"], skyair["net"], skyair["points_issued"]) == ("2.47", "-25.25", "2468")
    assert sorted(pair_lines[1:]) == [["aroma", "skyair", "67", "0.67", "false"],
                                      ["skyair", "aroma", "2345", "23.45", "false"]]
    # fees 100 × 0.001 = 0.100 → 0.10 and 2468 × 0.001 = 2.468 → 2.47, each rounded once
    assert sorted(fee_lines[1:]) == [["aroma", "0.001", "100", "0.100"], ["skyair", "0.001", "2468", "2.468"]]


def test_a_draft_settlement_as_csv_names_the_fx_rates_a_close_needs(operator):
    """sakura (JPY) earns this month, with no fx rate for JPY: 1000 JPY × 0.1 = 100 points,
    fees 100 × 0.001 = 0.10 EUR, net −0.10 EUR, in yen unknown until JPY has a rate."""
    add_partner(operator, "sakura", "さくら", "cafe", "JPY")
    add_rate(operator, "earn", "0.1", partner_id="sakura")
    add_rate(operator, "fee", "0.001")
    earn(operator, "s1", "sakura", "m1", (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "1000", "JPY")
    period_id = current_month_id()
    header, partners, pair_lines, _, disposition = _settlement_csv(operator, period_id)

    assert disposition.endswith(f'"coalition-settlement-{period_id}-draft.csv"')
    assert (header["status"], header["missing_fx"]) == ("draft", "JPY")
    sakura = next(dict(zip(partners[0], row)) for row in partners[1:] if row[0] == "sakura")
    assert (sakura["points_issued"], sakura["net"], sakura["fx_rate"], sakura["net_in_currency"]) == (
        "100", "-0.10", "", "")  # no fx rate yet: empty, as the JSON's null
    assert pair_lines == [["issuer_id", "redeemer_id", "points", "value", "own_redemption"]]


def test_the_openapi_document_says_how_a_statements_sha256_is_recomputed(client, aroma_statement):
    """SPEC §7: "the SHA-256 of its canonical JSON". The statement as answered, less its
    ``sha256``, hashes to it by the document's recipe, run as written, on a statement with
    a Cyrillic name (statements were hashed without their id: the acceptance probe, hashing
    the JSON less its sha256 as SPEC's words read, got another digest)."""
    described = client.get("/api/openapi.json").get_json()["components"]["schemas"]["StatementOut"]
    recipe = re.search(r"in Python `(.+?)`\.", described["properties"]["sha256"]["description"])[1]
    statement = {k: v for k, v in aroma_statement.items() if k != "sha256"}
    assert "Кофейня" in statement["partner_name"] and isinstance(statement["id"], int)
    canonical = eval(recipe, {"json": json, "statement": statement})  # noqa: S307 (our own text)
    assert hashlib.sha256(canonical).hexdigest() == aroma_statement["sha256"]


def test_the_openapi_document_tells_a_statement_hashed_without_its_id_by_its_answer_not_its_date(client):
    """A database upgraded to the release of 2026-12-06 a week later holds statements the
    earlier release issued after that date, stored and hashed without their id: the
    document said "issued before 2026-12-06", and a finance team checking one issued on
    2026-12-10 hashed it with its id and found it wrong. What tells them apart is the
    answer: `id` before `sha256` for one stored without its id."""
    described = client.get("/api/openapi.json").get_json()["components"]["schemas"]["StatementOut"]
    said = described["properties"]["sha256"]["description"]
    assert "answered with `id` before `sha256`" in said and "whatever its `issued_at`" in said
    body = {"issued_at": "2026-12-10T09:00:00+00:00", "number": "2026-11-0001", "partner_id": "aroma"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    earlier = statements.Issued(7, hashlib.sha256(text.encode()).hexdigest(), text)
    answered = earlier.served()
    assert answered.startswith('{"id":7,"sha256":')
    less = {key: value for key, value in json.loads(answered).items() if key not in ("id", "sha256")}
    recomputed = json.dumps(less, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    assert hashlib.sha256(recomputed).hexdigest() == earlier.sha256
