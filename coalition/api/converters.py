"""URL converters: what a path segment may hold before any view sees it."""

from werkzeug.routing import BaseConverter, IntegerConverter

from coalition.api.fields import MEMBER_ID_LENGTH


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
