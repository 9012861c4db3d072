"""The language of a report: Kazakh, Russian or English, from the gettext catalogues
``locales/{kk,ru,en}/LC_MESSAGES/reports.po`` (compiled in memory when first used: no ``.mo``
files in the repository), with numbers written as the locale writes them."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from babel.core import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import get_decimal_symbol
from babel.support import Translations

from application.report_model import fmt

Language = Literal["kk", "ru", "en"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DOMAIN = "reports"
LOCALES_DIR = Path(__file__).resolve().parents[2] / "locales"


def catalogue_path(lang: str, domain: str = DOMAIN) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{domain}.po"


@functools.cache
def translations(lang: Language, domain: str = DOMAIN) -> Translations:
    """The catalogue of ``lang``, compiled from its ``.po`` file once per process."""
    with catalogue_path(lang, domain).open("rb") as po:
        catalogue = read_po(po, locale=lang, domain=domain)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled, domain=domain)


def pick_language(accept_language: str | None, default: Language) -> Language:
    """The first of ``LANGUAGES`` an ``Accept-Language`` header asks for, else ``default``."""
    if not accept_language:
        return default
    wanted = []
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        wanted.append((quality, tag.strip().lower().replace("_", "-")))
    for _quality, tag in sorted(wanted, key=lambda w: -w[0]):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return LANGUAGES[LANGUAGES.index(primary)]
    return default


@dataclass(frozen=True)
class ReportText:
    """Texts and numbers of one report in one language: ``t("Shift {n}", n=2)``."""

    lang: Language = "en"

    def __call__(self, message: str, /, **values: object) -> str:
        text = str(translations(self.lang).gettext(message))
        return text.format(**values) if values else text

    def num(self, value: float | None, digits: int = 3) -> str:
        """``value`` to ``digits`` significant figures, with the locale's decimal sign."""
        return fmt(value, digits).replace(".", self.decimal_sign)

    @functools.cached_property
    def decimal_sign(self) -> str:
        return str(get_decimal_symbol(Locale.parse(self.lang)))
