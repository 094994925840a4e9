"""Each domain error answers with the status SPEC gives its case; the domain itself knows no HTTP."""

import pytest

from coalition.api.errors import domain_error_body, status_of
from coalition.domain import errors
from coalition.domain.settlement import Unbalanced
from coalition.services.batches import NotWritten

# from SPEC: §4 (403, 404), §5 (a duplicate → 409, a rate in a closed period → 409,
# no rate → 422), §6 (idempotency 409, insufficient points 422, a suspended partner
# 422), §7 (missing fx on close → 409); a failure of the service itself is a 500
EXPECTED = {
    errors.CoalitionError: 422,
    errors.Invalid: 422,
    errors.InvalidFields: 422,
    errors.NotFound: 404,
    errors.Forbidden: 403,
    errors.Conflict: 409,
    errors.InsufficientPoints: 422,
    errors.NoRate: 422,
    errors.MissingFx: 409,
    errors.PartnerSuspended: 422,
    errors.PeriodClosed: 409,
    errors.IdempotencyConflict: 409,
    Unbalanced: 500,
    NotWritten: 500,
}


def _every_kind(kind=errors.CoalitionError):
    yield kind
    for sub in kind.__subclasses__():
        yield from _every_kind(sub)


def _raised(kind):
    return kind({"points": "why"}) if issubclass(kind, errors.InvalidFields) else kind("why")


def test_every_domain_error_has_its_expected_status():
    # a new kind of error must be given its status here (and in STATUSES unless 422)
    assert {kind for kind in _every_kind() if kind.__module__.startswith("coalition")} == set(EXPECTED)


@pytest.mark.parametrize("kind", EXPECTED, ids=lambda kind: kind.__name__)
def test_status_and_body(kind):
    error = _raised(kind)
    body = domain_error_body(error)
    assert status_of(error) == body["code"] == EXPECTED[kind]
    assert body["reason"] == error.reason
    assert not hasattr(error, "status")
