"""Choosing the rate in force (SPEC §5).

Rates are append-only versions. At time ``t`` the rate in force is, among
the rates whose window ``[effective_from, effective_to)`` contains ``t`` and
whose scope matches, the most specific one (partner beats coalition-wide,
category beats category-less), and among equally specific ones the latest
``effective_from`` (then the latest id, so a correction posted later wins).

A category is a word a till and the operator each type: ``"Coffee"``,
``"coffee "`` and a fullwidth ``"ｃｏｆｆｅｅ"`` name one category
(:func:`category_key`), so a till's spelling does not quietly earn the
category-less rate.
"""

import functools
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from coalition.domain import money
from coalition.domain.errors import Invalid, InvalidFields
from coalition.domain.partners import OPERATOR_PARTNER

KINDS = ("earn", "promo", "threshold", "redemption", "fee", "fx")


@dataclass(frozen=True)
class Rate:
    """One version of one rate.

    Attributes:
        kind: one of :data:`KINDS`.
        value: points per currency unit (earn), multiplier (promo), flat
            points (threshold), base currency per point (redemption, fee) or
            base currency per unit of ``currency`` (fx).
        partner_id: the partner it is limited to, or None for coalition-wide.
        category: the purchase category it is limited to, or None.
        currency: the currency an fx rate converts from.
        min_amount: the purchase amount a threshold needs.
        created_at: when the operator added it.
        last_transaction_id: the ledger's last transaction id when it was
            added: transactions up to it were posted without it.
    """

    id: int
    kind: str
    value: Decimal
    effective_from: datetime
    effective_to: datetime | None = None
    partner_id: str | None = None
    category: str | None = None
    currency: str | None = None
    min_amount: Decimal | None = None
    created_at: datetime | None = None
    last_transaction_id: int = 0

    def in_force_at(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)

    @functools.cached_property
    def folded_category(self) -> str | None:
        """The category's :func:`category_key`, worked out once per version: a lookup
        compares it with the till's for every version it considers, and the catalog
        files each version under it."""
        return category_key(self.category)

    def matches(self, partner_id: str | None, folded: str | None, currency: str | None) -> bool:
        """Whether the version applies to this scope; ``folded`` is the purchase's
        category as :func:`category_key` gives it, worked out once per lookup."""
        return (
            self.partner_id in (None, partner_id)
            and (self.category is None or self.folded_category == folded)
            and (self.currency is None or self.currency == currency)
        )

    @property
    def scope(self) -> tuple:
        """What a newer version of this rate replaces: same kind and same scope."""
        return (self.kind, self.partner_id, self.folded_category, self.currency, self.min_amount)

    @property
    def precedence(self) -> tuple:
        return (
            self.partner_id is not None,
            self.category is not None,
            self.effective_from,
            self.id,
        )


def category_key(category: str | None) -> str | None:
    """What a category is compared by: Unicode's caseless form of it (compatibility
    forms such as fullwidth letters composed, case folded), without surrounding
    spaces. Not cached: a version keeps its own (:attr:`Rate.folded_category`) and a
    lookup works out the till's once, under a microsecond, where a cache of a thousand
    keys was thrown over at every posting by a partner with more categories."""
    if category is None:
        return None
    folded = unicodedata.normalize("NFKC", category).casefold()
    return unicodedata.normalize("NFKC", folded).strip()  # folding may undo the composition


def _candidates(rates, kind, at, partner_id, category, currency):
    folded = category_key(category)
    return [
        rate
        for rate in rates
        if rate.kind == kind and rate.in_force_at(at) and rate.matches(partner_id, folded, currency)
    ]


def in_force(
    rates,
    kind: str,
    at: datetime,
    *,
    partner_id: str | None = None,
    category: str | None = None,
    currency: str | None = None,
) -> Rate | None:
    """The rate of ``kind`` in force at ``at`` for this scope, or None."""
    candidates = _candidates(rates, kind, at, partner_id, category, currency)
    return max(candidates, key=lambda rate: rate.precedence, default=None)


def redemption_rate(rates, redeemer_id: str, at: datetime) -> Rate | None:
    """What a point redeemed at ``redeemer_id`` at ``at`` is worth (SPEC §7's v(t))."""
    return in_force(rates, "redemption", at, partner_id=redeemer_id)


def fee_rate(rates, issuer_id: str, at: datetime) -> Rate | None:
    """What the issuer pays the operator per point issued at ``at``; the operator, issuing
    its own bonuses, pays no fee to itself (SPEC §7)."""
    if issuer_id == OPERATOR_PARTNER:
        return None
    return in_force(rates, "fee", at, partner_id=issuer_id)


def threshold_reached(rates, at: datetime, partner_id: str, amount: Decimal) -> Rate | None:
    """The highest threshold the purchase amount reaches; versions as :func:`in_force`."""
    reached = [
        rate
        for rate in _candidates(rates, "threshold", at, partner_id, None, None)
        if rate.min_amount is not None and rate.min_amount <= amount
    ]
    return max(reached, key=lambda rate: (rate.min_amount, rate.precedence), default=None)


def versions_in_force(rates, at: datetime) -> list[Rate]:
    """For each scope, the one version in force at ``at`` (superseded versions left out)."""
    current: dict[tuple, Rate] = {}
    for rate in rates:
        if rate.in_force_at(at):
            held = current.get(rate.scope)
            if held is None or rate.precedence > held.precedence:
                current[rate.scope] = rate
    return sorted(current.values(), key=lambda rate: rate.id)


#: The kinds of rate that price a purchase (what ``earning.points_for_purchase`` reads):
#: each is a partner's own, so each names its partner (SPEC §5).
PURCHASE_KINDS = ("earn", "promo", "threshold")


def _rate_named(kind: str) -> str:
    """'an earn rate', 'a promo rate': the subject of a scope rule's message."""
    return ("an " if kind in ("earn", "fx") else "a ") + kind + " rate"


def check_scope(fields: dict) -> None:
    """Refuse a new rate that names what its kind does not have, or lacks what it needs
    (SPEC §5's table), or whose window is empty: every field at fault at once, as a
    posting's validation names them, so that the operator corrects the rate in one go."""
    if problems := _scope_problems(fields):
        raise InvalidFields(problems)


def _scope_problems(fields: dict) -> dict[str, str]:
    """Each field at fault with the first rule it breaks."""
    kind, value = fields["kind"], fields["value"]
    named, partner_id = _rate_named(kind), fields.get("partner_id")
    effective_to = fields.get("effective_to")
    # a threshold of 0 is how one is withdrawn: a version can end no other way, and the
    # highest min_amount reached wins, so a 0 there gives a purchase reaching it no bonus
    positive = kind in ("earn", "promo", "fx")
    rules = [
        ("partner_id", kind in PURCHASE_KINDS and not partner_id, f"{named} needs a partner_id"),
        ("effective_to", kind == "promo" and effective_to is None, "a promo needs an effective_to"),
        (
            "min_amount",
            kind == "threshold" and fields.get("min_amount") is None,
            "a threshold needs a min_amount",
        ),
        (
            "value",
            kind == "threshold" and value != value.to_integral(),
            "a threshold's value is a whole number of points",
        ),
        (
            "min_amount",
            kind != "threshold" and fields.get("min_amount") is not None,
            "only a threshold has a min_amount",
        ),
        (
            "category",
            kind not in ("earn", "promo") and fields.get("category") is not None,
            f"{named} has no category",
        ),
        (
            "currency",
            kind == "fx" and fields.get("currency") is None,
            "an fx rate needs a currency",
        ),
        (
            "currency",
            kind != "fx" and fields.get("currency") is not None,
            "only an fx rate has a currency",
        ),
        ("partner_id", kind == "fx" and partner_id, "an fx rate is coalition-wide"),
        (
            # accepted, it would never be charged (fee_rate): refused as the base currency's fx
            "partner_id",
            kind == "fee" and partner_id == OPERATOR_PARTNER,
            (
                f"the {OPERATOR_PARTNER} partner pays no fee to itself (SPEC §7): a fee rate"
                " of its own would never be charged"
            ),
        ),
        (
            "value",
            value < 0 or (positive and value == 0),
            f"{named} must be {'positive' if positive else 'zero or more'}",
        ),
        (
            "effective_to",
            effective_to is not None and effective_to <= fields["effective_from"],
            "effective_to must be after effective_from",
        ),
    ]
    problems: dict[str, str] = {}
    for field, broken, why in rules:
        if broken:
            problems.setdefault(field, why)
    if kind == "fx" and "currency" not in problems:
        try:
            money.check_currency(fields["currency"])
        except Invalid as error:
            problems["currency"] = error.message
    return problems
