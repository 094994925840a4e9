"""The HTTP API: flask-smorest blueprints, authentication and the error format.

Views are thin: declare their roles (checked before anything is parsed),
parse with a schema, run a use case in one unit of work, serialise with a
schema. Domain errors become the JSON body of SPEC §10 in
:meth:`Api.handle_domain_error`, so no view maps errors itself.
"""

import json
import logging
from decimal import Decimal
from typing import ClassVar, NamedTuple

import apispec
import flask_smorest
import marshmallow
import swagger_ui_bundle
from flask import current_app, g, request, send_from_directory
from gunicorn.http.errors import ParseException
from webargs.flaskparser import FlaskParser, abort
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, HTTPException, UnsupportedMediaType
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import BaseConverter, IntegerConverter

from coalition import auth, database_of, logs
from coalition.api.fields import MEMBER_ID_LENGTH, DecimalString, ExponentDecimal
from coalition.db import Unavailable
from coalition.domain.errors import CoalitionError
from coalition.services import catalog
from coalition.services.changes import SYSTEM, Actor, act_as

log = logging.getLogger(__name__)
unavailable_log = logs.Throttled(log)  # a database away answers every request 503


def read_number(literal: str) -> Decimal:
    """A JSON number with a fraction or an exponent, exactly; one with an exponent is marked,
    so that a decimal field refuses ``3.5E2`` as it refuses the string ``"3.5E2"``."""
    return (ExponentDecimal if "e" in literal.lower() else Decimal)(literal)


class DecimalJSONParser(FlaskParser):
    """Reads JSON numbers as Decimal and refuses NaN and Infinity.

    A body that is not declared as JSON (no Content-Type, text/plain) is refused
    with 415 rather than ignored: webargs would read no fields from it and
    answer "Missing data" for fields that are in it. A request without a body
    reads as no fields; one that declares a JSON body and sends none is
    malformed JSON (400), where webargs would read it as no body.

    Every body the parser cannot read is malformed JSON (400) in the one
    shape webargs gives a JSONDecodeError: also an object naming a key twice
    (which reader's value would count?), one nested deeper than the
    decoder recurses (RecursionError), an integer longer than int() reads
    (ValueError past 4,300 digits) and a number whose exponent Decimal cannot
    hold (``1e99999999999999999999``: InvalidOperation), which webargs would
    let through as a 500. A body the server cannot even read (a broken
    chunked encoding, as gunicorn reports it) is a bad request (400) too.
    """

    # a misspelt filter (?partner=aroma) is refused, not ignored to list everything
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": marshmallow.RAISE,
        "querystring": marshmallow.RAISE,
    }

    def load_querystring(self, req, schema):
        """The query, a parameter with an empty value (``?partner_id=``) left out, as
        forms, URL templates and many clients send a filter not chosen. Every filter
        takes one value: one given twice (``?type=earn&type=burn``) is refused, where
        webargs would read the first and list as if the second were not asked for."""
        chosen = MultiDict((key, value) for key, value in req.args.items(multi=True) if value)
        repeated = sorted(key for key, values in chosen.lists() if len(values) > 1)
        if repeated:
            abort(422, messages={"query": {key: ["Give one value only."] for key in repeated}})
        return self._makeproxy(chosen, schema)

    def _raw_load_json(self, req):
        data = _body(req)
        if not req.is_json:
            if data:
                raise UnsupportedMediaType("send the body as application/json")
            return super()._raw_load_json(req)

        def unreadable(reason):
            return json.JSONDecodeError(reason, data.decode(errors="replace"), 0)

        def reject(constant):
            raise unreadable(f"{constant} is not a number")

        if _blank(data):
            self._handle_invalid_json_error(unreadable("it is empty"), req)
        try:
            return json.loads(
                data, parse_float=read_number, parse_constant=reject, object_pairs_hook=_one_each
            )
        except _KeyTwice as error:
            raise unreadable(str(error)) from None
        except json.JSONDecodeError as error:
            if _blank(error.doc.encode()):  # a byte order mark (and spaces): no JSON text
                self._handle_invalid_json_error(unreadable("it is empty"), req)
            raise  # as it is: the ValueError clause below would wrap it again
        except ArithmeticError:  # Decimal cannot hold the exponent (InvalidOperation)
            raise unreadable("a number's exponent is too large to read") from None
        except UnicodeDecodeError as error:
            raise unreadable(f"it is not UTF-8, UTF-16 or UTF-32 text ({error.reason})") from None
        except ValueError:  # int() refuses a number of more digits than it reads
            raise unreadable("a number has more digits than can be read") from None
        except RecursionError:
            raise unreadable("it is nested too deeply to read") from None

    def _handle_invalid_json_error(self, error: json.JSONDecodeError, req, *args, **kwargs):
        """400 saying what is wrong with the body, and where, in place of werkzeug's
        sentence about what "the browser (or proxy)" sent. Every error arrives as a
        JSONDecodeError: :meth:`_raw_load_json` turns the others (text that is not
        UTF-8, a number Decimal cannot hold) into one."""
        at = f" at line {error.lineno}, column {error.colno}" if error.pos else ""
        abort(
            400,
            exc=error,
            message=f"the body cannot be read as JSON: {error.msg}{at}",
            messages={"json": ["Invalid JSON body."]},
        )


class _KeyTwice(Exception):
    """A JSON object naming one key twice."""


def _one_each(pairs: list[tuple]) -> dict:
    """A JSON object as a dict, refusing one that names a key twice: Python keeps the
    last value, another reader (a proxy, the partner's own log) may keep the first,
    and a posting must mean one thing (I-JSON, RFC 7493, asks for unique names)."""
    read = dict(pairs)
    if len(read) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _KeyTwice(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return read


def refuse_malformed_body() -> None:
    """For a view that reads no body (a close, a key's revocation): a JSON body it is sent
    is not read, but one that does not parse is malformed JSON (400), as anywhere (§10).
    Without a body, or with an empty one, any Content-Type will do."""
    if request.is_json and not _blank(_body(request)):
        Blueprint.ARGUMENTS_PARSER.load_json(request, None)


def _blank(body: bytes) -> bool:
    """Whether a body is empty but for JSON's whitespace: no JSON text at all (RFC 8259)."""
    return not body.strip(b" \t\r\n")


def _body(req) -> bytes:
    """The request's body; one whose transfer encoding is broken was never sent (400)."""
    try:
        return req.get_data(cache=True)
    except ParseException as error:
        raise BadRequest(f"the request body could not be read: {error}") from None


class PathSegment(BaseConverter):
    """The default URL converter, refusing NUL (which no database can store) and huge segments."""

    regex = "[^/\x00]{1,200}"


class AsciiInteger(IntegerConverter):
    """The ``int`` URL converter, in ASCII digits only. werkzeug's ``\\d`` also matches
    other scripts' digits, which ``int()`` reads: ``/statements/١`` would be statement 1."""

    regex = "[0-9]+"


class MemberId(BaseConverter):
    """A member id in a URL: any id a transaction may carry (SPEC §6: opaque), "/" included.

    A base64 phone hash such as ``Ab/Cd+Ef==`` is sent percent-encoded, but WSGI
    servers decode ``%2F`` before routing, so the id may span path segments; its
    rules keep ``//`` too (``merge_slashes=False``), an id may contain that.
    """

    regex = f"[^\x00]{{1,{MEMBER_ID_LENGTH}}}"
    part_isolating = False


def member_id_schema(converter: MemberId) -> dict:
    """The member id in the OpenAPI document: a string, percent-encoded by the client."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MEMBER_ID_LENGTH,
        "description": "Percent-encoded: it may contain any character, '/' included",
    }


class ErrorSchema(flask_smorest.error_handler.ErrorSchema):
    reason = marshmallow.fields.String(
        metadata={"description": "Machine-readable reason of a domain error"}
    )


class SharedError(NamedTuple):
    """An error answer that many operations give alike: described once, as a response
    component of the OpenAPI document (:func:`init_app`), which each operation that may
    give it names (a ``$ref``) rather than repeating it.

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
    "database_unavailable: the service cannot reach its database; ask again after"
    " Retry-After seconds (a transaction posted again answers as a replay if it was written)",
    {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
)
MALFORMED_JSON = SharedError(
    400,
    "MALFORMED_JSON",
    "The body cannot be read as JSON: malformed, empty, an object naming a key twice,"
    " a number that cannot be read, or a body that could not be received",
)
NOT_JSON = SharedError(415, "NOT_JSON", "A body not sent as application/json")
SHARED_ERRORS = (UNAUTHENTICATED, DATABASE_UNAVAILABLE, MALFORMED_JSON, NOT_JSON)


class Blueprint(flask_smorest.Blueprint):
    """A blueprint of ``/api/v1``. A view declares who may call it with :meth:`roles` and
    the other errors particular to it with :meth:`alt_response`, whose schema for an
    error is the error format of SPEC §10; those every operation may give are added to
    the document by :class:`SharedErrors`.
    """

    ARGUMENTS_PARSER = DecimalJSONParser()

    def roles(self, *names: str, refused: str | None = None):
        """Declare the roles that may call a view (SPEC §4); a view without it is open to
        every role. The 403 the other roles get is documented from the same declaration;
        ``refused`` describes it instead where the view refuses more keys than theirs (a
        key bound to a partner naming another).

        The declaration is only read, by :func:`_authenticate` before the view runs,
        so a key outside its role gets 403 whatever body it sends: flask-smorest
        parses the body inside the view, and its 422 would reveal the schema.
        """
        others = " or ".join(role for role in auth.ROLES if role not in names)
        documented = self.alt_response(
            403, description=f"forbidden: {refused or f'a {others} key'}"
        )

        def declare(view):
            view = documented(view)
            view.roles = names
            return view

        return declare

    def alt_response(self, status_code, response=None, *, schema=None, **kwargs):
        """flask-smorest's, an error's schema being :class:`ErrorSchema` unless given."""
        if response is None and schema is None and str(status_code)[:1] in ("4", "5"):
            schema = ErrorSchema
        return super().alt_response(status_code, response, schema=schema, **kwargs)


class SharedErrors(apispec.BasePlugin):
    """Completes each operation's responses in the OpenAPI document, at no cost per request.

    Every ``/api/v1`` operation may answer 401 (each request is authenticated before
    its view runs, :func:`_authenticate`) and 503 (each reads the database); one that
    reads a JSON body, 400 and 415. Each is named by reference to its one description
    under ``components/responses`` (:func:`init_app`). The responses are then listed by
    status, ``default`` last, as a reader looks for them: flask-smorest lists them in
    the order its decorators ran, from the view out.
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        if not (path or "").startswith("/api/v1/"):
            return
        for operation in (operations or {}).values():
            shared = [UNAUTHENTICATED, DATABASE_UNAVAILABLE]
            if "requestBody" in operation:
                shared += [MALFORMED_JSON, NOT_JSON]
            responses = operation.setdefault("responses", {})
            given = {str(status) for status in responses}
            responses |= {str(e.status): e.name for e in shared if str(e.status) not in given}
            operation["responses"] = dict(
                sorted(responses.items(), key=lambda item: (item[0] == "default", str(item[0])))
            )


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        super()._register_error_handlers()
        self._app.register_error_handler(CoalitionError, self.handle_domain_error)
        self._app.register_error_handler(Unavailable, self.handle_unavailable)
        self._app.register_error_handler(auth.Unauthenticated, unauthenticated)

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        message = payload.get("message", error.description if code != 422 else INVALID_FIELDS)
        return error_body(code, message, errors=payload.get("errors")), code, headers

    def handle_domain_error(self, error: CoalitionError):
        return domain_error_body(error), error.status

    def handle_unavailable(self, error: Unavailable):
        """503: the request is not at fault. What it committed before the connection
        broke stays written (a batch's earlier chunks, a commit that reached the
        server); posting it again answers those as replays."""
        unavailable_log.error("answered 503: %s", error)
        return unavailable(UNAVAILABLE)


INVALID_FIELDS = "Invalid fields"
UNAVAILABLE = (
    "the service cannot reach its database just now; try again: a transaction posted"
    " again with the same external_id answers as a replay if it was written"
)
RETRY_AFTER_SECONDS = 5


def unavailable(message: str, reason: str = "database_unavailable"):
    """A 503 answer: not the request's fault, to be asked again after ``Retry-After``."""
    return error_body(503, message, reason=reason), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


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


def domain_error_body(error: CoalitionError) -> dict:
    """A broken rule's body; where one field's value breaks it, that field is named
    under ``errors`` in the shape of the schema's own validation errors."""
    errors = None if error.field is None else {error.location: {error.field: [error.message]}}
    return error_body(error.status, error.message, reason=error.reason, errors=errors)


def database():
    return database_of(current_app)


def principal() -> auth.Principal:
    return g.principal


def authenticate(authorization: str | None, generation: int | None = None) -> auth.Principal:
    """The principal of an Authorization header: from this process's catalog when it is
    current (at ``generation``, read by the view's own statement, or else known from
    one read outside any transaction), else read in a transaction."""
    current = catalog.if_current(database(), generation)
    if current is not None:
        return auth.principal_in(current, authorization)
    with database().transaction() as session:
        return auth.authenticate(session, authorization)


def unauthenticated(error: auth.Unauthenticated):
    """The 401 answer, in the error format of SPEC §10."""
    body = error_body(401, str(error), reason="unauthenticated")
    return body, 401, {"WWW-Authenticate": "Bearer"}


def reads_generation(view):
    """Declare that a view reads the catalog's generation with its own statement and
    then calls :func:`authenticate_at`: a lookup partners make before every
    redemption saves the read authentication would make first. Only the key's
    form is checked before the view runs, so a request without one reads nothing;
    the view answers nothing before :func:`authenticate_at` has accepted the key.
    Its roles are checked then too: for a view without a body, whose parsing
    could reveal the schema to a key outside them (see :meth:`Blueprint.roles`).
    """
    view.reads_generation = True
    return view


def authenticate_at(generation: int) -> None:
    """Authenticate the request of a :func:`reads_generation` view, whose statement
    read the catalog at ``generation``."""
    _admit(authenticate(request.headers.get("Authorization"), generation))


def _view_method():
    """The matched view's method, looked up as MethodView dispatches (HEAD runs GET)."""
    view_class = getattr(current_app.view_functions.get(request.endpoint), "view_class", None)
    method = getattr(view_class, request.method.lower(), None)
    if method is None and request.method == "HEAD":
        method = getattr(view_class, "get", None)
    return method


def _admit(who: auth.Principal) -> None:
    who.require(*getattr(_view_method(), "roles", auth.ROLES))
    g.principal = who
    act_as(Actor("api", who.key_id))


def _act_as_no_one(_error) -> None:
    """A thread serves one request after another: what it changes outside a request is
    no key's."""
    act_as(SYSTEM)


def _authenticate() -> None:
    if not request.path.startswith("/api/v1/"):
        return
    authorization = request.headers.get("Authorization")
    if getattr(_view_method(), "reads_generation", False):
        auth.bearer_key(authorization)
    else:
        _admit(authenticate(authorization))


def init_app(app) -> Api:
    from coalition.api import (
        changes,
        keys,
        kpis,
        members,
        partners,
        rates,
        settings,
        settlements,
        transactions,
    )

    app.config.setdefault("API_TITLE", "Coalition")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "/docs")
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", "/api/swagger-ui/")
    api = Api(
        app,
        spec_kwargs={"security": [{"bearer": []}], "extra_plugins": [SharedErrors()]},
    )
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for error in SHARED_ERRORS:
        api.spec.components.response(
            error.name,
            {
                "description": error.description,
                "content": {"application/json": {"schema": ErrorSchema}},
                **({"headers": error.headers} if error.headers else {}),
            },
        )
    api.register_field(DecimalString, "string", "decimal")
    app.url_map.converters["member"] = MemberId
    api.register_converter(MemberId, member_id_schema)
    for module in (
        keys,
        settings,
        partners,
        rates,
        transactions,
        members,
        settlements,
        kpis,
        changes,
    ):
        api.register_blueprint(module.blp)
    app.before_request(_authenticate)
    app.teardown_request(_act_as_no_one)
    app.add_url_rule("/api/swagger-ui/<path:filename>", "swagger_ui_assets", _swagger_ui_asset)
    return api


def _swagger_ui_asset(filename):
    """Swagger UI's scripts, served from the swagger-ui-bundle package: no CDN needed."""
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)
