"""Periods, settlements and statements (SPEC §7)."""

import json
from datetime import UTC, datetime

from flask import Response, jsonify, request
from flask.views import MethodView
from marshmallow import fields
from werkzeug.http import quote_etag

import reports
from coalition.api import Blueprint, database
from coalition.api.answers import CSV, CSV_TEXT, DOWNLOAD, Answer, attached, attachment
from coalition.api.authentication import principal
from coalition.api.errors import ANOTHER_PARTNERS_DATA, MALFORMED_JSON
from coalition.api.fields import (
    PERIOD_ID,
    PERIOD_ID_LENGTH,
    PERIOD_STATUSES,
    Count,
    DecimalOut,
    InstantOut,
    MoneyOut,
    OneOfOut,
    PartnerId,
    Range,
    Ratio,
    Text,
)
from coalition.api.pagination import MAX_PAGE, PageArgs, paging
from coalition.api.parsing import refuse_malformed_body
from coalition.domain import lots
from coalition.services import calendar, settlement, statements

blp = Blueprint(
    "settlements", __name__, url_prefix="/api/v1", description="Periods, settlements, statements"
)


class PeriodOut(Answer):
    id = fields.String(metadata={"description": PERIOD_ID})
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    status = OneOfOut(PERIOD_STATUSES)
    closed_at = fields.AwareDateTime(allow_none=True)


class StatementQuery(PageArgs):
    # SPEC §7 lists statements unpaged: without a limit, every one (after the cursor)
    limit = Count(
        load_default=None,
        validate=Range(1, MAX_PAGE),
        metadata={"description": "Statements a page; without it, every statement"},
    )
    period_id = Text(
        max_length=PERIOD_ID_LENGTH, load_default=None, metadata={"description": PERIOD_ID}
    )
    partner_id = fields.String(load_default=None, validate=PartnerId)


class FeeLine(Answer):
    fee_rate = DecimalOut(
        metadata={"description": "Base currency the issuer pays per point, by its value"}
    )
    points = fields.Integer(
        metadata={"description": "Points issued at this fee rate, net of returns"}
    )
    exact_fees = DecimalOut(
        metadata={"description": "points × fee_rate, before fees are rounded once"}
    )


class PartnerEntry(Answer):
    may_omit = ("fee_lines",)

    partner_id = fields.String()
    name = fields.String()
    currency = fields.String()
    receivable = MoneyOut(
        metadata={
            "description": "Σ of the pair lines' values (each rounded already) where this "
            "partner is the redeemer of another's points; base currency"
        }
    )
    payable = MoneyOut(
        metadata={
            "description": "Σ of the pair lines' values (each rounded already) where this "
            "partner's points were redeemed at another; base currency"
        }
    )
    fees = MoneyOut(
        metadata={
            "description": "Σ of fee_lines' exact_fees, rounded once half to even; base "
            "currency (the coalition partner pays none)"
        }
    )
    fee_lines = fields.List(
        fields.Nested(FeeLine),
        metadata={
            "description": "What fees are made of, by fee rate; absent from settlements "
            "and statements closed before 2026-12-01"
        },
    )
    net = MoneyOut(
        metadata={
            "description": "receivable − payable − fees, base currency. Positive: the "
            "operator pays the partner"
        }
    )
    fx_rate = DecimalOut(
        allow_none=True,
        metadata={
            "description": "Base currency per 1 unit of the partner's currency, the rate in "
            "force at the period's last instant; null where none is needed, or in a draft "
            "none is in force"
        },
    )
    net_in_currency = MoneyOut(
        allow_none=True,
        metadata={
            "description": "net ÷ fx_rate, rounded once half to even to the partner's "
            "currency's minor unit"
        },
    )
    points_issued = fields.Integer(
        metadata={"description": "Points of the partner's earns and bonuses, before returns"}
    )
    points_redeemed = fields.Integer(
        metadata={
            "description": (
                "Points redeemed at this partner, whoever issued them, less burn reversals"
            )
        }
    )
    own_redemption_points = fields.Integer(
        metadata={"description": "Of points_redeemed, the partner's own points (no money moves)"}
    )
    points_reversed = fields.Integer(
        metadata={
            "description": "Points the partner's returns took back from their lots; fees "
            "are charged on points_issued − points_reversed"
        }
    )
    shortfall_points = fields.Integer(
        metadata={
            "description": "Points the partner's returns could not take back, their lot "
            "being spent: they stay issued and keep their fee"
        }
    )
    points_expired = fields.Integer(
        metadata={"description": "Points of the partner's lots that expired (breakage)"}
    )
    late_count = fields.Integer(
        metadata={
            "description": "The partner's own transactions dated in a closed period and "
            "settled in this one (late_items)"
        }
    )
    liability_points = fields.Integer(
        metadata={
            "description": "The partner's points in lots not expired at the period's last "
            "instant (available or pending), less what postings dated before its end and "
            "recorded before the close took out"
        }
    )
    liability = MoneyOut(
        allow_none=True,
        metadata={
            "description": "liability_points × the coalition-wide redemption rate at the "
            "period's last instant, rounded once; null when points are outstanding and no "
            "such rate is in force"
        },
    )


class PairLine(Answer):
    issuer_id = fields.String()
    redeemer_id = fields.String()
    points = fields.Integer(
        metadata={
            "description": "The issuer's points spent at the redeemer: burns less burn reversals"
        }
    )
    value = MoneyOut(
        metadata={
            "description": "What the issuer owes the redeemer: Σ points × the redeemer's "
            "redemption rate at each burn's occurred_at (a reversal at its burn's), rounded "
            "once; zero for own redemption (0.00 in EUR, 0 in JPY); base currency"
        }
    )
    own_redemption = fields.Boolean(
        metadata={"description": "Issuer and redeemer are one partner: no money moves"}
    )


class NettingOut(Answer):
    gross = MoneyOut(metadata={"description": "Σ |value| of the pair lines between two partners"})
    bilateral_net = MoneyOut(
        metadata={"description": "Σ over pairs of partners of |A → B − B → A|"}
    )
    multilateral_net = MoneyOut(
        metadata={"description": "Σ |net| over the partners, fees included"}
    )
    netting_ratio = Ratio(
        allow_none=True,
        metadata={
            "description": "1 − multilateral_net ÷ gross, to 4 places half to even (negative "
            "where Σ |net| exceeds the gross); null when the gross is 0"
        },
    )
    payments_gross = fields.Integer(
        metadata={"description": "Pair lines between two partners with a value other than 0"}
    )
    payments_net = fields.Integer(metadata={"description": "Partners whose net is not 0"})
    payments_saved = fields.Integer(
        metadata={
            "description": "payments_gross − payments_net; negative where clearing makes more payments"
        }
    )


class SettlementOut(Answer):
    may_omit = ("missing_fx",)

    period_id = fields.String()
    status = OneOfOut(
        ("draft", "final"), ": a live draft while the period is open, final once it is closed"
    )
    start = InstantOut()
    end = InstantOut()
    base_currency = fields.String()
    partners = fields.List(fields.Nested(PartnerEntry))
    pair_lines = fields.List(fields.Nested(PairLine))
    netting = fields.Nested(NettingOut)
    missing_fx = fields.List(
        fields.String(),
        metadata={
            "description": "A draft's only: the currencies of partners taking part that have"
            " no fx rate at the period's end; closing is 409 no_rate until each has one"
        },
    )


class Counterparty(Answer):
    partner_id = fields.String()
    name = fields.String()
    points_in = fields.Integer(
        metadata={
            "description": "The counterparty's points spent at this partner: the pair "
            "line counterparty → partner"
        }
    )
    value_in = MoneyOut(metadata={"description": "That pair line's value: receivable"})
    points_out = fields.Integer(
        metadata={
            "description": "This partner's points spent at the counterparty: the pair line "
            "partner → counterparty"
        }
    )
    value_out = MoneyOut(metadata={"description": "That pair line's value: payable"})
    net = MoneyOut(metadata={"description": "value_in − value_out"})


class LateItem(Answer):
    transaction_id = fields.Integer()
    external_id = fields.String()
    type = OneOfOut(lots.TYPES)
    member_id = fields.String()
    occurred_at = InstantOut()
    points = fields.Integer(
        metadata={"description": "The transaction's points: the change to the member's balance"}
    )
    original_period_id = fields.String(
        metadata={
            "description": "The closed period its occurred_at falls in, where it would "
            "have settled (not the period of a reversal's original)"
        }
    )


class StatementOut(Answer):
    may_omit = ("timezone",)

    id = fields.Integer()
    number = fields.String()
    period_id = fields.String()
    period_start = InstantOut()
    period_end = InstantOut()
    timezone = fields.String(
        metadata={
            "description": "The coalition's time zone, which periods follow (SPEC §3);"
            " absent from statements issued before 2026-11-30"
        }
    )
    partner_id = fields.String()
    partner_name = fields.String()
    coalition_name = fields.String()
    status = OneOfOut(("final",), ": issued when its period closes, never changed after")
    sha256 = fields.String(
        metadata={
            "description": "SHA-256 (hex) of this statement's canonical JSON less `sha256`:"
            " keys sorted, no spaces, UTF-8 with characters as themselves (no \\u escapes);"
            ' in Python `json.dumps(statement, sort_keys=True, ensure_ascii=False, separators=(",",'
            ' ":")).encode()`. A statement issued by a release before 2026-12-06, whatever its'
            " `issued_at`, is hashed less its `id` too; its JSON is answered with `id` before"
            " `sha256`, and a new one's with `sha256` first"
        }
    )
    issued_at = InstantOut()
    currency = fields.String()
    base_currency = fields.String()
    summary = fields.Nested(PartnerEntry)
    counterparties = fields.List(fields.Nested(Counterparty))
    late_items = fields.List(fields.Nested(LateItem))


class StatementList(Answer):
    items = fields.List(fields.Nested(StatementOut))
    next_cursor = fields.String(allow_none=True)


@blp.route("/periods")
class Periods(MethodView):
    @blp.doc(operationId="listPeriods")
    @blp.response(200, PeriodOut(many=True))
    def get(self):
        """Settlement periods: closed ones, then the open ones up to today"""
        return database().run_reading(calendar.list_periods, datetime.now(UTC))


NO_SETTLEMENT = blp.alt_response(
    404,
    description="not_found: the period has not begun, precedes the first closed period, or"
    " (before any close) ended before every transaction and beyond the backdating limit",
)
NOT_A_PERIOD = blp.alt_response(
    422, description="invalid: not a period id of the coalition's calendar"
)


#: The path's period id, as the document describes it (flask-smorest adds its schema).
PERIOD_IN_PATH = [{"in": "path", "name": "period_id", "description": PERIOD_ID}]


@blp.route("/settlements/<period_id>", parameters=PERIOD_IN_PATH)
class Settlement(MethodView):
    @blp.doc(operationId="getSettlement")
    @blp.reads_every_partner("reads that partner's statements instead")
    @blp.response(200, SettlementOut)
    @NO_SETTLEMENT
    @NOT_A_PERIOD
    def get(self, period_id):
        """A period's settlement: final once closed, a live draft while open"""
        return _settlement(database().run_consistent(settlement.read, period_id, datetime.now(UTC)))


@blp.route("/settlements/<period_id>/csv", parameters=PERIOD_IN_PATH)
class SettlementCsv(MethodView):
    @blp.doc(operationId="getSettlementCsv")
    @blp.reads_every_partner("reads that partner's statements instead")
    @blp.response(
        200,
        CSV_TEXT,
        content_type="text/csv",
        headers=attached("coalition-settlement-{period_id}-{status}.csv"),
    )
    @NO_SETTLEMENT
    @NOT_A_PERIOD
    def get(self, period_id):
        """A period's settlement as CSV: its netting, partners, pair lines and fee lines"""
        figures = database().run_consistent(settlement.get, period_id, datetime.now(UTC))
        named = ("coalition-settlement", figures["period_id"], figures["status"])
        return Response(
            reports.render_settlement_csv(figures),
            content_type=CSV,
            headers=attachment(*named, extension="csv"),
        )


@blp.route("/settlements/<period_id>/close", parameters=PERIOD_IN_PATH)
class Close(MethodView):
    @blp.doc(operationId="closePeriod")
    @blp.roles("operator")
    @blp.response(200, SettlementOut)
    @blp.alt_response(
        404,
        description="not_found: the period precedes the first closed period, or (before any"
        " close) ended before every transaction and beyond the backdating limit",
    )
    @blp.alt_response(
        409,
        description="period_open: the period has not ended; no_rate: a partner's currency"
        " has no fx rate at the period's end",
    )
    @NOT_A_PERIOD
    @blp.alt_response(400, MALFORMED_JSON.name)
    def post(self, period_id):
        """Close the period (and earlier open ones) and issue final statements"""
        refuse_malformed_body()
        return _settlement(database().run(settlement.close, period_id, datetime.now(UTC)))


def _settlement(found: "settlement.Stored | dict") -> Response:
    """A closed period's settlement as its stored bytes (:class:`settlement.Stored`), as
    statements are answered (:func:`_json`); a draft, computed now, written as Flask writes
    any answer. A draft is in the answer's form already, as a close stores it (strings,
    integers, booleans, nulls): its schema documents it, and dumping it through the schema
    would only copy it, 0.65 s of a 300-partner draft's 89,700 pair lines."""
    return _json(found.text) if isinstance(found, settlement.Stored) else jsonify(found)


@blp.route("/statements")
class Statements(MethodView):
    @blp.doc(operationId="listStatements")
    @blp.arguments(StatementQuery, location="query")
    @blp.response(200, StatementList)
    @blp.alt_response(403, ANOTHER_PARTNERS_DATA.name)
    def get(self, query):
        """Final statements in issue order or newest first (a partner key sees its own)"""
        page = paging(query)
        listed = database().run_reading(statements.list_statements, principal(), page, **query)
        items = ",".join(issued.served() for issued in listed["items"])
        cursor = json.dumps(listed["next_cursor"])
        return _json(f'{{"items":[{items}],"next_cursor":{cursor}}}')


STATEMENT = f"/statements/<int(max={statements.MAX_STATEMENT_ID}):statement_id>"
# a statement's reads take If-None-Match (flask-smorest's parameter) and tag what they send
HELD = ["IF_NONE_MATCH"]
TAGGED = {
    "ETag": {
        "description": (
            'The statement\'s SHA-256 as a weak tag, W/"…" (a release may render the same'
            " statement in other bytes); sent back as If-None-Match, it gets 304"
        ),
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": (
            "`private, no-cache`: the reader's own cache may keep a final statement, and"
            " asks with its ETag before using it again; no shared cache keeps it"
        ),
        "schema": {"type": "string"},
    },
}
ATTACHED = TAGGED | attached("coalition-statement-{number}-{partner_id}.{pdf|csv}")
NOT_MODIFIED = blp.alt_response(
    304, description="The client holds it already (If-None-Match)", headers=TAGGED
)
NO_STATEMENT = blp.alt_response(
    404, description="not_found: no statement with this id, or another partner's"
)


@blp.route(STATEMENT, parameters=HELD)
class Statement(MethodView):
    @blp.doc(operationId="getStatement")
    @blp.response(200, StatementOut, headers=TAGGED)
    @NOT_MODIFIED
    @NO_STATEMENT
    def get(self, statement_id):
        """One final statement as JSON (its hash is the ETag, as for the PDF and CSV)"""
        issued = database().run_reading(statements.get_statement, principal(), statement_id)
        if _held(issued):
            return _not_modified(issued)
        return _json(issued.served(), headers=_tag(issued))


@blp.route(f"{STATEMENT}/pdf", parameters=HELD)
class StatementPdf(MethodView):
    @blp.doc(operationId="getStatementPdf")
    @blp.response(200, DOWNLOAD, content_type="application/pdf", headers=ATTACHED)
    @NOT_MODIFIED
    @NO_STATEMENT
    def get(self, statement_id):
        """The statement as PDF (the same bytes on every download)"""
        issued = database().run_reading(statements.get_statement, principal(), statement_id)
        return _download(reports.render_pdf, issued, "pdf", "application/pdf")


@blp.route(f"{STATEMENT}/csv", parameters=HELD)
class StatementCsv(MethodView):
    @blp.doc(operationId="getStatementCsv")
    @blp.response(200, CSV_TEXT, content_type="text/csv", headers=ATTACHED)
    @NOT_MODIFIED
    @NO_STATEMENT
    def get(self, statement_id):
        """The statement as CSV"""
        issued = database().run_reading(statements.get_statement, principal(), statement_id)
        return _download(reports.render_statement_csv, issued, "csv", CSV)


def _download(render, issued: statements.Issued, extension: str, content_type: str) -> Response:
    """The statement rendered as an attachment, its hash as a weak ETag; a client that
    holds it (``If-None-Match``) gets 304 Not Modified, before anything is rendered.
    ``content_type`` is sent as given (a text/* ``mimetype`` would get a second charset
    from werkzeug)."""
    if _held(issued):
        return _not_modified(issued)
    document = issued.document()
    # the partner id is a slug, but one stored before ids were matched whole may end in
    # a newline, which the name does not keep (attachment)
    named = ("coalition-statement", document["number"], document["partner_id"])
    return Response(
        render(document),
        content_type=content_type,
        headers=_tag(issued) | attachment(*named, extension=extension),
    )


def _json(text: str, headers: dict | None = None) -> Response:
    """Statements, or a closed period's settlement, as JSON text made of their stored bytes
    (:meth:`statements.Issued.served`, :class:`settlement.Stored`), answered as written: the
    schema above documents them, it does not dump them again."""
    return Response(text, mimetype="application/json", headers=headers)


def _held(issued: statements.Issued) -> bool:
    """Whether the client already holds this statement (``If-None-Match`` names its hash)."""
    return request.if_none_match.contains_weak(issued.sha256)


def _not_modified(issued: statements.Issued) -> Response:
    return Response(status=304, headers=_tag(issued))


def _tag(issued: statements.Issued) -> dict:
    """The ETag of every read of a statement, its hash as a weak tag (RFC 9110), and
    leave for the reader's own cache, not a shared one, to keep it and ask again.

    A strong tag promises the same bytes, and a release may render the same statement
    in others (decisions.md); the hash names what the statement says, which never
    changes, and If-None-Match compares tags weakly, so a client holding it still gets 304.
    """
    return {
        "ETag": quote_etag(issued.sha256, weak=True),
        "Cache-Control": "private, no-cache",
    }
