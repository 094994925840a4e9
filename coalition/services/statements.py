"""Statements: one partner's slice of a closed period's settlement (SPEC §7).

Issued once, when the period closes, and immutable: each is stored as
canonical JSON with its SHA-256, and every read serves those stored bytes
(the PDF and CSV are rendered from them, :mod:`reports`). The stored JSON is
the statement whole but its hash, its id included, so that the JSON answered,
less ``sha256``, hashes to ``sha256`` in the canonical form (SPEC §7's "the
SHA-256 of its canonical JSON"); its id is drawn before it is written. A
statement issued by a release before 2026-12-06 (whenever the database was
upgraded: such a release issues them so on any date) was stored, and hashed,
without its id; it is answered with its id first (:meth:`Issued.served`).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from coalition.db import aggregates, models
from coalition.domain import money, periods
from coalition.domain import settlement as arithmetic
from coalition.domain.errors import NotFound
from coalition.domain.partners import OPERATOR_PARTNER
from coalition.services import calendar, catalog, pages
from coalition.services.book import Ids

if TYPE_CHECKING:  # settlement issues statements, so it imports this module
    from coalition.services.settlement import Settled

MAX_STATEMENT_ID = 2**31 - 1  # statement ids are INTEGER columns


def canonical(document: dict) -> str:
    """The one serialisation that is stored, hashed and served."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def issue(session, settled: "Settled", now: datetime) -> None:
    """One final statement per partner of a closed period's settlement, numbered
    ``{period_id}-{nnnn}`` in partner-id order."""
    reference = catalog.current(session)
    settlement = settled.document
    period_id = settlement["period_id"]
    of_the_period = {
        "period_id": period_id,
        "period_start": settlement["start"],
        "period_end": settlement["end"],
        "timezone": reference.calendar.timezone,
        "coalition_name": _coalition_name(settlement),
        "status": "final",
        "issued_at": now.isoformat(),
        "base_currency": settlement["base_currency"],
    }
    late = _late_items(session, period_id, reference.calendar)
    names = {entry["partner_id"]: entry["name"] for entry in settlement["partners"]}
    ids = Ids(session, {"statements": len(settlement["partners"])}, None)
    for index, entry in enumerate(
        sorted(settlement["partners"], key=lambda e: e["partner_id"]), start=1
    ):
        partner_id = entry["partner_id"]
        body = {
            **of_the_period,
            "id": ids.next("statements"),
            "number": f"{period_id}-{index:04d}",
            "partner_id": partner_id,
            "partner_name": entry["name"],
            "currency": entry["currency"],
            "summary": entry,
            "counterparties": _counterparties(
                settlement["base_currency"],
                names,
                settled.lines_by_partner.get(partner_id, []),
                partner_id,
            ),
            "late_items": late.get(partner_id, []),
        }
        session.add(_stored(body, now))


def _stored(body: dict, issued_at: datetime) -> models.Statement:
    """A statement's row: its canonical JSON, the bytes every read serves, and the SHA-256
    of them, which its reader checks them by (SPEC §7)."""
    text = canonical(body)
    return models.Statement(
        id=body["id"],
        number=body["number"],
        period_id=body["period_id"],
        partner_id=body["partner_id"],
        issued_at=issued_at,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        body=text,
    )


def _coalition_name(settlement: dict) -> str:
    """The programme's name as its operator's own partner bears it (SPEC §5: the
    reserved partner ``coalition`` is the operator), renamed with it."""
    (name,) = (
        entry["name"] for entry in settlement["partners"] if entry["partner_id"] == OPERATOR_PARTNER
    )
    return name


def _counterparties(base: str, names: dict, lines: list, partner_id: str) -> list[dict]:
    """The statement's counterparty table, from the partner's pair lines."""
    return [
        {
            "partner_id": side.partner_id,
            "name": names.get(side.partner_id, side.partner_id),
            "points_in": side.points_in,
            "value_in": money.text(side.value_in),
            "points_out": side.points_out,
            "value_out": money.text(side.value_out),
            "net": money.text(side.net),
        }
        for side in arithmetic.counterparties(lines, partner_id, base)
    ]


def _late_items(session, period_id: str, periods_of: periods.Calendar) -> dict[str, list[dict]]:
    """The period's late transactions by partner, with the period each belonged to."""
    by_partner: dict[str, list[dict]] = {}
    for item in aggregates.late_items(session, period_id):
        by_partner.setdefault(item.partner_id, []).append(
            {
                "transaction_id": item.id,
                "external_id": item.external_id,
                "type": item.type,
                "member_id": item.member_id,
                "occurred_at": item.occurred_at.isoformat(),
                "points": item.points,
                "original_period_id": periods_of.containing(item.occurred_at).id,
            }
        )
    return by_partner


@dataclass(frozen=True)
class Issued:
    """A final statement as stored: its id, its SHA-256 and its canonical JSON."""

    id: int
    sha256: str
    body: str

    @classmethod
    def of(cls, row: models.Statement) -> "Issued":
        return cls(row.id, row.sha256, row.body)

    def document(self) -> dict:
        """What it says, with its id and hash: what its PDF and CSV are drawn from."""
        return {"id": self.id, "sha256": self.sha256, **json.loads(self.body)}

    def served(self) -> str:
        """Its JSON as the API answers it: the stored bytes, its hash first (and its id, for
        a statement stored without it). Parsed and dumped again through a schema it would
        read the same, at several milliseconds a statement of hundreds of counterparties:
        most of a listing's time."""
        # a key "id" is the statement's own: no part of a statement has one, and in a
        # name or id as JSON writes it, the quotes around "id" would be escaped
        its_id = "" if '"id":' in self.body else f'"id":{self.id},'
        return f'{{{its_id}"sha256":"{self.sha256}",{self.body[1:]}'


def list_statements(
    session,
    principal,
    paging: pages.Paging,
    period_id: str | None = None,
    partner_id: str | None = None,
) -> dict:
    """Final statements in the order they were issued (or its reverse): period by period
    (a close issues every earlier period's first), each period's by number; a page, or all."""
    partner_id = principal.listed_partner(partner_id)
    query = select(models.Statement)
    if period_id is not None:
        query = query.where(
            models.Statement.period_id == calendar.parse(session, period_id, location="query").id
        )
    if partner_id is not None:
        query = query.where(models.Statement.partner_id == partner_id)
    page, next_cursor = pages.page(
        session, query, models.Statement.id, paging, max_id=MAX_STATEMENT_ID
    )
    return {"items": [Issued.of(row) for row in page], "next_cursor": next_cursor}


def get_statement(session, principal, statement_id: int) -> Issued:
    row = session.get(models.Statement, statement_id)
    if row is None or not principal.may_see(row.partner_id):
        raise NotFound(f"no statement {statement_id}")
    return Issued.of(row)
