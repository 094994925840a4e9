"""A closed period's settlement is answered as its close stored it (SPEC §7: stored once,
immutable), whatever changed since, and as the answer's schema would have written it.

The month is :func:`small_month`: Кофейня Арома (aroma, RUB) and SkyAir (skyair, EUR)
trade points; its figures are worked out in its docstring.
"""

import json

from sqlalchemy import select

import reports
from coalition.api.settlements import PartnerEntry, SettlementOut
from coalition.db import models
from coalition.services import settlement
from tests.e2e.helpers import expect
from tests.e2e.settlement_world import partner_entry, previous_month, small_closed_month, small_month


def _stored(database, period_id: str) -> str:
    """The settlement the close wrote in the periods table."""
    return database.run_reading(lambda session: session.get(models.Period, period_id).settlement)


def test_a_closed_settlement_is_the_one_stored_whatever_changed_since(operator, database):
    """aroma renamed after the close: its settlement, read or closed again, names it as the
    close did, where one computed again would name it anew; its CSV is the rendering of the
    schema's dump of the stored document, as it was before."""
    period_id = small_closed_month(operator)
    expect(operator.patch("/api/v1/partners/aroma", json={"name": "Aroma Café"}), 200)
    stored = _stored(database, period_id)
    read = operator.get(f"/api/v1/settlements/{period_id}")
    assert read.data == operator.post(f"/api/v1/settlements/{period_id}/close").data == stored.encode()
    assert partner_entry(read.get_json(), "aroma")["name"] == "Кофейня Арома"
    assert partner_entry(read.get_json(), "aroma")["net"] == "22.68"  # 23.45 − 0.67 − 0.10
    csv_file = operator.get(f"/api/v1/settlements/{period_id}/csv").data
    assert csv_file == reports.render_settlement_csv(SettlementOut().dump(json.loads(stored)))
    assert "Кофейня Арома".encode() in csv_file and b"Aroma Caf" not in csv_file


def test_what_a_close_stores_is_canonical_json(operator, database):
    """The settlement and each statement are stored as decisions.md gives their form: keys
    sorted at every level, names as UTF-8 rather than ``\\u`` escapes, no space between
    tokens, no final line feed. Served and hashed as stored, and the KPIs read a settlement's
    partners where that form puts them, so the form is what clients and the service see."""
    period_id = small_closed_month(operator)

    def stored_texts(session):
        statements = session.execute(select(models.Statement.partner_id, models.Statement.body)
                                     .where(models.Statement.period_id == period_id))
        return {"settlement": session.get(models.Period, period_id).settlement, **dict(statements.all())}

    texts = database.run_reading(stored_texts)
    assert sorted(texts) == ["aroma", "coalition", "settlement", "skyair"]
    for text in texts.values():
        written = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert text == written and "\\u" not in text
    for naming_aroma in ("settlement", "aroma", "skyair"):  # skyair's counterparty is aroma
        assert "Кофейня Арома" in texts[naming_aroma]


def test_a_period_closed_with_no_transactions_is_answered_as_stored(operator, database):
    """The previous month closed on a ledger with nothing posted: the operator's own partner
    alone, all zeros, no pair lines, a netting ratio of null (its gross is 0)."""
    _, _, period_id = previous_month()
    closed = operator.post(f"/api/v1/settlements/{period_id}/close")
    read = operator.get(f"/api/v1/settlements/{period_id}")
    again = operator.post(f"/api/v1/settlements/{period_id}/close")
    assert closed.data == read.data == again.data == _stored(database, period_id).encode()
    document = read.get_json()
    assert document == SettlementOut().dump(document)
    assert [entry["partner_id"] for entry in document["partners"]] == ["coalition"]
    assert (document["status"], document["pair_lines"]) == ("final", [])
    assert (document["netting"]["gross"], document["netting"]["netting_ratio"]) == ("0.00", None)
    assert partner_entry(document, "coalition")["fee_lines"] == []


def test_a_settlement_stored_without_fee_lines_is_answered_as_the_schema_answered_it(
        operator, database, monkeypatch):
    """A release before 2026-12-01 stored settlements with no fee_lines in any partner's entry,
    and no migration rewrote them (periods are append-only). One closed so is answered as
    stored, which is what the schema made of it: it leaves out of its dump a field the
    document lacks, and keeps every other."""
    partner_entry_of = settlement._partner_entry

    def as_before(*args):
        return {key: value for key, value in partner_entry_of(*args).items() if key != "fee_lines"}

    monkeypatch.setattr(settlement, "_partner_entry", as_before)
    period_id = small_month(operator)
    closed = operator.post(f"/api/v1/settlements/{period_id}/close")
    read = operator.get(f"/api/v1/settlements/{period_id}")
    assert closed.data == read.data == _stored(database, period_id).encode()
    document = read.get_json()
    assert document == SettlementOut().dump(document)
    everything_but = tuple(sorted(set(PartnerEntry().fields) - {"fee_lines"}))
    assert [tuple(sorted(entry)) for entry in document["partners"]] == [everything_but] * 3
    assert partner_entry(document, "skyair")["fees"] == "2.47"  # 2468 × 0.001 = 2.468
