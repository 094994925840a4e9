"""API keys, roles and the principal behind each request (SPEC §4).

A key is random, shown once and stored only as its SHA-256: the key carries
256 bits of entropy, so a fast hash is enough and lets a request find its key
by the hash alone, in the per-process catalog of unrevoked keys
(:mod:`coalition.services.catalog`), which a revocation invalidates at once.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from coalition.db import models
from coalition.domain.errors import Forbidden, Invalid, NotFound
from coalition.services import calendar, catalog, partners

ROLES = ("operator", "finance", "partner")
KEY_STATUSES = ("active", "revoked")
KEY_PREFIX = "coal_"
KEY_ID = "key_[0-9a-f]{12}"  # a key's id: not secret, shown by every listing


class Unauthenticated(Exception):
    """No key, an unknown key or a revoked key (401)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id (None for a command acting as the operator), its role,
    and the partner it is bound to."""

    key_id: str | None
    role: str
    partner_id: str | None = None

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(
                f"a {self.role} key may not do this: it takes a key of role {' or '.join(roles)}"
            )

    @property
    def sees_everything(self) -> bool:
        """Operator, or finance not bound to a partner."""
        return self.role == "operator" or (self.role == "finance" and self.partner_id is None)

    def own_partner(self) -> str | None:
        """The partner whose data alone this key may see, or None for all."""
        return None if self.sees_everything else self.partner_id

    def require_unbound(self, instead: str) -> None:
        """Refuse a key bound to a partner what shows every partner (403), saying ``instead``."""
        if self.own_partner() is not None:
            raise Forbidden(f"a key bound to a partner {instead}")

    def listed_partner(self, requested: str | None) -> str | None:
        """The partner a listing is narrowed to: a bound key's own, whatever it asked
        for; asking for another partner's is 403 (a listing is not one record by id)."""
        own = self.own_partner()
        if own is not None and requested not in (None, own):
            raise Forbidden("this key may only see its own partner's data")
        return own or requested

    def may_see(self, partner_id: str) -> bool:
        """Whether this key may see a partner's transaction or statement; one it may
        not is answered as if it did not exist (SPEC §4: 404, not 403)."""
        return self.own_partner() in (None, partner_id)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_binding(role: str, partner_id: str | None) -> None:
    """Refuse a role that does not exist, or a key bound as its role may not be: told
    before the database is opened, ``coalition keys create`` creates none to refuse in."""
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "partner" and partner_id is None:
        raise Invalid("a partner key needs the partner it is bound to", field="partner_id")
    if role == "operator" and partner_id is not None:
        raise Invalid("an operator key is not bound to a partner", field="partner_id")


def create_key(session, role: str, partner_id: str | None = None, name: str | None = None):
    """Store a new key's hash and return ``(row, key)``; the key is never stored."""
    check_binding(role, partner_id)
    if partner_id is not None:
        partners.get_for_reference(session, partner_id)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = models.ApiKey(
        id="key_" + secrets.token_hex(6),
        name=name,
        role=role,
        partner_id=partner_id,
        key_hash=hash_key(key),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return row, key


def get_key(session, key_id: str) -> models.ApiKey:
    row = session.get(models.ApiKey, key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    return row


def key_by_value(session, key: str) -> models.ApiKey:
    """The key stored for ``key`` itself, as an operator holding a leaked key finds it;
    the error does not repeat the key."""
    row = session.scalar(select(models.ApiKey).where(models.ApiKey.key_hash == hash_key(key)))
    if row is None:
        raise NotFound("no key matches the key given")
    return row


def revoke_key(session, key_id: str) -> models.ApiKey:
    """Revoke a key; revoking it again changes nothing (its first revocation stands).

    Answered once the postings in flight have committed, and no posting under the key
    is recorded after it: it takes the calendar lock exclusively, as a partner's
    suspension does, and each chunk of postings checks its key once it holds that
    lock (:func:`check_unrevoked`). A key's other writes in flight are not checked again.
    It is dated as those postings are, on PostgreSQL by the database's clock
    (:func:`calendar.dated_once_locked`): by an instance's own clock behind that, it read
    as before the postings it came after."""
    granted_at = calendar.lock_calendar(session, exclusive=True)
    row = get_key(session, key_id)
    if row.revoked_at is None:
        row.revoked_at = calendar.dated_once_locked(datetime.now(UTC), granted_at)
    return row


def listing(session, partner_id=None, role=None, status=None) -> list[models.ApiKey]:
    """Keys in the order they were made, revoked ones too unless ``status`` says otherwise:
    what an operator looks through to find the key to revoke."""
    K = models.ApiKey
    query = select(K).order_by(K.created_at, K.id)
    if partner_id is not None:
        query = query.where(K.partner_id == partner_id)
    if role is not None:
        query = query.where(K.role == role)
    if status is not None:
        query = query.where(
            K.revoked_at.is_(None) if status == "active" else K.revoked_at.isnot(None)
        )
    return list(session.scalars(query))


def authenticate(session, authorization: str | None) -> Principal:
    """The principal for an ``Authorization: Bearer <key>`` header, as this transaction
    sees keys."""
    return principal_in(catalog.current(session), authorization)


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("missing bearer key")
    return key.strip()


def principal_in(reference: catalog.Catalog, authorization: str | None) -> Principal:
    """The principal for an ``Authorization: Bearer <key>`` header among a catalog's keys."""
    row = reference.keys.get(hash_key(bearer_key(authorization)))
    if row is None:
        raise Unauthenticated("unknown or revoked key")
    return Principal(row.id, row.role, row.partner_id)


def check_unrevoked(reference: catalog.Catalog, principal: Principal) -> None:
    """Refuse a unit of work whose key was revoked after its request was authenticated
    (a command's principal has no key to revoke)."""
    if principal.key_id is not None and not reference.holds_key(principal.key_id):
        raise Unauthenticated("revoked key")


def first_operator_key(session) -> str | None:
    """A new operator key if the coalition has none yet (``serve``'s first start), else None.

    Instances started together each ask. Finding none, an instance locks the
    settings row and looks again, so one at a time looks and creates: one key
    is made and printed, not one by each instance. (A
    start that finds a key locks nothing: the row is also what every change
    to reference data locks, a close's included.)
    """
    unrevoked = select(models.ApiKey.id).where(
        models.ApiKey.role == "operator", models.ApiKey.revoked_at.is_(None)
    )
    if session.scalars(unrevoked).first() is not None:
        return None
    session.execute(select(models.Settings.id).with_for_update())
    if session.scalars(unrevoked).first() is not None:  # another instance's, committed meanwhile
        return None
    return create_key(session, "operator", name="first start")[1]
