"""The rate versions a posting considers (``Catalog.rates_of``) are read from the versions
grouped by kind and partner, not by scanning every version the coalition ever added: the
same versions a scan finds, in the order they were added.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

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
