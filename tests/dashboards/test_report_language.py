"""The reports' catalogues: the same message ids in Kazakh, Russian and English, none left
untranslated, every text the renderers show among them, and placeholders kept intact."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file

from application.localisation import messages
from application.report_model import METRICS, QUANTITY_TITLES
from application.reports import CHART_LABELS
from dashboards.reports.language import DOMAIN, LANGUAGES, ReportText, pick_language

RENDERERS = Path(__file__).resolve().parents[2] / "dashboards" / "reports"


def catalogue(lang: str) -> dict[str, str]:
    return messages(lang, DOMAIN)


def shown_texts() -> set[str]:
    """Every message id the renderers translate: ``t("...")`` and ``N_("...")`` calls, and the
    labels of the report model they pass through ``t``."""
    found: set[str] = set()
    for source in sorted(RENDERERS.glob("*.py")):
        for _, message, _, _ in extract_from_file(
            "python", source, keywords={"t": None, "N_": None}
        ):
            found.add(message if isinstance(message, str) else message[0])
    found |= {label for label, _, _ in METRICS.values()}
    found |= {unit for _, unit, scale in METRICS.values() if scale != 1.0 and unit != "%"}
    return found | set(QUANTITY_TITLES.values()) | set(CHART_LABELS.values())


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_language_has_the_same_message_ids() -> None:
    ids = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    assert ids["kk"] == ids["ru"] == ids["en"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_text_is_missing_or_untranslated(lang: str) -> None:
    messages = catalogue(lang)
    assert not (shown_texts() - set(messages)), "texts missing from the catalogue"
    empty = [msgid for msgid, text in messages.items() if not text.strip()]
    assert not empty
    for msgid, text in messages.items():
        assert fields(text) == fields(msgid), (lang, msgid)


@pytest.mark.parametrize("lang", ["kk", "ru"])
def test_kazakh_and_russian_are_translations(lang: str) -> None:
    messages = catalogue(lang)
    # Symbols (LEX,8h, A(8), Gas in Kazakh) read the same; whole sentences never do.
    sentences = [m for m in messages if len(m.split()) >= 4]
    assert sentences
    assert [m for m in sentences if messages[m] == m] == []
    cyrillic = sum(
        any("а" <= c.lower() <= "я" or c in "әғқңөұүһі" for c in t) for t in messages.values()
    )
    assert cyrillic > 0.8 * len(messages)


def test_numbers_take_the_locale_decimal_sign() -> None:
    assert ReportText("en").num(99.34) == "99.3"
    assert ReportText("ru").num(99.34) == "99,3"
    assert ReportText("kk").num(2.768) == "2,77"
    assert ReportText("ru")("Signatures") == "Подписи"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,kk;q=0.8", "ru"),
        ("en;q=0.2, kk-KZ", "kk"),
        ("de-DE", "en"),
        (None, "en"),
        ("fr;q=x, ru", "ru"),
    ],
)
def test_accept_language_picks_a_report_language(header: str | None, expected: str) -> None:
    assert pick_language(header, "en") == expected
