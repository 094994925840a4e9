"""The HTTP API: flask-smorest blueprints, wired to the app.

Views are thin: declare their roles (checked before anything is parsed),
parse with a schema, run a use case in one unit of work, serialise with a
schema. Domain errors become the JSON body of SPEC §10 in
:meth:`Api.handle_domain_error`, so no view maps errors itself. The error
format is :mod:`coalition.api.errors`, the reading of bodies and queries
:mod:`coalition.api.parsing`, what a URL's segments may hold
:mod:`coalition.api.converters`, that an answer holds each of its fields
:mod:`coalition.api.answers`, who is asking :mod:`coalition.api.authentication`.
"""

import logging

import apispec
import flask_smorest
import swagger_ui_bundle
from flask import current_app, request, send_from_directory
from werkzeug.exceptions import HTTPException, NotFound

from coalition import auth, database_of, logs
from coalition.api import authentication
from coalition.api.answers import AnswerFields, null_alone
from coalition.api.converters import MemberId, member_id_schema
from coalition.api.errors import (
    DATABASE_UNAVAILABLE,
    MALFORMED_JSON,
    NOT_JSON,
    SHARED_ERRORS,
    UNAUTHENTICATED,
    ErrorSchema,
    database_away,
    domain_error_body,
    error_body,
    in_house_words,
    invalid_fields,
    unauthenticated,
)
from coalition.api.fields import DecimalOut, DecimalString, InstantOut
from coalition.api.parsing import (
    PARSER,
    read_to_the_end,
    refuse_a_url_not_utf8,
)
from coalition.db import Unavailable
from coalition.domain.errors import CoalitionError

log = logging.getLogger(__name__)
unavailable_log = logs.Throttled(log)  # a database away answers every request 503


class Blueprint(flask_smorest.Blueprint):
    """A blueprint of ``/api/v1``. A view declares who may call it with :meth:`roles` and
    the other errors particular to it with :meth:`alt_response`, whose schema for an
    error is the error format of SPEC §10; those every operation may give are added to
    the document by :class:`SharedErrors`.
    """

    ARGUMENTS_PARSER = PARSER

    def roles(self, *names: str, refused: str | None = None):
        """Declare the roles that may call a view (SPEC §4); a view without it is open to
        every role. The 403 the other roles get is documented from the same declaration;
        ``refused`` describes it instead where the view refuses more keys than theirs (a
        key bound to a partner naming another).

        The declaration is only read, by
        :func:`~coalition.api.authentication.admit_request` before the view runs, so a
        key outside its role gets 403 whatever body it sends: flask-smorest parses the
        body inside the view, and its 422 would reveal the schema.
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

    def reads_every_partner(self, why: str):
        """Declare a view whose answer names every partner (a settlement, keys, changes):
        operator and finance keys may call it, but not one bound to a partner, which gets
        403 saying ``why``, checked with the roles before anything is parsed."""
        declared = self.roles(
            "operator",
            "finance",
            refused=f"a partner key, or a finance key bound to a partner ({why})",
        )

        def declare(view):
            view = declared(view)
            view.unbound_only = why
            return view

        return declare

    def arguments(self, schema, *, location="json", **kwargs):
        """flask-smorest's. A view that reads its query with ``schema`` is marked so: the
        query of one that reads none is refused whole, after its key is admitted
        (:func:`~coalition.api.authentication.admit_request`), so that no parameter sent
        to any operation goes unread."""
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "query":
            return parse

        def declare(view):
            view = parse(view)
            view.reads_query = True
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
    its view runs, :mod:`~coalition.api.authentication`), 503 (each reads the database)
    and 422 (each refuses a query parameter it does not take, one that takes none too);
    one that reads a JSON body, 400 and 415. Each is named by reference to its one
    description under ``components/responses`` (:func:`init_app`; the 422
    flask-smorest's, as for a schema's fields). The responses are then listed by
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
            if "422" not in given:
                responses["422"] = "UNPROCESSABLE_ENTITY"
            operation["responses"] = dict(
                sorted(responses.items(), key=lambda item: (item[0] == "default", str(item[0])))
            )


class QueryParameters(apispec.BasePlugin):
    """Documents each query parameter as a query sends it: a value, empty, or left out.

    A filter left out reads as ``None`` (its ``load_default``), which marshmallow takes to
    allow null, so apispec would call the parameter ``nullable``, give it a ``default`` of
    null and add null to an enum's values; no query string can carry a null, and a client
    generated from such a document builds three enum classes for one filter (``role``:
    ``ListKeysRoleType1 | ListKeysRoleType2Type1 | ListKeysRoleType3Type1``).

    An empty value is the parameter left out
    (:meth:`~coalition.api.parsing.DecimalJSONParser.load_querystring`), which
    ``allowEmptyValue`` says: without it, a document's pattern (``partner_id``'s slug) or
    minimum length told a client, and schemathesis's negative checks, that the service
    refuses ``?partner_id=``.
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query" or "schema" not in parameter:
                    continue
                if not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
                schema = parameter["schema"]
                if not schema.pop("nullable", False):
                    continue
                if "default" in schema and schema["default"] is None:
                    del schema["default"]
                if "enum" in schema:
                    schema["enum"] = [value for value in schema["enum"] if value is not None]


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        super()._register_error_handlers()
        self._app.register_error_handler(CoalitionError, self.handle_domain_error)
        self._app.register_error_handler(Unavailable, self.handle_unavailable)
        self._app.register_error_handler(auth.Unauthenticated, unauthenticated)

    def handle_http_exception(self, error: HTTPException):
        """In the service's error format, keeping the headers the error carries besides its
        body's type (a 405's ``Allow``)."""
        payload, code, headers = super().handle_http_exception(error)
        if "message" in payload:
            message = payload["message"]
        elif code == 422:
            message = invalid_fields(payload.get("errors") or {})
        else:
            message = in_house_words(error, request.method, request.path) or error.description
        carried = {name: value for name, value in error.get_headers() if name != "Content-Type"}
        body = error_body(code, message, errors=payload.get("errors"))
        return body, code, {**carried, **(headers or {})}

    def handle_domain_error(self, error: CoalitionError):
        body = domain_error_body(error)
        return body, body["code"]

    def handle_unavailable(self, error: Unavailable):
        """503: the request is not at fault. A commit that reached the server before
        the connection broke stays written; posting it again answers it as a replay.
        (A batch that wrote items first answers 200 instead, those items 201 and the
        rest 503.)"""
        unavailable_log.error("answered 503: %s", error)
        return database_away(error)


def database():
    return database_of(current_app)


API_DESCRIPTION = (
    "Coalition's settlement service: partners post points transactions, finance teams read"
    " statements, the operator sets rates and closes periods. Every `/api/v1` request carries"
    " `Authorization: Bearer <key>`. Points are integers, money is a decimal string, instants"
    " are RFC 3339 with an offset. A query parameter sent empty (`?kind=&partner_id=`, as a"
    " form sends a filter not chosen) is the parameter left out; one the operation does not take"
    " is 422 naming those it takes, also where it takes none (a member's balance is always as of"
    " now: `?at=` is refused, not ignored). Every"
    " error is JSON `{code, status, message}`, with `reason` for a domain error and `errors`"
    " for invalid fields. Two health checks, asked without a key, are for load balancers and"
    " orchestrators and are left out of this document: `/healthz` answers 200 while the process"
    ' answers; `/readyz` 200 `{"status": "ready", "writes": true}` while it can serve'
    " requests (`writes` false while a PostgreSQL database takes reads only; a SQLite file's"
    " writes refused are answered 503 alone), else 503 in the error format"
    " with `Retry-After`. A client need not ask either before a request: it is answered 503 with"
    " `Retry-After` alike, and asks again then."
)


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
        spec_kwargs={
            "info": {"description": API_DESCRIPTION},
            "security": [{"bearer": []}],
            "extra_plugins": [SharedErrors(), QueryParameters(), AnswerFields()],
        },
    )
    _describe_shared_parts(api)
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
    app.before_request(refuse_a_url_not_utf8)
    app.before_request(authentication.admit_request)
    app.after_request(_headers)
    app.after_request(read_to_the_end)
    app.teardown_request(authentication.stop_acting_after)
    app.add_url_rule("/api/swagger-ui/<path:filename>", "swagger_ui_assets", _swagger_ui_asset)
    return api


def _describe_shared_parts(api: Api) -> None:
    """The OpenAPI components every endpoint refers to: the key scheme, errors, decimals."""
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
    api.register_field(DecimalOut, "string", "decimal")
    api.register_field(InstantOut, "string", "date-time")
    api.ma_plugin.converter.add_attribute_function(null_alone)


def _headers(response):
    """Headers every answer needs and flask-smorest does not give.

    A 204 has no content, so no Content-Type either (flask-smorest gives it
    JSON's). No answer is sniffed for another type than it says. An API
    answer is about balances, money or keys, so no cache keeps it unless its
    view says otherwise: final statements, which never change, may be kept
    by their reader and asked for again with their ETag (:mod:`.settlements`).
    No page is shown in another site's frame: Swagger UI's, where a user may
    authorise with a key, as the console's (which says more, :mod:`coalition.console`).
    """
    if response.status_code == 204:
        response.headers.pop("Content-Type", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith("/api/v1/"):
        response.headers.setdefault("Cache-Control", "no-store")
    elif response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


#: The files of the swagger-ui-bundle package that ``/api/docs`` loads, and only those:
#: the package also holds Swagger UI's stock page (``index.html``), which would load a
#: third party's API document into this origin, where the console keeps its key.
SWAGGER_UI_ASSETS = frozenset(
    {"swagger-ui.css", "swagger-ui-standalone-preset.js", "swagger-ui-bundle.js"}
)


def _swagger_ui_asset(filename):
    """Swagger UI's scripts, served from the swagger-ui-bundle package: no CDN needed."""
    if filename not in SWAGGER_UI_ASSETS:
        raise NotFound()
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)
