"""The language of a report: Kazakh, Russian or English, from the gettext catalogues
``locales/{kk,ru,en}/LC_MESSAGES/reports.po`` through the one loader
(``application.localisation``), with numbers written as the locale writes them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import cast

from babel.core import Locale
from babel.numbers import get_decimal_symbol

from application import localisation
from application.localisation import LocaleCode
from application.report_model import fmt

Language = LocaleCode
LANGUAGES: tuple[str, ...] = localisation.LOCALES
DOMAIN = "reports"


def pick_language(accept_language: str | None, default: Language) -> Language:
    """The best of ``LANGUAGES`` an ``Accept-Language`` header asks for, else ``default``."""
    found = localisation.negotiate(None, accept_language, default)
    return cast(Language, found)  # negotiate answers one of LOCALES


@dataclass(frozen=True)
class ReportText:
    """Texts and numbers of one report in one language: ``t("Shift {n}", n=2)``."""

    lang: str = "en"

    def __call__(self, message: str, /, **values: object) -> str:
        return localisation.gettext(self.lang, message, DOMAIN, **values)

    def num(self, value: float | None, digits: int = 3) -> str:
        """``value`` to ``digits`` significant figures, with the locale's decimal sign."""
        return fmt(value, digits).replace(".", self.decimal_sign)

    @functools.cached_property
    def decimal_sign(self) -> str:
        return str(get_decimal_symbol(Locale.parse(self.lang)))
