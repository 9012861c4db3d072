"""Kazakh, Russian and English for everything people read: the one loader of the gettext
catalogues in ``locales/{kk,ru,en}/LC_MESSAGES/<domain>.po``.

The ``.po`` files are the only source. They are compiled in memory when first used (no ``.mo``
is committed or installed) for Python, and the same catalogues are exported as JSON for the
dashboard page (:func:`messages`). Domains: ``qorgau`` (the page and the API's messages),
``alerts`` (alert and notification texts), ``reports`` (shift reports).

Msgids are the English text; a ``{name}`` in a msgid is filled with :meth:`str.format` after
translation, so translators can move it. Locale formatting of numbers, dates and units is
Babel's, with the CLDR data of each locale.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from babel import Locale, negotiate_locale
from babel.dates import format_datetime as babel_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

# The languages the service speaks, in the order the page lists them.
LocaleCode = Literal["kk", "ru", "en"]
LOCALES: tuple[str, ...] = get_args(LocaleCode)
# Kazakh is the state language (Law "On languages", art. 4); Russian is official on an equal
# footing (art. 7). A deployment picks its default with QORGAU_DEFAULT_LOCALE.
DEFAULT_LOCALE: LocaleCode = "kk"
DEFAULT_DOMAIN = "qorgau"
# Each language's name in itself, for the language switcher (never translated).
AUTONYMS: Mapping[str, str] = {"kk": "Қазақша", "ru": "Русский", "en": "English"}


class UnknownLocaleError(ValueError):
    """A locale the service has no catalogues for."""


def _root() -> Traversable:
    return files("locales")


def _check(locale: str) -> str:
    if locale not in LOCALES:
        raise UnknownLocaleError(f"unknown locale {locale!r}; choose one of {', '.join(LOCALES)}")
    return locale


@cache
def catalogue(locale: str, domain: str = DEFAULT_DOMAIN) -> Catalog:
    """The parsed ``.po`` of ``locale`` and ``domain`` (an empty catalogue if it has none)."""
    path = _root() / _check(locale) / "LC_MESSAGES" / f"{domain}.po"
    if not path.is_file():
        return Catalog(locale=locale, domain=domain)
    with path.open("rb") as f:
        return read_po(f, locale=locale, domain=domain)


@cache
def translations(locale: str, domain: str = DEFAULT_DOMAIN) -> Translations:
    """gettext translations of ``locale`` and ``domain``, compiled from the ``.po`` in memory.
    A message missing from a catalogue falls back to its msgid (the English text)."""
    buffer = io.BytesIO()
    write_mo(buffer, catalogue(locale, domain))
    buffer.seek(0)
    return Translations(buffer, domain=domain)


def gettext(locale: str, message: str, domain: str = DEFAULT_DOMAIN, **params: Any) -> str:
    """``message`` in ``locale``, its ``{name}`` placeholders filled from ``params``."""
    text = translations(locale, domain).gettext(message)
    return text.format(**params) if params else text


@cache
def messages(locale: str, domain: str = DEFAULT_DOMAIN) -> dict[str, str]:
    """msgid → translation of one catalogue, as the page reads it (JSON)."""
    return {
        str(m.id): str(m.string)
        for m in catalogue(locale, domain)
        if m.id and isinstance(m.id, str) and m.string
    }


class Message(str):
    """A message for people: English as a ``str`` (logs, clients that ignore languages), with
    its msgid and parameters kept so that it can be given in the reader's language."""

    msgid: str
    params: dict[str, Any]
    domain: str

    def __new__(cls, msgid: str, domain: str = DEFAULT_DOMAIN, **params: Any) -> Message:
        made = super().__new__(cls, msgid.format(**params) if params else msgid)
        made.msgid = msgid
        made.params = params
        made.domain = domain
        return made

    def in_locale(self, locale: str) -> str:
        params = {
            k: v.in_locale(locale) if isinstance(v, Message) else v for k, v in self.params.items()
        }
        return gettext(locale, self.msgid, self.domain, **params)


def localised(text: str, locale: str) -> str:
    """``text`` in ``locale``: a :class:`Message`, or a plain string that is itself a msgid of
    the ``qorgau`` catalogue; any other text unchanged."""
    if isinstance(text, Message):
        return text.in_locale(locale)
    return translations(locale, DEFAULT_DOMAIN).gettext(text)


def negotiate(
    preference: str | None, accept_language: str | None, default: str = DEFAULT_LOCALE
) -> str:
    """The locale to answer in: the person's stored preference if the service speaks it, then
    the best match of an ``Accept-Language`` header (``ru-RU,ru;q=0.9,kk;q=0.8``), else
    ``default``."""
    if preference in LOCALES:
        return preference
    wanted = _accept_language(accept_language or "")
    found = negotiate_locale(wanted, list(LOCALES), sep="-")
    return found if found in LOCALES else _check(default)


def _accept_language(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first (q=0 dropped, bad parts skipped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:50]):
        tag, _, rest = part.strip().partition(";")
        tag = tag.strip()
        q = 1.0
        if rest.strip().startswith("q="):
            try:
                q = float(rest.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and q > 0:
            weighted.append((-q, position, tag.lower()))
    tags = [tag for _, _, tag in sorted(weighted)]
    # "ru-RU" alone should still find "ru": add each tag's language after the full tags.
    return tags + [t.split("-")[0] for t in tags if "-" in t]


# ------------------------------------------------------------------ formatting

# Unit codes as stored (ASCII) → the symbol as typeset in English; the catalogues translate
# the symbol (мг/м³, м/с², дБА).
UNIT_SYMBOLS: Mapping[str, str] = {
    "mg/m3": "mg/m³",
    "m/s2": "m/s²",
    "dB(A)": "dB(A)",
    "dBA": "dB(A)",
    "dB(C)": "dB(C)",
    "dBC": "dB(C)",
    "ppm": "ppm",
    "%": "%",
    "°C": "°C",
}


def unit_symbol(unit: str, locale: str) -> str:
    """A unit as people of ``locale`` write it: ``mg/m3`` → ``mg/m³`` / ``мг/м³``."""
    symbol = UNIT_SYMBOLS.get(unit, unit)
    return gettext(locale, symbol) if symbol in messages("en") else symbol


def format_number(value: float, locale: str, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits in the locale's notation (1 234,5 / 1,234.5)."""
    if value == 0:
        return format_decimal(0, locale=Locale.parse(_check(locale)))
    magnitude = int(f"{abs(value):e}".split("e")[1])
    decimals = max(0, min(4, digits - 1 - magnitude))
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(round(value, decimals), format=pattern, locale=Locale.parse(locale))


def format_quantity(value: float, unit: str, locale: str, digits: int = 3) -> str:
    """A value with its unit, e.g. ``2,5 мг/м³``."""
    return f"{format_number(value, locale, digits)}\N{NO-BREAK SPACE}{unit_symbol(unit, locale)}"


def format_time(moment: datetime, zone: str, locale: str, *, with_date: bool = True) -> str:
    """A moment in ``zone``, always with the zone named (people compare times across sites)."""
    if moment.tzinfo is None:
        raise ValueError("a moment to show people needs its time zone")
    pattern = "d MMM y, HH:mm zzzz" if with_date else "HH:mm zzzz"
    return babel_datetime(
        moment, pattern, tzinfo=ZoneInfo(zone), locale=Locale.parse(_check(locale))
    )


def page_formats(locale: str) -> dict[str, Any]:
    """The CLDR data the page formats numbers and dates with, from Babel: browsers differ in
    the locales they carry (Chromium knows ``kk`` by name only: "1,234.5", "2026 M12 3")."""
    data = Locale.parse(_check(locale))
    symbols = data.number_symbols["latn"]
    return {
        "decimal": symbols["decimal"],
        "group": symbols["group"],
        "months": [data.months["format"]["abbreviated"][m] for m in range(1, 13)],
        "date": data.date_formats["medium"].pattern,  # with the year: "d MMM y 'г'."
        "day_month": data.datetime_skeletons["MMMd"].pattern,  # "d MMM"
    }
