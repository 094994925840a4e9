"""Points transactions (SPEC §6): post one, post a batch, read, list, export."""

import tempfile
from datetime import UTC, datetime

from flask import Response, request, stream_with_context
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates, validates_schema
from werkzeug.wsgi import wrap_file

import reports
from coalition import auth
from coalition.api import Blueprint, database, log, unavailable_log
from coalition.api.answers import CSV, CSV_TEXT, Answer, attached, attachment
from coalition.api.authentication import principal
from coalition.api.errors import (
    ANOTHER_PARTNERS_DATA,
    ErrorSchema,
    database_away,
    domain_error_body,
    error_body,
    invalid_fields,
    unauthenticated,
)
from coalition.api.fields import (
    EXTERNAL_ID_LENGTH,
    MEMBER_ID_LENGTH,
    PERIOD_ID,
    PERIOD_ID_LENGTH,
    Amount,
    Body,
    Currency,
    DecimalOut,
    Instant,
    Legible,
    LotAvailableAt,
    LotExpiresAt,
    NullLeftOut,
    OneOf,
    OneOfOut,
    PartnerId,
    Points,
    Text,
)
from coalition.api.pagination import PageArgs, Window, paging
from coalition.db import Unavailable
from coalition.domain import lots
from coalition.domain.errors import CoalitionError
from coalition.services import batches, expiry, exports, ledger, pages, queries

blp = Blueprint(
    "transactions", __name__, url_prefix="/api/v1/transactions", description="Points transactions"
)

#: Transactions an export reads at a time, each page in its own read.
EXPORT_PAGE = 1000
#: Bytes of an export kept in memory, for a client that must be sent its length, before
#: the rest is written to a temporary file.
SPOOLED_IN_MEMORY = 8 * 2**20


def _fields_by_type() -> str:
    """:data:`lots.TYPE_FIELDS` written out for the OpenAPI document: the schema alone says
    only what every type needs (external_id, type, occurred_at)."""
    rules = "; ".join(
        f"{kind} needs {', '.join(sorted(required))} and refuses {', '.join(sorted(forbidden))}"
        for kind, (required, forbidden) in lots.TYPE_FIELDS.items()
    )
    return (
        f"Besides external_id, type and occurred_at: {rules}."
        " An earn_reversal gives amount or points, not both."
    )


class TransactionIn(NullLeftOut):
    external_id = Text(
        max_length=EXTERNAL_ID_LENGTH,
        blank=False,
        required=True,
        metadata={
            "description": "The partner's own id of the transaction, unique per partner;"
            " not of the form expiry-<lot>-<n>, which the coalition's expiry transactions use"
        },
    )
    type = fields.String(
        required=True,
        validate=validate.OneOf(
            lots.POSTABLE, error="must be one of {choices} (expiry is system-only)"
        ),
    )
    partner_id = fields.String(validate=PartnerId)
    member_id = Text(max_length=MEMBER_ID_LENGTH, blank=False)
    occurred_at = Instant(required=True)
    amount = Amount()
    currency = Currency()
    category = Legible(max_length=64)
    points = Points()
    reason = Legible(lines=True)
    original_external_id = Text(max_length=EXTERNAL_ID_LENGTH, blank=False)

    @validates("external_id")
    def not_an_expiry_id(self, external_id: str, **kwargs):
        """The expiry job writes its transactions under the issuer with ids of one
        form; a posting of that form would take an id the job will need (and a
        close, which expires first, would fail on it) or answer as the job's."""
        if expiry.EXTERNAL_ID.fullmatch(external_id):
            raise ValidationError(
                "expiry-<lot>-<n> is the form of the coalition's own expiry transactions; "
                "choose another external_id"
            )

    @validates("member_id")
    def not_a_path_step(self, member_id: str, **kwargs):
        """A path segment "." or ".." is a step in the path, which clients and browsers
        take before sending: such a member's balance and history could not be asked for."""
        if member_id in (".", ".."):
            raise ValidationError(
                f"{member_id!r} cannot be a member id: /members/{member_id}/balance is read"
                " as a step in the path"
            )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def fields_of_type(self, data, original, **kwargs):
        """Checked beside the fields' own rules, so that one answer names every field to
        fix; on the fields as sent, so that a field refused for its value is not also
        called missing (a null is left out: :meth:`null_is_left_out`)."""
        if data.get("type") not in lots.TYPE_FIELDS:
            return
        required, forbidden = lots.TYPE_FIELDS[data["type"]]
        given = {name for name, value in original.items() if value is not None}
        errors = {name: ["required for this type"] for name in required if name not in given}
        errors |= {name: ["not allowed for this type"] for name in forbidden if name in given}
        if data["type"] == "earn_reversal" and ("amount" in given) == ("points" in given):
            errors["amount"] = ["give exactly one of amount or points"]
        if errors:
            raise ValidationError(errors)


class AllocationOut(Answer):
    lot_id = fields.Integer()
    issuer_id = fields.String()
    points = fields.Integer(
        metadata={
            "description": "The points moved, unsigned: out of the lot for a burn, a return"
            " or an expiry, back into it for a burn reversal (the transaction's points are"
            " signed)"
        }
    )


# One instance for every request, batch item and imported row: building a
# schema (which webargs does per request when given the class) costs more
# than loading an item.
TRANSACTION_IN = TransactionIn()


class TransactionOut(Answer):
    id = fields.Integer()
    external_id = fields.String()
    type = OneOfOut(
        lots.TYPES, "; expiry only as the expiry job writes it, when a lot's points expire"
    )
    partner_id = fields.String()
    member_id = fields.String()
    occurred_at = fields.AwareDateTime()
    recorded_at = fields.AwareDateTime()
    amount = DecimalOut(allow_none=True)
    currency = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    points = fields.Integer(metadata={"description": "Signed change to the member's balance"})
    shortfall_points = fields.Integer(
        metadata={
            "description": "Of an earn_reversal: the points its original lot no longer held,"
            " borne by the issuer; 0 otherwise"
        }
    )
    original_id = fields.Integer(
        allow_none=True,
        metadata={"description": "Of a reversal: the id of the transaction it reverses"},
    )
    rate_ids = fields.List(
        fields.Integer(),
        metadata={
            "description": "The rate versions it was valued by (GET /rates), as they stood"
            " when it was posted: an earn's earn, promo and threshold rates and its issuer's"
            " fee rate, a bonus's fee rate, a burn's redemption rate; a reversal has its"
            " original's, but for the fee or redemption rate then in force at the original's"
            " occurred_at, which a rate added late for that date may have replaced"
        },
    )
    period_id = fields.String(
        metadata={
            "description": "The settlement period it settles in: its occurred_at's, or the"
            " earliest open one when that is closed (late)"
        }
    )
    late = fields.Boolean(
        metadata={
            "description": "Its occurred_at fell in a period already closed when it was"
            " posted: it settles in period_id, a statement of which lists it as a late item"
            " (one posted in time stays not late after its period closes)"
        }
    )
    key_id = fields.String(
        allow_none=True,
        metadata={
            "description": "The API key that posted it; null for one posted by"
            " `coalition import`, the expiry job or `coalition demo`, or before the"
            " release that names keys (migration 0019)"
        },
    )
    allocations = fields.List(
        fields.Nested(AllocationOut),
        metadata={
            "description": "The lots a burn, a return or an expiry took points from, or a"
            " burn reversal put them back into; empty for an earn or a bonus"
        },
    )
    lot_id = fields.Integer(
        allow_none=True, metadata={"description": "Of an earn or a bonus: the lot it created"}
    )
    available_at = LotAvailableAt()
    expires_at = LotExpiresAt()


class BatchIn(Body):
    # Any JSON value per item: each is validated alone (validated), so an item that is
    # not an object is its own 422, as it would be posted alone, not the whole batch's.
    transactions = fields.List(
        fields.Raw(allow_none=True, metadata={"description": "A transaction, as posted alone"}),
        required=True,
        validate=validate.Length(
            1, 1000, error="must hold 1 to 1000 transactions: send more in several batches"
        ),
        error_messages={"invalid": "must be a JSON array of transactions"},
    )


class BatchResult(Answer):
    may_omit = ("transaction", "error")

    index = fields.Integer()
    status = fields.Integer(
        metadata={
            "description": "The item's status as if posted alone: 201, 200 (a replay), 4xx;"
            " 503 for an item the database went away before, and 401 for one the batch's key"
            " was revoked before, once earlier items were written"
        }
    )
    transaction = fields.Nested(
        TransactionOut, metadata={"description": "With a status of 200 or 201; else absent"}
    )
    error = fields.Nested(
        ErrorSchema,
        metadata={"description": "With any other status: the item's error as if posted alone"},
    )


class BatchOut(Answer):
    results = fields.List(fields.Nested(BatchResult))


class TransactionFilters(Window):
    partner_id = fields.String(validate=PartnerId)
    external_id = Text(
        max_length=EXTERNAL_ID_LENGTH,
        metadata={
            "description": "The partner's own id of a transaction: with partner_id, or a key"
            " bound to a partner (ids are unique per partner)"
        },
    )
    member_id = Text(max_length=MEMBER_ID_LENGTH)
    type = fields.String(validate=OneOf(lots.TYPES))
    period_id = Text(max_length=PERIOD_ID_LENGTH, metadata={"description": PERIOD_ID})


class TransactionQuery(TransactionFilters, PageArgs):
    """The filters of a listing, a page at a time."""


class TransactionPage(Answer):
    items = fields.List(fields.Nested(TransactionOut))
    next_cursor = fields.String(allow_none=True)


def present(posting: ledger.Posting) -> tuple[dict, int]:
    """A posting as the API answers it: 201 when created, 200 for a replay."""
    return queries.posting_view(posting), 201 if posting.created else 200


def post_one(request: dict) -> tuple[dict, int]:
    """Post in its own unit of work; once more on a new connection if this one broke
    (a restart, a failover): what the first committed then answers as a replay."""
    now = datetime.now(UTC)
    return present(database().run_repeatable(ledger.post, principal(), request, now))


@blp.route("")
class Transactions(MethodView):
    @blp.doc(operationId="postTransaction")
    @blp.roles(
        "operator", "partner", refused="a finance key, or a partner key naming another partner"
    )
    @blp.arguments(TRANSACTION_IN, description=_fields_by_type())
    @blp.response(201, TransactionOut)
    @blp.alt_response(200, schema=TransactionOut, description="A replay: the original transaction")
    @blp.alt_response(
        409,
        description="idempotency_conflict: this external_id was posted with another body",
    )
    @blp.alt_response(
        422,
        description="fields that fail validation, each named under errors (with reason"
        " invalid where a rule beyond the field's form refuses one, such as more decimals"
        " than the currency has);"
        " insufficient_points: a burn of more than the member's available points;"
        " no_rate: no rate in force for the posting; zero_points: an earn worth 0 points;"
        " partner_suspended: the partner may not post now; unknown_partner: partner_id"
        " names no partner; missing_partner: an operator key must give partner_id;"
        " wrong_currency: not the partner's currency; too_old: occurred_at before the"
        " backdating limit; occurred_in_future: occurred_at after now + 5 minutes;"
        " unknown_original: original_external_id names no transaction this reversal can"
        " reverse; wrong_member: the original is another member's; before_original:"
        " dated before its original; over_reversal: more than the original can give back",
    )
    def post(self, request):
        """Post a transaction"""
        return post_one(request)

    @blp.doc(operationId="listTransactions")
    @blp.arguments(TransactionQuery, location="query")
    @blp.response(200, TransactionPage)
    @blp.alt_response(403, ANOTHER_PARTNERS_DATA.name)
    def get(self, query):
        """List transactions, oldest or newest first, with a cursor"""
        page = paging(query)
        return database().run_reading(queries.list_transactions, principal(), query, page)


@blp.route("/csv")
class TransactionsCsv(MethodView):
    @blp.doc(operationId="getTransactionsCsv")
    @blp.arguments(TransactionFilters, location="query")
    @blp.response(
        200,
        CSV_TEXT,
        content_type="text/csv",
        headers=attached("coalition-transactions[-{period_id}][-{partner_id}].csv"),
    )
    @blp.alt_response(403, ANOTHER_PARTNERS_DATA.name)
    def get(self, filters):
        """The listing's transactions as CSV, a row per points movement, in posting order

        A row per lot a transaction moved points into or out of: an earn's or a
        bonus's own lot, each lot a burn took from, a reversal put back to or an
        expiry emptied; signed as the member's balance sees them. Over HTTP/1.1 the
        file is sent as it is read, a page at a time: one the database leaves midway
        ends without the last chunk, which clients report as an incomplete download.
        Over HTTP/1.0 it is written whole first and sent with its Content-Length.
        """
        who = principal()
        rows = exports.movement_pages(database(), who, filters, EXPORT_PAGE)
        chunks = reports.render_transactions_csv(rows)
        named = attachment("coalition-transactions", *_narrowed_to(filters, who), extension="csv")
        if request.environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
            return _whole(chunks, named)
        return Response(
            stream_with_context(_logged_if_cut(chunks)), content_type=CSV, headers=named
        )


def _logged_if_cut(chunks):
    """The file's chunks as they are sent; one the database cuts short is logged, each time
    (never folded: a partner's file is missing rows), the answer having begun."""
    try:
        yield from chunks
    except Unavailable as error:
        log.error("stopped a transactions export short: %s", error)
        raise


def _whole(chunks, headers: dict) -> Response:
    """The file written whole before its first byte is sent, and sent with its length.

    Over HTTP/1.0 a body without a length ends when its connection closes, so one cut
    short could not be told from a whole one; HTTP/1.0 has no chunks to leave unfinished.
    Written to a temporary file past :data:`SPOOLED_IN_MEMORY`; a database that goes away
    meanwhile is a 503, as for any request, before anything is sent.
    """
    # closed by the response, once sent (wrap_file), or here if it cannot be written
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOLED_IN_MEMORY)  # noqa: SIM115
    try:
        for chunk in chunks:
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    length = spool.tell()
    spool.seek(0)
    return Response(
        wrap_file(request.environ, spool),
        content_type=CSV,
        headers=headers | {"Content-Length": str(length)},
        direct_passthrough=True,
    )


def _narrowed_to(filters: dict, who) -> list[str]:
    """The period and the partner an export is narrowed to, which name its file."""
    return [
        part
        for part in (filters.get("period_id"), filters.get("partner_id") or who.own_partner())
        if part
    ]


@blp.route("/batch")
class Batch(MethodView):
    @blp.doc(operationId="postTransactionBatch")
    @blp.roles(
        "operator", "partner", refused="a finance key (an item's own refusal is in its result)"
    )
    @blp.arguments(BatchIn)
    @blp.response(200, BatchOut)
    def post(self, body):
        """Post up to 1000 transactions, each as if posted alone, in order"""
        who = principal()
        requests = [validated(item) for item in body["transactions"]]
        outcomes = batches.post_many(database(), who, requests)
        if unposted := [outcome for outcome in outcomes if isinstance(outcome, Unavailable)]:
            unavailable_log.error(
                "answered 503 to %d items of a batch: %s", len(unposted), unposted[0]
            )
        return {"results": [_result(index, outcome) for index, outcome in enumerate(outcomes)]}


def validated(item) -> dict | ValidationError:
    """An item of a batch (any JSON value) or a row of an import, loaded, or why it cannot be."""
    try:
        return TRANSACTION_IN.load(item)
    except ValidationError as error:
        return error


def _result(index: int, outcome) -> dict:
    """An item's result; a failed item's error is the body it would get posted alone."""
    if isinstance(outcome, ValidationError):
        errors = {"json": outcome.messages}
        error = error_body(422, invalid_fields(errors), errors=errors)
    elif isinstance(outcome, CoalitionError):
        error = domain_error_body(outcome)
    elif isinstance(outcome, Unavailable):  # the items after those written, as posted alone
        error, _, _ = database_away(outcome)  # the body of a request the database failed
    elif isinstance(outcome, auth.Unauthenticated):  # the key revoked while the batch ran
        error, _, _ = unauthenticated(outcome)
    else:
        view, status = present(outcome)
        return {"index": index, "status": status, "transaction": view}
    return {"index": index, "status": error["code"], "error": error}


@blp.route(f"/<int(max={pages.MAX_ID}):transaction_id>")  # BIGINT
class Transaction(MethodView):
    @blp.doc(operationId="getTransaction")
    @blp.response(200, TransactionOut)
    @blp.alt_response(
        404, description="not_found: no transaction with this id, or another partner's"
    )
    def get(self, transaction_id):
        """Read a transaction"""
        return database().run_reading(queries.get_transaction, principal(), transaction_id)
