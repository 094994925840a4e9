"""Exact money: Decimal amounts, ISO 4217 exponents, half-even rounding.

SPEC §3: money is never float; an amount may not carry more decimals than its
currency has; rounding happens once per line, at the minor unit, half-to-even.

Arithmetic on Decimals rounds to the context's significant digits, 28 by
Python's default: too few here. 10¹² points × a rate with twelve decimals has
34 digits, so a pair line could be rounded before its one half-even rounding,
and a net converted into a currency worth 10⁻¹² of the base (29 digits) could
not be rounded at all. Importing this module sets every Decimal context of the
process, this thread's and the template of threads started later, to
:data:`PRECISION` digits, which hold any sum, product or quotient of values
within the API's limits.
"""

import decimal
import functools
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from babel import core, numbers

from coalition.domain.errors import Invalid

#: The largest values a request may carry, which :data:`PRECISION` is worked out from:
#: points in a transaction, an amount (a purchase, a threshold's minimum), a rate's value.
MAX_POINTS = 10**12
MAX_AMOUNT = 10**15
MAX_RATE = 10**9
PRECISION = 60
decimal.DefaultContext.prec = PRECISION
decimal.getcontext().prec = PRECISION


def is_currency(code: str) -> bool:
    """True for an ISO 4217 code that is or was legal tender somewhere (Babel's data).

    Babel knows ~300 codes; no business takes payment in many of them: metals
    (XAU), funds codes (CLF), XXX ("no currency"), whose minor units ISO
    leaves undefined. A withdrawn currency stays accepted, so a partner that
    joined while its currency was in use can still be given fx rates.
    """
    return code in _legal_tender()


# ISO 4217 codes of no one's money: metals, bond-market and drawing-right units,
# funds codes, the test code and "no currency". Babel knows them; they are refused
# as such, where another code Babel lacks in any territory (CNH) is no ISO code.
NOT_MONEY = frozenset(
    {
        *("XAU", "XAG", "XPD", "XPT"),  # metals
        *("XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA"),  # units of account
        *("BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW"),  # funds codes
        *("XTS", "XXX"),  # testing, no currency
    }
)
# in use, and in ISO 4217, but in no territory of Babel's CLDR data yet:
# Venezuela's digital bolívar (2021)
IN_USE_SINCE_CLDR = frozenset({"VED"})


@functools.cache
def _legal_tender() -> frozenset[str]:
    territories = core.get_global("territory_currencies")
    ever = {"start_date": date(1, 1, 1), "end_date": date(9999, 12, 31)}
    return IN_USE_SINCE_CLDR | frozenset(
        code
        for territory in territories
        for code in numbers.get_territory_currencies(territory, **ever)
    )


# ISO 4217's exponent where CLDR's digits, which Babel gives, differ. CLDR
# records the decimals people use (Hungary's fillér are long gone: HUF 0),
# ISO the currency's minor unit, which SPEC §3 names and banks settle in
# (HUF 2). These are the codes in use whose two figures differ, then five
# withdrawn ones (MRO, SLL, STD, ZMK, ZWD: 2 in ISO's historic list); other
# withdrawn codes keep CLDR's digits. tests/unit/test_money.py checks the
# codes in use against ISO list one.
ISO_4217_EXPONENTS = {
    "AFN": 2, "ALL": 2, "COP": 2, "HUF": 2, "IDR": 2, "IQD": 3, "IRR": 2, "KPW": 2,
    "LAK": 2, "LBP": 2, "MGA": 2, "MMK": 2, "SOS": 2, "SYP": 2, "YER": 2,
    "MRO": 2, "SLL": 2, "STD": 2, "ZMK": 2, "ZWD": 2,
}  # fmt: skip


@functools.lru_cache(maxsize=1024)
def exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit, ISO 4217's (JPY 0, EUR 2, KWD 3).

    Kept per code (a few hundred exist; the bound only caps what unchecked input could
    fill): Babel's lookup costs a few microseconds, and a close rounds every pair line
    at the base currency's unit, a million lines where a thousand partners all trade.
    """
    return ISO_4217_EXPONENTS.get(currency, numbers.get_currency_precision(currency))


@functools.lru_cache(maxsize=1024)
def minor_unit(currency: str) -> Decimal:
    """The currency's smallest amount (``0.01`` EUR, ``1`` JPY), kept as :func:`exponent`."""
    return Decimal(1).scaleb(-exponent(currency))


def round_half_even(value: Decimal, currency: str) -> Decimal:
    """Round once, at the currency's minor unit, half to even; never a "-0.00"."""
    return unsigned_zero(value.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN))


def zero(currency: str) -> Decimal:
    """Nothing, written at the currency's minor unit: ``0.00`` EUR, ``0`` JPY."""
    return Decimal(0).quantize(minor_unit(currency))


RATIO_PLACES = Decimal("0.0001")  # a share, as 12.34 %


def ratio(
    numerator: int | Decimal, denominator: int | Decimal, places: Decimal = RATIO_PLACES
) -> Decimal | None:
    """numerator ÷ denominator to ``places`` (4 decimals), half-even, never -0; None when
    there is nothing to divide by."""
    if not denominator:
        return None
    quotient = Decimal(numerator) / Decimal(denominator)
    return unsigned_zero(quotient.quantize(places, rounding=ROUND_HALF_EVEN))


def unsigned_zero(value: Decimal) -> Decimal:
    """``value``, with a zero that rounding left negative ("-0.00") made plain."""
    return value.copy_abs() if value.is_zero() else value


def text(value: Decimal | None) -> str | None:
    """A figure as JSON carries money and ratios: a string such as ``"83.25"`` (SPEC §3),
    exactly as computed; None stays null."""
    return None if value is None else str(value)


def check_currency(code: str, field: str = "currency") -> None:
    """Reject a code that is not a currency a business takes payment in (:func:`is_currency`)."""
    if is_currency(code):
        return
    if code in NOT_MONEY:
        raise Invalid(
            f"{code!r} is an ISO 4217 code but not a currency a business is paid in:"
            " metals, units of account, funds and test codes are refused",
            field=field,
        )
    raise Invalid(f"{code!r} is not an ISO 4217 currency", field=field)


def fits_minor_unit(amount: Decimal, currency: str) -> bool:
    """Whether the amount is a finite number with no more decimals than the currency has."""
    return amount.is_finite() and amount.as_tuple().exponent >= -exponent(currency)


def check_places(amount: Decimal, currency: str, field: str = "amount") -> None:
    """Reject an amount written with more decimals than the currency has.

    "350.001" RUB and "100.5" JPY are refused as written, not rounded: a
    partner's till must send what the customer paid.
    """
    if not fits_minor_unit(amount, currency):
        raise Invalid(
            f"{field} {amount} has more decimals than {currency} allows ({exponent(currency)})",
            field=field,
        )


def floor_points(value: Decimal) -> int:
    """Whole points, rounding down: a member never gets a fraction of a point."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def plain(value: Decimal) -> str:
    """A decimal by its value alone, without trailing zeros ("350.00" → "350"): what a
    request means, for its fingerprint."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def as_written(rate: Decimal) -> str:
    """A rate with the decimals it was written with ("0.0110"), never in exponent form."""
    return format(rate, "f")
