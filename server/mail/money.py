"""Prices as integers of a currency's minor unit, read from and written as decimal text.

Most currencies have 2 decimals (19.99 USD is 1999 minor units); a few have 0 (JPY, KRW) or
3 (KWD, BHD). Amounts never pass through floats: text is read with `Decimal`, and text that
needs more decimals than the currency has is refused rather than rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["format_price", "minor_digits", "parse_price"]

_ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
     "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"]
)
_THREE_DECIMAL = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def minor_digits(currency: str) -> int:
    """Decimals of the currency's minor unit (ISO 4217; 2 unless known otherwise)."""
    code = currency.upper()
    if code in _ZERO_DECIMAL:
        return 0
    return 3 if code in _THREE_DECIMAL else 2


def parse_price(text: str, currency: str) -> int:
    """'19.99' in USD -> 1999. Raises ValueError for text that is not such an amount."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{text!r} is not a decimal amount")
    minor = amount.scaleb(minor_digits(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {currency.upper()} allows")
    return int(minor)


def format_price(minor: int | str, currency: str) -> str:
    """1999, 'USD' -> '$19.99'; 1999, 'CHF' -> '19.99 CHF'. Renders "" for a missing amount.

    Templates call this with event properties, which may arrive as text ('1999') or be
    undefined; a missing or non-numeric amount renders empty, like any undefined variable.
    """
    try:
        value = int(minor)
    except (TypeError, ValueError):
        return ""
    code = str(currency or "").upper()
    digits = minor_digits(code)
    sign, value = ("-" if value < 0 else ""), abs(value)
    whole, frac = divmod(value, 10**digits)
    number = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code}".rstrip()
