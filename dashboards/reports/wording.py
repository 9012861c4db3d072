"""What every report format says the same way, in the report's language: the headline class,
status and alert words, how each quantity was measured and computed, the signature block.

Strings passed through ``N_`` are message ids of the ``reports`` catalogue, translated where
they are shown (``t(message)``); ``tests/dashboards/test_report_language.py`` checks that every
one is in all three catalogues."""

from __future__ import annotations

from collections.abc import Mapping

from application.report_model import ShiftReport
from dashboards.reports.language import ReportText


def N_(message: str) -> str:  # noqa: N802 (the gettext convention for "translate later")
    return message


# How a quantity was measured and computed (the method section of the report).
METHODS: Mapping[str, str] = {
    "noise": N_(
        "Noise: A-weighted equivalent levels LAeq; daily exposure LEX,8h = 10·lg(Σ tᵢ·10^(Lᵢ/10) "
        "/ 8 h), every sample counted (ISO 9612); LCpeak is the highest C-weighted peak."
    ),
    "vib_hav": N_(
        "Hand-arm vibration: frequency-weighted r.m.s. acceleration a_hv (vector sum of three "
        "axes); A(8) = √(Σ aᵢ²·tᵢ / 8 h) (EN ISO 5349-1); level in dB re 10⁻⁶ m/s²."
    ),
    "vib_wbv": N_(
        "Whole-body vibration: frequency-weighted r.m.s. acceleration per axis with k = 1.4 for X "
        "and Y and 1.0 for Z; A(8) per axis, the worse axis counts (ISO 2631-1)."
    ),
    "gas": N_(
        "Gases and vapours: concentrations in mg/m³ (ppm converted at 20 °C and 101.3 kPa); 8-h "
        "TWA = Σ Cᵢ·tᵢ / 8 h against ПДК_сс, the highest rolling 15-min mean against ПДК_max; "
        "K = C / ПДК (EN 689)."
    ),
    "dust": N_(
        "Dust (aerosols of fibrogenic action): mass concentration in mg/m³; 8-h TWA against ПДК_сс."
    ),
}
COVERAGE_METHOD = N_(
    "Coverage is the measured part of the declared shift. Unmeasured time counts as missing "
    "data, not as silence: an incomplete shift is classed on the larger of the measured and the "
    "projected value, and a shift below the norms' coverage minimum is provisional."
)

STATUS = {"running": N_("running"), "provisional": N_("provisional"), "final": N_("final")}
SEVERITY = {
    "info": N_("info"),
    "low": N_("low"),
    "medium": N_("medium"),
    "high": N_("high"),
    "critical": N_("critical"),
}
ALERT_STATE = {"open": N_("open"), "acknowledged": N_("acknowledged"), "resolved": N_("resolved")}
LINE_KINDS = {
    "action": N_("action level"),
    "limit": N_("limit"),
    "ceiling": N_("ceiling"),
    "floor": N_("alarm floor"),
}
SOURCE = {"measured": N_("measured"), "entered": N_("entered")}

# The signature block: who signs what, with a line each for name, signature and date.
SIGNATURES = (
    N_("Measurements made by (name, position)"),
    N_("Report checked by, occupational safety (name, position)"),
    N_("Received by, employer's representative (name, position)"),
)
SIGNATURE_FIELDS = (N_("Signature"), N_("Date"))


def signature_fields(t: ReportText) -> str:
    """The blanks beside each signatory: "Signature ____________    Date ____________"."""
    return "    ".join(f"{t(name)} ____________" for name in SIGNATURE_FIELDS)


def method_key(quantity: str) -> str:
    if quantity.startswith("noise"):
        return "noise"
    if quantity.startswith("vib_wbv"):
        return "vib_wbv"
    return quantity


def methods_of(report: ShiftReport, t: ReportText) -> list[str]:
    keys = dict.fromkeys(method_key(s.quantity) for s in report.sensors)
    return [t(METHODS[k]) for k in keys if k in METHODS] + [t(COVERAGE_METHOD)]


def word(table: Mapping[str, str], value: str | None, t: ReportText) -> str:
    """A status, severity or state in the report's language (unknown words as they are)."""
    if value is None:
        return ""
    return t(table[value]) if value in table else value


def headline_class(report: ShiftReport, t: ReportText) -> str:
    """The class as a headline may print it: never bare when the data were too few."""
    if report.working_class is None:
        return "—"
    if report.insufficient_data:
        return t("{cls} (provisional: not enough data)", cls=report.working_class)
    return report.working_class


def level_name(report: ShiftReport, t: ReportText) -> str:
    risk = report.risk
    if risk is None:
        return ""
    return risk.level_names.get(t.lang, risk.level_name)
