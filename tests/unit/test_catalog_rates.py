"""The rate versions a posting considers (``Catalog.rates_of``) are read from the versions
grouped by kind and partner, not by scanning every version the coalition ever added: the
same versions a scan finds, in the order they were added; asked at a moment, every one
in force then, whatever the versions' windows.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.domain import rates as rules
from coalition.domain.rates import KINDS, Rate
from coalition.services import catalog

PARTNERS = (None, "aroma", "skyair", "coalition")
JAN = datetime(2026, 1, 1, tzinfo=UTC)

versions = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(PARTNERS), st.integers(0, 400)),
    max_size=60,
).map(
    lambda drawn: [
        Rate(
            id=number,
            kind=kind,
            value=Decimal(1),
            effective_from=JAN + timedelta(days=day),
            partner_id=partner,
        )
        for number, (kind, partner, day) in enumerate(drawn, start=1)
    ]
)


def _catalog(rates: list[Rate]) -> catalog.Catalog:
    return catalog.Catalog(
        generation=0,
        settings=None,
        partners={},
        rates=catalog._by_scope(rates),
        keys={},
        last_closed=None,
    )


@given(
    versions,
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=4).map(tuple),  # a kind twice too
    st.sampled_from(PARTNERS),
)
def test_a_partners_versions_are_its_own_and_the_coalition_wide_in_the_order_added(
    rates, kinds, partner_id
):
    # asked of one catalog for every partner and for fewer kinds first: each answer is
    # kept for its own question
    book = _catalog(rates)
    for kinds_asked, partner in [(kinds[:1], partner_id), *((kinds, each) for each in PARTNERS)]:
        scanned = [
            rate
            for rate in rates
            if rate.kind in kinds_asked and (partner is None or rate.partner_id in (None, partner))
        ]
        assert list(book.rates_of(kinds_asked, partner)) == scanned


# few kinds and partners, so that a group holds many versions whose windows overlap: a
# long one started early, in force behind later ones already over
windowed = st.lists(
    st.tuples(
        st.sampled_from(("earn", "promo")),
        st.sampled_from(PARTNERS[:2]),
        st.sampled_from((None, "coffee")),
        st.integers(0, 400),
        st.none() | st.integers(1, 300),  # days in force; None: no end
    ),
    max_size=40,
).map(
    lambda drawn: [
        Rate(
            id=number,
            kind=kind,
            value=Decimal(number),
            effective_from=JAN + timedelta(days=day),
            effective_to=None if days is None else JAN + timedelta(days=day + days),
            partner_id=partner,
            category=category,
        )
        for number, (kind, partner, category, day, days) in enumerate(drawn, start=1)
    ]
)


@settings(max_examples=400)
@given(
    windowed,
    st.lists(st.sampled_from(("earn", "promo")), min_size=1, max_size=2).map(tuple),
    st.sampled_from(PARTNERS[:2]),
    st.integers(-10, 1100).map(lambda half_days: JAN + timedelta(hours=12 * half_days)),
)
def test_the_versions_asked_at_a_moment_hold_every_one_in_force_then(rates, kinds, partner_id, at):
    # on whole days too, where windows start and end: a window holds its start, not its end
    book = _catalog(rates)
    every = book.rates_of(kinds, partner_id)
    asked = book.rates_of(kinds, partner_id, at)

    assert set(asked) <= set(every) and list(asked) == sorted(asked, key=lambda rate: rate.id)
    assert {rate for rate in every if rate.in_force_at(at)} <= set(asked)
    for kind in kinds:
        for category in (None, "coffee"):
            chosen = rules.in_force(every, kind, at, partner_id=partner_id, category=category)
            assert rules.in_force(asked, kind, at, partner_id=partner_id, category=category) == chosen
