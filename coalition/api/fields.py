"""Marshmallow fields shared by the API schemas.

Money travels as decimal strings, parsed straight into Decimal; a JSON number
is refused there (the request parser reads one as Decimal, never float, so
that it is refused in words). Text fields refuse NUL characters, which no
database column can store. Instants are converted to UTC as they are read,
so every use case sees them as stored.
"""

import re
import unicodedata
from datetime import UTC
from decimal import Decimal
from typing import ClassVar

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from coalition.domain import money

#: The longest member id a transaction may carry; member URLs take as long ones.
MEMBER_ID_LENGTH = 128
#: The longest external id, a partner's own id of a transaction (the column's width).
EXTERNAL_ID_LENGTH = 128
#: The longest period id a query may name ("2026-10-05" has ten characters).
PERIOD_ID_LENGTH = 16
#: How a period id is written (SPEC §5), for the OpenAPI document.
PERIOD_ID = (
    "A period of the coalition's calendar (its settings' period): 2026-10 (monthly),"
    " 2026-W43 (weekly, ISO weeks) or 2026-10-05 (daily)"
)
#: Unicode's control characters (category Cc: C0, DEL and C1), and the same but for the
#: tab, line feed and carriage return that text of several lines holds; each beside the
#: pattern the OpenAPI document states it as (ECMA-262), for clients that check first.
CONTROL_CHARACTERS = {
    False: (re.compile("[\x00-\x1f\x7f-\x9f]"), r"^[^\u0000-\u001F\u007F-\u009F]*$"),
    True: (
        re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"),
        r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$",
    ),
}


class Range(validate.Range):
    """A number's bounds, told in the house's words with the bounds to send within: "must
    be at least 1 and at most 1000", "must be more than 0 and at most 1000000000000000",
    where marshmallow's were "Must be greater than or equal to 1 and less than or equal to
    1000."."""

    message_min = "must be {min_op} {{min}}"
    message_max = "must be {max_op} {{max}}"
    message_all = "must be {min_op} {{min}} and {max_op} {{max}}"
    message_gte = "at least"
    message_gt = "more than"
    message_lte = "at most"
    message_lt = "less than"


class Length(validate.Length):
    """A text's bounds in characters, told in the house's words: "must be 1 to 200
    characters", where marshmallow's were "Length must be between 1 and 200."."""

    message_min = "must be at least {min} characters"
    message_max = "must be at most {max} characters"
    message_all = "must be {min} to {max} characters"
    message_equal = "must be exactly {equal} characters"


class Text(fields.String):
    """A bounded string a database can store: no NUL, no lone surrogate (JSON can
    escape one, ``"\\ud800"``, UTF-8 cannot encode it). ``blank=False`` for a name or
    an id that must show something: spaces or invisible characters alone would leave
    it empty."""

    def __init__(self, max_length: int = 200, min_length: int = 1, blank=True, **kwargs):
        super().__init__(validate=Length(min_length, max_length), **kwargs)
        self.blank = blank

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        if not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text):
            raise ValidationError("must be valid Unicode (a lone surrogate is not)")
        if not self.blank and not any(unicodedata.category(char)[0] not in "CZ" for char in text):
            raise ValidationError("must not be blank")
        return text


class Legible(Text):
    """Text people read as written: a name, a category, a reason. It stands in a line of
    a statement, a CSV, a log or a terminal's table, where a control character would
    break the line (a line feed) or act on the terminal showing it (an escape), so none
    is accepted, and it may not be blank. ``lines=True`` for text that may run over
    lines: tabs, line feeds and carriage returns pass.

    Ids are Text, not Legible: they are opaque (SPEC §6), and the group separator a
    card reader leaves between a card's fields is part of the id it read.
    """

    def __init__(self, lines=False, **kwargs):
        self.controls, pattern = CONTROL_CHARACTERS[lines]
        kwargs["metadata"] = {"pattern": pattern, **kwargs.get("metadata", {})}
        super().__init__(blank=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if control := self.controls.search(text):
            raise ValidationError(
                f"must not contain control characters: U+{ord(control[0]):04X}"
                f" at character {control.start() + 1}"
            )
        return text


class Instant(fields.AwareDateTime):
    """An RFC 3339 instant with its offset, read as UTC (SPEC §3: times are stored in UTC).

    Converting on input makes a posting's first answer show its times as
    stored, the same as a replay or a read does (SPEC §6). An instant such as
    ``0001-01-01T00:00:00+14:00`` has no UTC form (it falls before year 1),
    so it is refused here, not left to overflow in a use case or the database.
    Python reads many ISO 8601 forms (week dates, no seconds, basic format);
    only RFC 3339's is accepted, as SPEC §3 says.
    """

    #: What an instant is, as each refusal of one says.
    WRITTEN = "an RFC 3339 instant with its offset, e.g. 2026-10-03T10:15:00+03:00"
    # a JSON number, true, a list: marshmallow's words were "Not a valid datetime."
    default_error_messages: ClassVar[dict] = {"invalid": f"must be a JSON string: {WRITTEN}"}

    RFC_3339 = re.compile(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:(?P<second>[0-9]{2})(\.[0-9]+)?"
        r"([Zz]|[+-](?P<offset_hours>[0-9]{2}):(?P<offset_minutes>[0-9]{2}))"
    )

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            self._check_written(value)
            try:  # RFC 3339 allows "t" and "z", which Python does not read
                instant = super()._deserialize(value.upper(), attr, data, **kwargs)
            except ValidationError:
                raise ValidationError(
                    f"{value!r} is no date and time of the calendar: months run 01 to 12,"
                    " days to the month's last, hours 00 to 23, minutes and seconds 00 to 59"
                ) from None
        else:
            instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            return instant.astimezone(UTC)
        except OverflowError:
            raise ValidationError("must be an instant between years 1 and 9999 in UTC") from None

    def _check_written(self, value: str) -> None:
        """Refuse what RFC 3339 does not write, or what no stored instant holds.

        Python would read an offset's minutes past 59 (``+03:99`` as +04:39)
        and move the instant, maybe into another period, without a word.
        """
        written = self.RFC_3339.fullmatch(value)
        if not written:
            raise ValidationError(self._refusal(value))
        if written["second"] == "60":
            raise ValidationError(
                "a leap second (:60) is no instant that can be stored;"
                " send the second before it, e.g. 23:59:59.999999Z"
            )
        if written["offset_hours"] and (
            written["offset_hours"] > "23" or written["offset_minutes"] > "59"
        ):
            raise ValidationError(
                f"{value!r} has no such offset: its hours run 00 to 23, its minutes 00 to 59"
            )

    def _refusal(self, value: str) -> str:
        """Why ``value`` is no instant; a URL's query reads "+" as a space, so an offset
        written ``+01:00`` in a query string arrives as `` 01:00``, and the answer says so."""
        message = f"must be {self.WRITTEN}"
        if self.RFC_3339.fullmatch(value.replace(" ", "+")):
            message += (
                f"; {value!r} has a space where its offset's '+' goes"
                " (a URL's query reads '+' as a space: send it there as %2B)"
            )
        return message


class DecimalString(fields.Decimal):
    """A decimal carried as a JSON string such as ``"350.00"`` (SPEC §3), and only so.

    A JSON number is refused: most clients hold one as a binary float before it is
    sent (``0.1 + 0.2`` goes as ``0.30000000000000004``), and the document says string.
    The documented pattern is enforced: Decimal alone would read " 350", "+350",
    "350." and "3.5E2", and PostgreSQL's NUMERIC would round a 13th decimal
    away, where money must be exact.
    """

    PATTERN = r"^[0-9]{1,16}(\.[0-9]{1,12})?$"
    _WRITTEN = re.compile(PATTERN)

    def __init__(self, metadata: dict | None = None, **kwargs):
        metadata = {"pattern": self.PATTERN, **(metadata or {})}
        super().__init__(as_string=True, allow_nan=False, metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            # a number is told why; true, a list or an object is no number to begin with
            number = isinstance(value, int | Decimal) and not isinstance(value, bool)
            why = ": money and rates travel as decimal strings, never as JSON numbers"
            raise ValidationError(f'must be a string such as "350.00"{why if number else ""}')
        if self._WRITTEN.fullmatch(value) is None:
            raise ValidationError(
                'must be written as "350.00": up to 16 digits, then optionally a point '
                "and up to 12 digits, with no sign, spaces or exponent"
            )
        return super()._deserialize(value, attr, data, **kwargs)


def Amount(**kwargs):
    """A positive money amount (its decimals are checked against its currency later)."""
    return DecimalString(
        validate=Range(min=0, min_inclusive=False, max=money.MAX_AMOUNT),
        metadata={"example": "350.00"},
        **kwargs,
    )


class RequestSchema(Schema):
    """What a request sends: a field it does not take is told which it takes, so a till's
    ``ammount`` or an operator's ``?partner=`` has the right spelling at hand, where
    marshmallow's words were "Unknown field."."""

    #: What is said of a field not taken, given those taken.
    NOT_TAKEN = "not a field of this body, which takes {}"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taken = ", ".join(field.data_key or name for name, field in self.load_fields.items())
        taken = taken or "none"
        self.error_messages = {**self.error_messages, "unknown": self.NOT_TAKEN.format(taken)}


class Query(RequestSchema):
    """The parameters of a query string."""

    NOT_TAKEN = "not a parameter of this request, which takes {}"


class Body(RequestSchema):
    """The fields of a JSON body. A body that is not an object (an array, a string,
    null) is told so, where marshmallow's own words were "Invalid input type.". A field
    left out that it needs is "required", and one of the wrong JSON type what it must
    be, in the words of the house's other messages."""

    error_messages: ClassVar[dict] = {"type": "must be a JSON object of fields, {…}"}

    def on_bind_field(self, field_name, field_obj):
        said = {"required": "required", "null": "must not be null"}
        if isinstance(field_obj, fields.String):
            said["invalid"] = "must be a JSON string"
        field_obj.error_messages = {**field_obj.error_messages, **said}


class NullLeftOut(Body):
    """A body whose optional fields may be sent as null, taken as left out.

    Typed clients (Jackson, System.Text.Json, pydantic) write every field they declare,
    null where unset, and would be refused for a ``"reason": null``. What is left is what
    a posting's idempotency check compares, so a replay that leaves the field out is the
    same body. A required field and an unknown one are refused as null still.
    """

    def on_bind_field(self, field_name, field_obj):
        super().on_bind_field(field_name, field_obj)
        field_obj.allow_none = field_obj.allow_none or not field_obj.required  # documented so

    @pre_load
    def null_is_left_out(self, body, **kwargs):
        if not isinstance(body, dict):
            return body
        return {
            name: value
            for name, value in body.items()
            if value is not None or name not in self.fields or self.fields[name].required
        }


class Changes(Body):
    """A body of changes: a field left out keeps its value. A null is refused in words
    that say so, for it is read two ways (JSON Merge Patch: reset it; a typed client's
    unset field: keep it) and the service resets nothing."""

    def on_bind_field(self, field_name, field_obj):
        super().on_bind_field(field_name, field_obj)
        field_obj.error_messages = {
            **field_obj.error_messages,
            "null": "null is not a value here: leave the field out to keep what it is",
        }


class Whole(fields.Integer):
    """A whole number in a body: a JSON number with no fraction or exponent, so that
    ``100.0``, ``1E2`` or ``"100"`` is refused in words that say how to write it."""

    default_error_messages: ClassVar[dict] = {
        "invalid": "must be a whole number: write it in the digits 0-9, with no fraction,"
        " exponent or quotes"
    }

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)


def OneOf(choices) -> validate.OneOf:
    """A value from a few ``choices``, refused in the house's words, "must be one of shop,
    cafe, gym, travel, other", where marshmallow's were "Must be one of: shop, …."."""
    return validate.OneOf(choices, error="must be one of {choices}")


def Points(**kwargs):
    return Whole(validate=Range(min=1, max=money.MAX_POINTS), **kwargs)


class Count(fields.Integer):
    """A whole number in a query string, in ASCII digits only, as numeric ids in URLs are.

    ``int()`` also reads other scripts' digits, a sign and surrounding spaces: it would
    take ``?limit=٣`` for a page of 3.
    """

    default_error_messages: ClassVar[dict] = {
        "invalid": "must be a whole number: write it in the digits 0-9"
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and re.fullmatch("[0-9]+", value) is None:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class WholeMatch(validate.Regexp):
    """``validate.Regexp`` over the whole value. Its ``match`` lets ``$`` match before a
    final newline, which would pass ``"aroma\\n"`` for a slug; the pattern stays as
    documented."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def Currency(**kwargs):
    return fields.String(
        validate=WholeMatch(r"^[A-Z]{3}$", error="must be an ISO 4217 code"), **kwargs
    )


PartnerId = WholeMatch(
    r"^[a-z0-9][a-z0-9-]{1,62}$", error="must be a slug: a-z, 0-9 and '-', 2 to 63 characters"
)


class DecimalOut(fields.String):
    """A decimal the service has already written as a string, for an answer: the
    document gives it the format ``decimal``, as it gives what DecimalString reads, so
    that a client generated from it reads an amount out as it writes one in."""


#: An amount the service has already written at its currency's minor unit, signed,
#: as a string such as ``"-83.25"`` (SPEC §3): settlements, statements and KPIs.
MoneyOut = DecimalOut

#: A ratio the service has already rounded, as a string such as ``"0.8123"``.
Ratio = DecimalOut


#: What a period is, in GET /periods and the KPIs: open until it is closed.
PERIOD_STATUSES = ("open", "closed")


def OneOfOut(values, then: str = "", **kwargs) -> fields.String:
    """A string an answer takes from a few ``values``, named in its description (then
    ``then``), not listed as an enum: a client that refuses a value unknown to it would
    fail on one a later release adds."""
    metadata = kwargs.pop("metadata", {})
    named = f"One of {', '.join(values)}{then}"
    return fields.String(metadata={"description": named, **metadata}, **kwargs)


class InstantOut(fields.String):
    """An instant the service has already written in RFC 3339 with its offset (SPEC §3),
    such as a final statement's, answered from its stored JSON: the document gives it
    the format ``date-time``, as it gives the instants marshmallow writes."""


def LotAvailableAt():
    """When an earn's or a bonus's lot may be spent, as a transaction and a member's
    history both answer it."""
    return fields.AwareDateTime(
        allow_none=True,
        metadata={
            "description": "Of an earn or a bonus: when its lot's points may be spent, after"
            " the issuer's hold_days (null for the other types)"
        },
    )


def LotExpiresAt():
    """When an earn's or a bonus's lot expires, as a transaction and a member's history
    both answer it."""
    return fields.AwareDateTime(
        allow_none=True,
        metadata={
            "description": "Of an earn or a bonus: when its lot expires (null for the other types)"
        },
    )
