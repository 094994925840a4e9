"""Response bodies, whose every field is in every answer.

An answer says a field has no value with null, never by leaving it out, so the
OpenAPI document lists each field of an :class:`Answer` as required and a
client generated from it need not guard every field it reads. The few fields
some answers leave out are named in their schema's ``may_omit``.
"""

import re

import apispec
from apispec.ext.marshmallow.common import resolve_schema_cls
from marshmallow import Schema

#: A file's bytes (a PDF), documented as such: the views answer a Response, which
#: nothing dumps.
DOWNLOAD = {"type": "string", "format": "binary"}

#: A CSV download, which is text (UTF-8), documented as a string, not as bytes: a client
#: generated from ``format: binary`` under a text type may read the text into a bytes
#: buffer and fail on every download (openapi-python-client's ``BytesIO(response.text)``).
CSV_TEXT = {"type": "string"}


#: A CSV download's content type, sent as given (a text/* mimetype would get a second
#: charset from werkzeug).
CSV = "text/csv; charset=utf-8"


def attachment(*parts: str, extension: str) -> dict:
    """The header of a download named by ``parts`` joined with hyphens, each reduced to
    letters, digits and hyphens (they come from ids and from the address)."""
    name = "-".join(re.sub(r"[^A-Za-z0-9-]", "_", part) for part in parts)
    return {"Content-Disposition": f'attachment; filename="{name}.{extension}"'}


def attached(named: str) -> dict:
    """A download's headers in the OpenAPI document: it is an attachment, ``named`` so."""
    return {
        "Content-Disposition": {
            "description": f"attachment, named {named}",
            "schema": {"type": "string"},
        }
    }


#: How apispec writes, for OpenAPI 3.0, that a nested answer may be null: a branch beside
#: the answer's schema that any object passes, not only null.
ANY_OBJECT_OR_NULL = {"type": "object", "nullable": True}


def null_alone(converter, field, ret: dict) -> dict:
    """A nested answer that may be null is its schema or null, nothing else in the
    document: ``enum: [null]`` leaves only the null to apispec's second branch
    (OpenAPI 3.0.3 reads ``nullable`` with ``enum`` so). That branch took any object:
    a validator passed ``{}`` for the KPIs' coalition figures, and openapi-python-client
    made an empty class of it beside Figures."""
    branches = ret.get("anyOf", [])
    if ANY_OBJECT_OR_NULL not in branches:
        return {}
    null = ANY_OBJECT_OR_NULL | {"enum": [None]}
    return {"anyOf": [null if branch == ANY_OBJECT_OR_NULL else branch for branch in branches]}


class Answer(Schema):
    """A response body. ``may_omit``: the fields (as named in JSON) some answers leave
    out, each explained in its description."""

    may_omit: tuple[str, ...] = ()


class AnswerFields(apispec.BasePlugin):
    """Lists an :class:`Answer`'s fields as required in the OpenAPI document, but those
    it may omit."""

    def schema_helper(self, name, definition, **kwargs):
        schema = kwargs.get("schema")
        answer = None if schema is None else resolve_schema_cls(schema)
        if not (isinstance(answer, type) and issubclass(answer, Answer)):
            return None
        properties = definition.get("properties", {})
        return {"required": [field for field in properties if field not in answer.may_omit]}
