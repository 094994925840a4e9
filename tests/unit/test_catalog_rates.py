"""The rate versions a posting considers (``Catalog.rates_of``) are read from the versions
grouped by kind and partner, not by scanning every version the coalition ever added: the
same versions a scan finds, in the order they were added; asked at a moment, every one
in force then, whatever the versions' windows.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.domain import earning
from coalition.domain import rates as rules
from coalition.domain.errors import Invalid, NoRate
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
        settings=SimpleNamespace(base_currency="EUR"),
        partners={},
        rates=catalog._by_group(rates),
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


# few kinds and partners, so that a group holds many versions whose windows overlap (a
# long one started early, in force behind later ones already over; several without an
# end in one scope), starting and ending at any hour
HOUR = timedelta(hours=1)
STARTS = st.integers(0, 2000)  # the hour a version starts
LASTS = st.none() | st.integers(1, 900)  # hours in force; None: no end


def _window(hour: int, hours: int | None) -> dict:
    """A version's effective_from and effective_to, from the hour it starts and how long."""
    return {
        "effective_from": JAN + hour * HOUR,
        "effective_to": None if hours is None else JAN + (hour + hours) * HOUR,
    }


windowed = st.lists(
    st.tuples(
        st.sampled_from(("earn", "promo", "threshold")),
        st.sampled_from(PARTNERS[:3]),
        st.sampled_from((None, "coffee")),
        STARTS,
        LASTS,
    ),
    max_size=40,
).map(
    lambda drawn: [
        Rate(
            id=number,
            kind=kind,
            value=Decimal(number),
            **_window(hour, hours),
            partner_id=partner,
            category=None if kind == "threshold" else category,
            min_amount=(Decimal(10) if category is None else Decimal(20))
            if kind == "threshold"
            else None,
        )
        for number, (kind, partner, category, hour, hours) in enumerate(drawn, start=1)
    ]
)


# moments an hour or a day apart and far apart, before, among and after the windows
moments = st.tuples(
    st.integers(-10, 2950), st.lists(st.integers(-48, 48), min_size=1, max_size=6)
).map(lambda drawn: [JAN + (drawn[0] + offset) * HOUR for offset in drawn[1]])


@settings(max_examples=300)
@given(windowed, moments)
def test_the_versions_asked_at_a_moment_hold_each_scope_s_choice_then(rates, moments):
    # one catalog asked for every kind, partner and moment in turn: each answer its own
    book = _catalog(rates)
    for at in moments:
        for kinds in (("earn",), ("promo",), ("threshold",), ("earn", "promo", "threshold")):
            for partner_id in PARTNERS[:3]:
                every = book.rates_of(kinds, partner_id)
                asked = book.rates_of(kinds, partner_id, at)

                assert set(asked) <= set(every)
                assert list(asked) == sorted(asked, key=lambda rate: rate.id)
                chosen = {}  # each scope's version in force at ``at`` that outranks the others
                for rate in every:
                    held = chosen.get(rate.scope)
                    if rate.in_force_at(at) and (held is None or rate.precedence > held.precedence):
                        chosen[rate.scope] = rate
                assert set(chosen.values()) <= set(asked)
                for kind in kinds:
                    for category in (None, "coffee"):
                        assert rules.in_force(
                            asked, kind, at, partner_id=partner_id, category=category
                        ) == rules.in_force(
                            every, kind, at, partner_id=partner_id, category=category
                        )
                for amount in (Decimal(15), Decimal(25)):
                    if partner_id is not None:
                        assert rules.threshold_reached(
                            asked, at, partner_id, amount
                        ) == rules.threshold_reached(every, at, partner_id, amount)


fx_versions = st.lists(
    st.tuples(st.sampled_from(("JPY", "KWD", "USD")), STARTS, LASTS), max_size=40
).map(
    lambda drawn: [
        Rate(id=number, kind="fx", value=Decimal(number), currency=currency, **_window(hour, hours))
        for number, (currency, hour, hours) in enumerate(drawn, start=1)
    ]
)


@given(fx_versions, st.sampled_from(("JPY", "KWD", "USD")), st.integers(-10, 3000))
def test_an_fx_rate_is_the_one_a_scan_of_every_version_chooses(rates, currency, hour):
    moment = JAN + hour * HOUR
    expected = rules.in_force(rates, "fx", moment, currency=currency)
    assert _catalog(rates).fx_rate(currency, moment) == expected


def test_an_fx_rate_is_found_without_reading_every_daily_version(monkeypatch):
    # 20 currencies' daily rates for three years: a close asks for each partner's of each
    # period, and a scan of every version took 6.5 ms a partner at 22,000 versions
    daily = [
        Rate(
            id=number,
            kind="fx",
            value=Decimal(1),
            currency=currency,
            effective_from=JAN + day * 24 * HOUR,
        )
        for number, (day, currency) in enumerate(
            ((day, currency) for day in range(1100) for currency in ("JPY", "KWD", "USD")), start=1
        )
    ]
    book = _catalog(daily)
    looked_at = []
    choose = rules.in_force
    monkeypatch.setattr(
        rules,
        "in_force",
        lambda versions, *a, **k: looked_at.append(len(versions)) or choose(versions, *a, **k),
    )
    chosen = book.fx_rate("KWD", JAN + 500 * 24 * HOUR - timedelta(microseconds=1))
    assert chosen.effective_from == JAN + 499 * 24 * HOUR and chosen.currency == "KWD"
    assert looked_at and max(looked_at) <= 3  # each currency's version in force then


# A purchase's rates (Catalog.rates_for_purchase) are looked up among its own category's
# versions and the category-less ones only. Categories here are many, and each written in
# ways that fold to one key (case, surrounding spaces, fullwidth letters, a decomposed
# accent), so that a lookup filing a version under its spelling, or comparing spellings,
# misses it; a till's category may be one no rate names, or none.
WORDS = ("coffee", "Café", "straße", *(f"aisle {number}" for number in range(12)))


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in word)


SPELLINGS = (
    lambda word: word,
    str.upper,
    str.title,
    lambda word: f"  {word} ",
    _fullwidth,
    lambda word: word.replace("é", "e\u0301").replace("ß", "SS"),
)
categories = st.builds(lambda word, spell: spell(word), st.sampled_from(WORDS), st.sampled_from(SPELLINGS))
purchase_versions = st.lists(
    st.tuples(
        st.sampled_from(("earn", "earn", "promo", "threshold")),
        st.sampled_from((None, "aroma", "aroma", "skyair")),
        st.none() | categories,
        st.integers(0, 6).map(lambda day: day * 24),  # few starts: corrections share one
        LASTS,
        st.sampled_from(("0.5", "1", "2", "3")),
    ),
    max_size=70,
).map(
    lambda drawn: [
        Rate(
            id=number,
            kind=kind,
            # a threshold's points, 0 among them (withdrawn); an earn's or promo's rate
            value=Decimal(number % 3 * 20) if kind == "threshold" else Decimal(value),
            **_window(hour, hours),
            partner_id="aroma" if kind == "threshold" else partner,
            category=None if kind == "threshold" else category,
            min_amount=Decimal(number % 4 * 10) if kind == "threshold" else None,
        )
        for number, (kind, partner, category, hour, hours, value) in enumerate(drawn, start=1)
    ]
)


def _earned(versions, partner_id, category, amount, at):
    """The points and rate ids the purchase earns, or the refusal's kind and message."""
    try:
        return earning.points_for_purchase(versions, partner_id, category, amount, at)
    except (Invalid, NoRate) as refused:
        return type(refused), str(refused)


@settings(max_examples=400)
@given(
    purchase_versions,
    st.lists(
        st.tuples(
            st.sampled_from(("aroma", "skyair")),
            st.none() | categories | st.just("bakery"),
            st.integers(-10, 1100).map(lambda hour: JAN + hour * HOUR),
            st.sampled_from((Decimal(5), Decimal(15), Decimal("25.50"), Decimal(60))),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_a_purchase_s_rates_choose_as_every_version_does(rates, purchases):
    # one catalog asked for every purchase in turn: each answer its own
    book = _catalog(rates)
    for partner_id, category, at, amount in purchases:
        asked = book.rates_for_purchase(partner_id, category, at)

        assert list(asked) == sorted(asked, key=lambda rate: rate.id)
        for kind in ("earn", "promo"):
            assert rules.in_force(
                asked, kind, at, partner_id=partner_id, category=category
            ) == rules.in_force(rates, kind, at, partner_id=partner_id, category=category)
        assert rules.threshold_reached(asked, at, partner_id, amount) == rules.threshold_reached(
            rates, at, partner_id, amount
        )
        assert _earned(asked, partner_id, category, amount, at) == _earned(
            rates, partner_id, category, amount, at
        )


def test_a_purchase_is_looked_up_among_its_own_category_s_versions_only(monkeypatch):
    # a supermarket's 3,000 categories, each with its own earn rate and weekly promos
    # over; a purchase's lookup is given its own category's versions and the
    # category-less ones, not every category's (15 ms a posting at 10,000 categories)
    versions = [Rate(id=1, kind="earn", value=Decimal(1), effective_from=JAN, partner_id="aroma")]
    for number in range(3000):
        versions.append(
            Rate(
                id=len(versions) + 1,
                kind="earn",
                value=Decimal(2),
                effective_from=JAN,
                partner_id="aroma",
                category=f"Aisle {number}",
            )
        )
        versions.append(
            Rate(
                id=len(versions) + 1,
                kind="promo",
                value=Decimal(2),
                effective_from=JAN + number % 50 * 24 * HOUR,
                effective_to=JAN + (number % 50 + 7) * 24 * HOUR,
                partner_id="aroma",
                category=f"Aisle {number}",
            )
        )
    book = _catalog(versions)
    at = JAN + 200 * 24 * HOUR  # every promo over
    asked = book.rates_for_purchase("aroma", " AISLE 1717", at)
    assert [rate.id for rate in asked] == [1, 2 + 2 * 1717]  # the category-less, aisle 1717's
    assert book.rates_for_purchase("aroma", "bakery", at) == (versions[0],)
