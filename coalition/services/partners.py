"""Partners of the coalition (SPEC §5). ``coalition`` is the operator itself."""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from coalition.db import models
from coalition.domain import money
from coalition.domain.errors import Conflict, Invalid, NotFound, PartnerSuspended
from coalition.domain.partners import OPERATOR_PARTNER
from coalition.services import calendar, catalog


def _check(fields: dict) -> None:
    if "currency" in fields:
        money.check_currency(fields["currency"])


def create(session, fields: dict) -> models.Partner:
    """A new partner; its id taken already, by now or by a request racing this one → 409."""
    _check(fields)
    partner = models.Partner(
        **{"hold_days": 0, "status": "active", **fields}, created_at=datetime.now(UTC)
    )
    session.flush()  # what was pending before is not this partner's to answer for
    try:
        with session.begin_nested():  # a savepoint: the primary key decides, not a read before
            session.add(partner)
    except IntegrityError:
        if session.get(models.Partner, fields["id"]) is None:
            raise  # another constraint: not a duplicate
        raise Conflict(
            f"partner {fields['id']!r} exists already", reason="duplicate_partner"
        ) from None
    return partner


def update(session, partner_id: str, fields: dict) -> models.Partner:
    """Change what an operator may change of a partner: never its id, its currency only
    before it has transactions, and its status or currency only once the postings in
    flight have committed, so that each is settled under the partner as it was."""
    partner = get(session, partner_id)
    if (
        fields.get("currency", partner.currency) != partner.currency
        or fields.get("status", partner.status) != partner.status
    ):
        # postings in flight commit first: counted below, and none recorded after a
        # suspension, nor before a reactivation it then let through (one asked while
        # suspended, its lock granted, reads the partner after the reactivation commits).
        # Judged by the row as it is written, not the catalog: a change committed between
        # the two reads made a value sent back as it was a change that did not wait
        calendar.lock_calendar(session, exclusive=True)
        session.refresh(partner)
    if fields.pop("id", partner_id) != partner_id:
        raise Invalid(
            "is the partner's id, which cannot be changed: add a partner under the new id",
            field="id",
        )
    _check(fields)
    if partner_id == OPERATOR_PARTNER:
        _refuse_operator_change(partner, fields)
    if (
        "currency" in fields
        and fields["currency"] != partner.currency
        and _has_transactions(session, partner_id)
    ):
        raise Conflict(
            "a partner's currency is fixed once it has transactions", reason="currency_fixed"
        )
    for field, value in fields.items():
        setattr(partner, field, value)
    return partner


def _refuse_operator_change(operator: models.Partner, fields: dict) -> None:
    """The operator's own partner settles in the base currency and is never suspended:
    suspended, it could issue no bonus, and no operator key could post one for it."""
    if fields.get("currency", operator.currency) != operator.currency:
        raise Conflict(
            "the coalition partner settles in the base currency", reason="currency_fixed"
        )
    if fields.get("status", "active") != "active":
        raise Invalid(
            "the coalition partner is the operator itself and cannot be suspended",
            field="status",
        )


def _has_transactions(session, partner_id: str) -> bool:
    query = select(models.Transaction.id).where(models.Transaction.partner_id == partner_id)
    return session.scalars(query.limit(1)).first() is not None


def get(session, partner_id: str) -> models.Partner:
    partner = session.get(models.Partner, partner_id)
    if partner is None:
        raise NotFound(f"no partner {partner_id!r}")
    return partner


def get_for_reference(session, partner_id: str):
    """A partner named inside a request body: unknown → 422, not 404 (a read-only row)."""
    partner = catalog.current(session).partners.get(partner_id)
    if partner is None:
        raise Invalid(
            f"unknown partner {partner_id!r}", reason="unknown_partner", field="partner_id"
        )
    return partner


def active(session, partner_id: str):
    """The partner a transaction is posted for; unknown or suspended → 422."""
    partner = get_for_reference(session, partner_id)
    if partner.status != "active":
        raise PartnerSuspended(f"partner {partner_id!r} is suspended")
    return partner


def all_partners(session) -> list[models.Partner]:
    return list(session.scalars(select(models.Partner).order_by(models.Partner.id)))
