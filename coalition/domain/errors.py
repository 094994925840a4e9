"""One hierarchy of domain errors, each with a ``reason``.

The HTTP layer maps every :class:`CoalitionError` to its status and the JSON
error body of SPEC §10 in one handler (``coalition.api.errors``); the CLI
prints the message. Raising keeps the use cases linear: a failed rule
aborts the unit of work, which rolls back.
"""


class CoalitionError(Exception):
    """Base of every rule violation the service reports to its caller.

    Attributes:
        reason: machine-readable code for clients (SPEC §10).
        message: human-readable explanation.
        field: the request's field whose value breaks the rule, if one alone
            does; the API then also names it under ``errors``, as it does for
            a field that fails validation.
        location: where that field is: ``json`` (the body) or ``query``.
    """

    reason = "invalid"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        location: str = "json",
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.location = location
        if reason is not None:
            self.reason = reason

    def by_field(self) -> dict[str, str]:
        """The fields at fault, each with why: the one field named, if any."""
        return {} if self.field is None else {self.field: self.message}


class Invalid(CoalitionError):
    """The request is well-formed but breaks a rule."""


class InvalidFields(Invalid):
    """Fields that break rules at once, each named with its own reason; one alone is
    told as any other field at fault is, by its reason and its name."""

    def __init__(self, problems: dict[str, str]):
        if len(problems) == 1:
            [(field, why)] = problems.items()
            super().__init__(why, field=field)
        else:
            super().__init__("; ".join(f"{field}: {why}" for field, why in problems.items()))
        self.problems = problems

    def by_field(self) -> dict[str, str]:
        return dict(self.problems)


class NotFound(CoalitionError):
    reason = "not_found"


class Forbidden(CoalitionError):
    reason = "forbidden"


class Conflict(CoalitionError):
    reason = "conflict"


class InsufficientPoints(CoalitionError):
    reason = "insufficient_points"


class NoRate(CoalitionError):
    reason = "no_rate"


class MissingFx(NoRate):
    """A close needs an fx rate for a currency that has none at the period's end: a
    conflict with the rates as configured (SPEC §7), not a fault of the request."""


class PartnerSuspended(CoalitionError):
    reason = "partner_suspended"


class PeriodClosed(Conflict):
    reason = "period_closed"


class IdempotencyConflict(Conflict):
    reason = "idempotency_conflict"


def fields_text(messages) -> str:
    """A field validation's messages by field, in one line, as a till's log or an operator's
    terminal reads them: ``amount: must be a string such as "350.00"; currency: required
    for this type`` (a nested field as ``transactions: 0: amount: …``)."""
    if isinstance(messages, dict):
        return "; ".join(f"{field}: {fields_text(inner)}" for field, inner in messages.items())
    if isinstance(messages, list):
        return " ".join(fields_text(message) for message in messages)
    return str(messages)
