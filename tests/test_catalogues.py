"""The gettext catalogues of locales/ are complete: every domain has the same message ids in
Kazakh, Russian and English, no translation is empty, fuzzy or left in English, placeholders
survive translation, and every text the page, the map and the API show has its entry."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from analytics import load_norms
from analytics.norms import builtin_profiles
from application import localisation
from application.localisation import LOCALES, catalogue, messages, negotiate

ROOT = Path(__file__).resolve().parents[1]
LOCALES_DIR = ROOT / "locales"
STATIC = ROOT / "api" / "static"

# Msgids whose Kazakh and Russian text is rightly the same as the English: symbols of the
# regulations and standards (ПР, В, A(8), LEX,8h, the noise levels LAeq, LAmax, LCpeak) and
# texts that are placeholders only.
SAME_AS_ENGLISH = frozenset(
    {"ПР", "В (1–5)", "A(8)", "LEX,8h", "LAeq", "LAmax", "LCpeak", "{quantity}: {substance}"}
)
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def catalogue_problems(root: Path) -> Iterator[str]:
    """Everything wrong with the catalogues under ``root``, one sentence each."""
    domains = sorted({p.stem for p in root.glob("*/LC_MESSAGES/*.po")})
    for domain in domains:
        entries: dict[str, dict[str, str]] = {}
        for locale in LOCALES:
            path = root / locale / "LC_MESSAGES" / f"{domain}.po"
            if not path.is_file():
                yield f"{locale}: no catalogue {domain}.po"
                continue
            with path.open("rb") as f:
                parsed = read_po(f, locale=locale)
            entries[locale] = {}
            for m in parsed:
                if not m.id:
                    continue
                msgid, text = str(m.id), str(m.string or "")
                entries[locale][msgid] = text
                where = f"{locale}/{domain}.po: {msgid!r}"
                if not text.strip():
                    yield f"{where} has no translation"
                if m.fuzzy:
                    yield f"{where} is marked fuzzy"
                if locale != "en" and text == msgid and msgid not in SAME_AS_ENGLISH:
                    yield f"{where} is left in English"
                if text and set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(msgid)):
                    yield f"{where} changes the placeholders"
        every = set().union(*(set(e) for e in entries.values())) if entries else set()
        for locale, found in entries.items():
            for msgid in sorted(every - set(found)):
                yield f"{locale}/{domain}.po misses {msgid!r}"


def test_the_catalogues_are_complete_and_translated() -> None:
    problems = list(catalogue_problems(LOCALES_DIR))
    assert problems == []


def write_po(path: Path, entries: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in entries.items())
    path.write_text(f'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n{body}')


def test_the_check_finds_a_missing_key_an_empty_and_an_untranslated_string(
    tmp_path: Path,
) -> None:
    write_po(
        tmp_path / "en/LC_MESSAGES/x.po", {"Map": "Map", "Alerts": "Alerts", "{n} min": "{n} min"}
    )
    write_po(tmp_path / "ru/LC_MESSAGES/x.po", {"Map": "Карта", "Alerts": "", "{n} min": "{n} мин"})
    write_po(tmp_path / "kk/LC_MESSAGES/x.po", {"Map": "Map", "{n} min": "{m} мин"})
    assert sorted(catalogue_problems(tmp_path)) == sorted(
        [
            "ru/x.po: 'Alerts' has no translation",
            "kk/x.po: 'Map' is left in English",
            "kk/x.po: '{n} min' changes the placeholders",
            "kk/x.po misses 'Alerts'",
        ]
    )


def page_msgids() -> set[str]:
    """Every msgid the page uses: t(), tn() and N_() literals of the script, data-i18n texts
    of the HTML, region names of the map's outlines."""
    script = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    found = {
        json.loads(f'"{m}"') for m in re.findall(r'\b(?:t|tn|N_)\(\s*"((?:[^"\\]|\\.)*)"', script)
    }
    found |= set(re.findall(r'data-i18n="([^"]+)"', (STATIC / "index.html").read_text()))
    outlines = json.loads((STATIC / "map" / "kz-regions.json").read_text(encoding="utf-8"))
    found |= {r["name"] for r in outlines["regions"]}
    return found


def python_msgids() -> set[str]:
    """Msgids of ``Message("…")`` in the Python sources (the API's messages for people)."""
    found: set[str] = set()
    for package in ("api", "application", "store", "ingest", "dashboards", "qorgau"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "Message"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and not any(k.arg == "domain" for k in node.keywords)
                ):
                    found.add(node.args[0].value)
    return found


def substance_names() -> set[str]:
    return {s.name for p in builtin_profiles() for s in load_norms(p).substances.values()}


@pytest.mark.parametrize(
    ("what", "msgids"),
    [
        ("the page", page_msgids()),
        ("the API's messages", python_msgids()),
        ("substances of the norms", substance_names()),
        ("unit symbols", set(localisation.UNIT_SYMBOLS.values()) - {"%", "°C"}),
    ],
)
def test_every_text_shown_has_a_catalogue_entry(what: str, msgids: set[str]) -> None:
    assert msgids, f"found no msgids of {what}: the extraction is broken"
    missing = sorted(msgids - set(messages("en")))
    assert missing == [], f"{what}: not in locales/*/LC_MESSAGES/qorgau.po"


def test_the_python_catalogues_are_the_po_files() -> None:
    for locale in LOCALES:
        assert len(catalogue(locale)) == len(messages(locale))
    assert localisation.gettext("ru", "Sign out") == messages("ru")["Sign out"]
    assert localisation.gettext("kk", "Sign out") != localisation.gettext("ru", "Sign out")
    assert not list(LOCALES_DIR.rglob("*.mo")), ".mo files are built in memory, never committed"


@pytest.mark.parametrize(
    ("preference", "header", "expected"),
    [
        (None, "ru-RU,ru;q=0.9,kk;q=0.8", "ru"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "kk-KZ", "kk"),
        (None, "de-DE,kk;q=0.5,ru;q=0.4", "kk"),
        (None, "ru;q=0.2,kk;q=0.8", "kk"),
        (None, "ru;q=0,en", "en"),
        (None, "de-DE", "ru"),  # nothing spoken: the deployment's default
        (None, None, "ru"),
        (None, "ru;q=x, ,;;", "ru"),
        ("en", "ru-RU,ru", "en"),  # the person's choice first
        ("fr", "kk", "kk"),  # a preference not spoken is ignored
    ],
)
def test_negotiation(preference: str | None, header: str | None, expected: str) -> None:
    assert negotiate(preference, header, default="ru") == expected


def test_locale_formatting_follows_the_locale() -> None:
    en = localisation.format_number(1234.5, "en", digits=5)
    ru = localisation.format_number(1234.5, "ru", digits=5)
    assert en != ru
    assert "," in ru  # decimal comma
    assert "." not in ru
    assert localisation.format_quantity(2.5, "mg/m3", "en").endswith("mg/m³")
    assert localisation.format_quantity(2.5, "m/s2", "ru").endswith(messages("ru")["m/s²"])
    assert localisation.unit_symbol("dB(A)", "kk") == messages("kk")["dB(A)"]
    moment = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # 08:00 in Almaty (UTC+5)
    shown = {loc: localisation.format_time(moment, "Asia/Almaty", loc) for loc in LOCALES}
    assert len(set(shown.values())) == len(LOCALES)
    assert all("08:00" in text for text in shown.values())
    assert localisation.page_formats("ru")["months"][11] in shown["ru"]
    with pytest.raises(ValueError, match="time zone"):
        localisation.format_time(datetime(2026, 12, 3, 8, 0), "Asia/Almaty", "en")
