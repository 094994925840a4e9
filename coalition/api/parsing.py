"""Reading a request's JSON body and query as SPEC §10 asks: numbers exactly, a body that
cannot be read a 400 that says what and where, one not sent as JSON (or in a content or
transfer coding other than chunked) a 415."""

import json
import time
from contextlib import suppress
from decimal import Decimal
from typing import ClassVar
from urllib.parse import parse_qsl

import marshmallow
from flask import request
from gunicorn.http.errors import ParseException
from webargs.flaskparser import FlaskParser, abort
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from coalition import MAX_BODY_BYTES
from coalition.api.fields import Query


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
        webargs would read the first and list as if the second were not asked for. One the
        operation does not take is left to the schema, which says so, given once or twice."""
        chosen = MultiDict((key, value) for key, value in req.args.items(multi=True) if value)
        taken = {field.data_key or name for name, field in schema.load_fields.items()}
        repeated = sorted(key for key, values in chosen.lists() if len(values) > 1 and key in taken)
        if repeated:
            abort(422, messages={"query": {key: ["give one value only"] for key in repeated}})
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
                _text(data),
                parse_float=Decimal,  # exactly: a field refuses it in words, never as a float
                parse_constant=reject,
                object_pairs_hook=_one_each,
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


def refuse_a_url_not_utf8() -> None:
    """A URL whose percent-encoded bytes are not UTF-8 is malformed (400). werkzeug reads
    such bytes as U+FFFD, so ``/members/%FF`` and ``/members/%FE`` would both be the member
    ``"\ufffd"``, a real id that neither client sent, and a filter another one."""
    environ = request.environ
    try:
        environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="strict")
    except UnicodeError:
        raise BadRequest(
            "the URL is not UTF-8 once percent-decoded: encode text as UTF-8"
        ) from None


def refuse_a_query() -> None:
    """For an operation that reads no query: a parameter it is sent is refused (422) in the
    words and shape a query's schema refuses one it does not take ("not a parameter of this
    request, which takes none"), where it was ignored: a balance asked ``?at=`` a burn's
    time was answered as of now, ``/periods?status=open`` listed every period, with no word
    that the parameter was not read. A parameter sent empty is left out, as anywhere."""
    if request.args:  # most send none, and a balance lookup need not build a schema for it
        PARSER.parse(Query(), location="query")


def refuse_malformed_body() -> None:
    """For a view that reads no body (a close, a key's revocation): a JSON body it is sent
    is not read, but one that does not parse is malformed JSON (400), as anywhere (§10).
    Without a body, or with an empty one, any Content-Type will do."""
    if request.is_json and not _blank(_body(request)):
        PARSER.load_json(request, None)


def _text(body: bytes) -> str:
    """The body as text, decoded strictly: ``json.loads`` would let the bytes of half a
    surrogate pair (``ED A0 80``) through, and the field would be refused (422) for a
    character the client never wrote, where any other invalid UTF-8 is malformed (400)."""
    return body.decode(json.detect_encoding(body))


def _blank(body: bytes) -> bool:
    """Whether a body is empty but for JSON's whitespace: no JSON text at all (RFC 8259)."""
    return not body.strip(b" \t\r\n")


def _body(req) -> bytes:
    """The request's body; one whose transfer encoding is broken was never sent (400),
    nor was one that ended before its Content-Length: gunicorn hands over what came
    before the client closed, and its first part may be whole JSON, a posting.

    A body sent chunked, with no Content-Length, Werkzeug reads up to the limit and
    stops there as if it had ended: a byte left after it means the body is too large
    (413), not that its first 16 MiB were all of it.
    """
    _refuse_codings(req)
    try:
        body = req.get_data(cache=True)
        cut_at_the_limit = req.content_length is None and len(body) == req.max_content_length
        if cut_at_the_limit and req.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
        if req.content_length is not None and len(body) < req.content_length:
            raise BadRequest(
                f"the body ended after {len(body)} of the {req.content_length} bytes its"
                " Content-Length gives: nothing was read"
            )
        return body
    except ParseException as error:
        raise BadRequest(f"the request body could not be read: {error}") from None


#: How long an answer waits for the rest of a body it did not need: gunicorn's own bound for
#: the body it reads after the answer (DEFAULT_WORKER_DATA_TIMEOUT), past which it closes.
UNREAD_BODY_SECONDS = 5


def read_to_the_end(response):
    """Read what is left of a body the answer did not need: a request refused by its key,
    its path or an absent database before its body was read. gunicorn reads at most 64 KiB
    of such a body and then closes the connection, after answering "keep-alive": the
    client's next request on it went unanswered, and a POST is not sent again by itself. A body
    over the limit is not read (413), nor the rest of one that breaks its framing: gunicorn
    closes that connection, as it must.

    The rest is waited for :data:`UNREAD_BODY_SECONDS` at most, as gunicorn does: a client
    that sends a Content-Length and then nothing, with no key, held the thread before its
    answer for as long as it kept the connection open (eight such connections stopped a
    worker). Each step's read waits at most what is left of that time for each part of
    the body it receives. Past it the answer goes and gunicorn closes the connection, as
    before."""
    if request.content_length is None and "Transfer-Encoding" not in request.headers:
        return response  # no body
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return response  # too large (413): not read, as it was refused
    connection = request.environ.get("gunicorn.socket")
    if connection is None:
        return response  # not served by gunicorn: its server reads or closes as it will
    deadline = time.monotonic() + UNREAD_BODY_SECONDS
    waited = connection.gettimeout()
    try:
        with suppress(ParseException, OSError, RequestEntityTooLarge, BadRequest):
            while (left := deadline - time.monotonic()) > 0:
                connection.settimeout(left)
                if not request.stream.read(1024):  # a step, as gunicorn's: each waits once
                    break
    finally:
        with suppress(OSError):
            connection.settimeout(waited)
    return response


#: The codings a body may declare, each header's: the service undoes none but chunked,
#: which gunicorn undoes (it passes gzip or deflate on undone, and answers 501 itself
#: for a transfer coding it does not know).
_READ_AS_SENT = {
    "Content-Encoding": {"identity", ""},
    "Transfer-Encoding": {"chunked", "identity", ""},
}


def _refuse_codings(req) -> None:
    """415 for a body in a coding: read as it came, a compressed body would be "not
    UTF-8", and a body labelled compressed but sent plain would be posted."""
    for header, read_as_sent in _READ_AS_SENT.items():
        codings = {coding.strip().lower() for coding in req.headers.get(header, "").split(",")}
        if codings - read_as_sent:
            raise UnsupportedMediaType(
                f"a body in {header} {req.headers[header].strip().lower()!r} is not read:"
                " send it as is"
            )


PARSER = DecimalJSONParser()  # every blueprint's (flask-smorest's ARGUMENTS_PARSER)
