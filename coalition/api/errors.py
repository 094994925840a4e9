"""The error format of SPEC §10, and the errors every operation documents alike."""

from typing import NamedTuple

import flask_smorest
import marshmallow
from werkzeug import exceptions
from werkzeug.http import HTTP_STATUS_CODES

from coalition import MAX_BODY_BYTES, auth
from coalition.db import Busy, Damaged, IndexDamaged, SchemaNotCurrent, TakesNoWrites, Unavailable
from coalition.domain.errors import (
    CoalitionError,
    Conflict,
    Forbidden,
    MissingFx,
    NotFound,
    fields_text,
)
from coalition.domain.settlement import Unbalanced
from coalition.services.batches import NotWritten

#: The HTTP status of each domain error that is not a 422, by class: a subclass answers
#: as its nearest listed ancestor (:func:`status_of`).
STATUSES = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    MissingFx: 409,
    Unbalanced: 500,
    NotWritten: 500,
}


#: What is wrong with one field, or with a body that cannot be read: one message or more.
MESSAGES = {"type": "array", "items": {"type": "string"}}


class ErrorSchema(flask_smorest.error_handler.ErrorSchema):
    """SPEC §10's error: ``code``, ``status`` and ``message`` in every one (``required``
    tells a client's generated code so; nothing loads it)."""

    code = marshmallow.fields.Integer(required=True, metadata={"description": "The HTTP status"})
    status = marshmallow.fields.String(
        required=True, metadata={"description": "The HTTP status's name"}
    )
    message = marshmallow.fields.String(
        required=True, metadata={"description": "What is wrong, for a person to read"}
    )
    reason = marshmallow.fields.String(
        metadata={"description": "Machine-readable reason of a domain error"}
    )
    errors = marshmallow.fields.Dict(
        metadata={
            "description": "The fields at fault, by where they were sent (`json` the body,"
            " `query` the query string, `path` the URL's segments), then by name, each with"
            ' what is wrong: `{"json": {"amount": ["required for this type"]}}`; `_schema`'
            " is the body as a whole. A body that cannot be read as JSON has its one"
            ' message under `json` itself: `{"json": ["Invalid JSON body."]}`',
            "additionalProperties": {
                "oneOf": [
                    {"type": "object", "additionalProperties": MESSAGES},
                    MESSAGES,
                ]
            },
        }
    )


class SharedError(NamedTuple):
    """An error answer that many operations give alike: described once, as a response
    component of the OpenAPI document (:func:`coalition.api.init_app`), which each
    operation that may give it names (a ``$ref``) rather than repeating it.

    Attributes:
        status: the HTTP status.
        name: the component's name under ``components/responses``.
        description: what the answer means, naming its ``reason`` where it has one.
        headers: the answer's headers worth documenting, as OpenAPI header objects.
    """

    status: int
    name: str
    description: str
    headers: dict | None = None


UNAUTHENTICATED = SharedError(
    401,
    "UNAUTHENTICATED",
    "unauthenticated: no bearer key, or one that is unknown or revoked (SPEC §4)",
    {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
)
DATABASE_UNAVAILABLE = SharedError(
    503,
    "DATABASE_UNAVAILABLE",
    "database_unavailable: the service cannot reach its database, its database takes no"
    " writes (read-only, or its disk full), its SQLite file is damaged where the request"
    " read, or it waited too long for another's lock on it"
    " (a close, say); ask again after"
    " Retry-After seconds (a transaction posted again answers as a replay if it was written);"
    " schema_not_current: the database does not have this release's schema, until its"
    " operator runs `coalition db upgrade`",
    {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
)
MALFORMED_JSON = SharedError(
    400,
    "MALFORMED_JSON",
    "The body cannot be read as JSON: malformed, empty, an object naming a key twice,"
    " a number that cannot be read, or a body that could not be received",
)
NOT_JSON = SharedError(
    415,
    "NOT_JSON",
    "A body not sent as application/json, or sent in a Content-Encoding or in a"
    " Transfer-Encoding other than chunked",
)
ANOTHER_PARTNERS_DATA = SharedError(
    403,
    "ANOTHER_PARTNERS_DATA",
    "forbidden: a key bound to a partner filtering on another partner_id",
)
SHARED_ERRORS = (
    UNAUTHENTICATED,
    DATABASE_UNAVAILABLE,
    MALFORMED_JSON,
    NOT_JSON,
    ANOTHER_PARTNERS_DATA,
)


def invalid_fields(errors: dict) -> str:
    """A field validation's message, naming each field and what is wrong with it, as a
    till that logs only ``message`` needs (``Invalid fields: amount: must be a string
    such as "350.00"``); ``errors`` says the same by where each was sent, json, query
    or path."""
    said = "; ".join(fields_text(by_field) for by_field in errors.values())
    return f"Invalid fields: {said}" if said else "Invalid fields"


def in_house_words(error: exceptions.HTTPException, method: str, path: str) -> str | None:
    """What werkzeug says of a request no view took, told in the house's words with what
    was asked and what to ask instead: a path no route has (werkzeug: "… please check
    your spelling and try again."), a method its route does not take ("The method is not
    allowed for the requested URL."), a body over the limit ("… exceeds the capacity
    limit.", which left a till's developer to find how large a batch may be). None for
    any other error, and for one raised with words of its own."""
    if error.description != type(error).description:
        return None
    if isinstance(error, exceptions.MethodNotAllowed):
        return f"{path} does not take {method}: it takes {', '.join(sorted(error.valid_methods))}"
    if isinstance(error, exceptions.NotFound):
        return f"no such path: {path} (the API's paths are listed in /api/openapi.json)"
    if isinstance(error, exceptions.RequestEntityTooLarge):
        return (
            f"the body is over {MAX_BODY_BYTES // 2**20} MiB, the most one request may carry:"
            " send the transactions in several batches"
        )
    return None


REPLAYED = (
    "a transaction posted again with the same external_id answers as a replay if it was written"
)
AGAIN = f"try again: {REPLAYED}"
UNAVAILABLE = f"the service cannot reach its database just now; {AGAIN}"
TAKES_NO_WRITES = (
    "the service's database takes no writes just now (it is read-only, a standby after a"
    f" failover say, or its disk is full); {AGAIN}"
)
MENDED = f"(asked sooner, the request reads the same damage): {REPLAYED}"
DAMAGED = (
    "the service's database is damaged and this request read a damaged part of it; its"
    f" operator restores it from a backup; try again once it is restored {MENDED}"
)
DAMAGED_INDEX = (
    "an index of the service's database is damaged and this request read it; its operator"
    f" builds it again from the ledger, losing nothing; try again once it is built {MENDED}"
)
BUSY = (
    "the service waited too long for other work on the database (a period being closed,"
    f" say) to let go of what this request needs; {AGAIN}"
)
RETRY_AFTER_SECONDS = 5


def unavailable(message: str, reason: str = "database_unavailable"):
    """A 503 answer: not the request's fault, to be asked again after ``Retry-After``."""
    return error_body(503, message, reason=reason), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def database_away(error: Unavailable):
    """The 503 of a request, or of a batch's item, that the database failed, in the words
    of what failed: its tables gone (``schema_not_current``, as /readyz says until the
    schema is made), its writes refused, the database damaged where the request read, a
    lock waited for past its limit (behind a close, say), or the database itself away."""
    if isinstance(error, SchemaNotCurrent):
        return unavailable(error.why, "schema_not_current")
    if isinstance(error, TakesNoWrites):
        return unavailable(TAKES_NO_WRITES)
    if isinstance(error, Damaged):
        return unavailable(DAMAGED_INDEX if isinstance(error, IndexDamaged) else DAMAGED)
    return unavailable(BUSY if isinstance(error, Busy) else UNAVAILABLE)


def error_body(code: int, message: str, *, reason: str | None = None, errors=None) -> dict:
    """The JSON error of SPEC §10, for a whole request or one item of a batch.

    ``code``, ``status`` and ``message``, plus ``reason`` for a domain error and
    ``errors`` for field validation. Built here alone, so that a batch item's
    error is the body the item would get posted alone.
    """
    body = {
        "code": code,
        "status": HTTP_STATUS_CODES.get(code, "Unknown Error"),
        "message": message,
    }
    if reason is not None:
        body["reason"] = reason
    if errors is not None:
        body["errors"] = errors
    return body


def status_of(error: CoalitionError) -> int:
    """The status a broken rule answers with: 422 (a well-formed request that breaks a
    rule) unless its class or an ancestor says otherwise in :data:`STATUSES`."""
    return next((STATUSES[kind] for kind in type(error).__mro__ if kind in STATUSES), 422)


def domain_error_body(error: CoalitionError) -> dict:
    """A broken rule's body; the fields whose values break it, if any, are named under
    ``errors`` in the shape of the schema's own validation errors."""
    problems = error.by_field()
    errors = {error.location: {f: [why] for f, why in problems.items()}} if problems else None
    return error_body(status_of(error), error.message, reason=error.reason, errors=errors)


def unauthenticated(error: auth.Unauthenticated):
    """The 401 answer, in the error format of SPEC §10."""
    body = error_body(401, str(error), reason="unauthenticated")
    return body, 401, {"WWW-Authenticate": "Bearer"}
