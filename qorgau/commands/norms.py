"""``qorgau norms show``: print a norms profile (limits, bands, substances, ПР data, sources)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics import Norms


def register(subparsers: Any) -> None:
    """Add the ``norms`` subcommand with ``show``."""
    p = subparsers.add_parser("norms", help="show norms profiles")
    sub = p.add_subparsers(title="actions", metavar="ACTION")
    show = sub.add_parser(
        "show",
        help="print a norms profile",
        description="Print a norms profile: class bands with units, substances with limits, "
        "В and ПР parameters, and the source of every value.",
    )
    show.add_argument("--norms", default="default", help="profile name or TOML path")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=handle_show)
    p.set_defaults(handler=lambda _args: (p.print_help(), 2)[1])


def norms_to_dict(n: Norms) -> dict[str, Any]:
    """A JSON-ready view of a profile."""
    return {
        "name": n.name,
        "version": n.version,
        "description": n.description,
        "chain": list(n.chain),
        "sampling": {
            "max_gap_s": n.sampling.max_gap_s,
            "fallback_interval_s": n.sampling.fallback_interval_s,
            "min_coverage": n.sampling.min_coverage,
            "min_window_fraction": n.sampling.min_window_fraction,
        },
        "noise": {"dose_criterion_db": n.dose_criterion_db},
        "vibration": {"k_xy": n.k_xy, "k_z": n.k_z},
        "physical_range": {k: list(v) for k, v in n.physical_range.items()},
        "bands": {
            k: {
                "metric": b.metric,
                "unit": b.unit,
                "upper": list(b.upper),
                "classes": [c.value for c in b.classes],
            }
            for k, b in n.bands.items()
        },
        "substances": {
            k: {
                "name": s.name,
                "kind": s.kind,
                "group": s.group,
                "molar_mass_g_mol": s.molar_mass_g_mol,
                "pdk_max_mg_m3": s.pdk_max_mg_m3,
                "pdk_ss_mg_m3": s.pdk_ss_mg_m3,
                "hazard_class": s.hazard_class,
            }
            for k, s in n.substances.items()
        },
        "combination": {"cap": n.combination_cap.value},
        "harmfulness_points": {c.value: p for c, p in n.harmfulness.points.items()},
        "risk": {
            "weights": {"B_T": n.risk.weight_bt, "Ob_SIZ": n.risk.weight_os, "Z": n.risk.weight_z},
            "level_thresholds": list(n.risk.level_thresholds),
            "level_names": list(n.risk.level_names),
            "level_names_ru": list(n.risk.level_names_ru),
            "level_names_kz": list(n.risk.level_names_kz),
            "protection_classes": list(n.risk.protection_classes),
            "tariff_coefficients": list(n.risk.tariff_coefficients),
            "activity_base_rate_pct": {str(k): v for k, v in n.risk.activity_base_rate_pct.items()},
            "ppe": {k: list(v) for k, v in n.risk.ppe.items()},
            "guarantees": [list(g) for g in n.risk.guarantees],
        },
        "en689": {
            "preliminary_fraction": {str(k): v for k, v in n.en689.preliminary_fraction.items()},
            "ut_table": {str(k): v for k, v in n.en689.ut_table.items()},
        },
        "sources": dict(n.sources),
    }


def _is_default(n: Norms, path: str) -> bool:
    return "[default" in n.sources.get(path, "")


def render(n: Norms) -> str:
    """Human-readable table with units."""
    lines = [f"norms profile {n.name} {n.version}: {n.description}", ""]
    lines.append("class bands (upper-inclusive edges)")
    for k, b in n.bands.items():
        edges = "  ".join(f"{c.value}≤{u:g}" for c, u in zip(b.classes, b.upper, strict=False))
        lines.append(
            f"  {k:<26} {b.metric:<10} [{b.unit}]  {edges}  {b.classes[-1].value}>{b.upper[-1]:g}"
        )
    lines += [
        "",
        f"  {'substance':<14} {'kind':<5} {'group':<7} {'M g/mol':>8} "
        f"{'ПДК_max mg/m³':>14} {'ПДК_сс mg/m³':>13}",
    ]
    for s in n.substances.values():
        mm = "-" if s.molar_mass_g_mol is None else f"{s.molar_mass_g_mol:.3f}"
        pmax = "-" if s.pdk_max_mg_m3 is None else f"{s.pdk_max_mg_m3:g}"
        pss = "-" if s.pdk_ss_mg_m3 is None else f"{s.pdk_ss_mg_m3:g}"
        lines.append(f"  {s.id:<14} {s.kind:<5} {s.group:<7} {mm:>8} {pmax:>14} {pss:>13}")
    r = n.risk
    lines += [
        "",
        f"noise dose criterion {n.dose_criterion_db:g} dB(A); combination cap "
        f"{n.combination_cap.value}; min coverage {n.sampling.min_coverage:.0%}; "
        f"max gap {n.sampling.max_gap_s:g} s; whole-body k X/Y {n.k_xy:g}, Z {n.k_z:g}",
        "physical range of a reading: "
        + ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in n.physical_range.items()),
        f"ПР = {r.weight_bt:g}·(В+Т)/2 + {r.weight_os:g}·(Об+СИЗ)/2 + {r.weight_z:g}·З; "
        f"level thresholds {list(r.level_thresholds)}",
        "level names: "
        + "; ".join(
            f"{i + 1}: {en} / {ru} / {kz}"
            for i, (en, ru, kz) in enumerate(
                zip(r.level_names, r.level_names_ru, r.level_names_kz, strict=True)
            )
        ),
        "tariff coefficients by level: "
        + ", ".join(f"{i + 1}: {c:g}" for i, c in enumerate(r.tariff_coefficients)),
        "base rates (% of payroll) by activity risk class (* = [default], not sourced): "
        + ", ".join(
            f"{k}: {v:g}{'*' if _is_default(n, f'risk.activity_base_rate_pct.{k}') else ''}"
            for k, v in sorted(r.activity_base_rate_pct.items())
        ),
        "",
        "sources:",
    ]
    seen: dict[str, list[str]] = {}
    for path, src in n.sources.items():
        seen.setdefault(src, []).append(path)
    for src, paths in seen.items():
        lines.append(f"  - {src}\n      for: {', '.join(paths)}")
    return "\n".join(lines)


def handle_show(args: argparse.Namespace) -> int:
    """Print the profile; exit 2 if it cannot be loaded."""
    from analytics import AnalyticsError, load_norms

    try:
        n = load_norms(args.norms)
    except AnalyticsError as exc:
        print(f"qorgau norms: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(norms_to_dict(n), ensure_ascii=False, indent=2))
    else:
        print(render(n))
    return 0
