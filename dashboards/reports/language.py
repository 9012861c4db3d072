"""The language of a report: Kazakh, Russian or English, from the gettext catalogues
``locales/{kk,ru,en}/LC_MESSAGES/reports.po`` through the one loader
(``application.localisation``), with numbers written as the locale writes them."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from babel.core import Locale
from babel.numbers import get_decimal_symbol

from application import localisation

# The language of a report, and how a request chooses it, are the API's business too.
from application.report_files import LANGUAGES, Language, pick_language
from application.report_model import fmt

DOMAIN = "reports"

__all__ = ["DOMAIN", "LANGUAGES", "Language", "ReportText", "pick_language"]


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
