"""Measured quantities and the units each may be reported in."""

from __future__ import annotations

from enum import StrEnum


class Quantity(StrEnum):
    NOISE_LAEQ = "noise_laeq"  # A-weighted equivalent level over the sample period, dB(A)
    NOISE_LAMAX = "noise_lamax"  # A-weighted maximum (fast) level, dB(A)
    NOISE_LCPEAK = "noise_lcpeak"  # C-weighted peak level, dB(C)
    VIB_HAV = "vib_hav"  # hand-arm vibration total value a_hv, m/s²
    VIB_WBV_X = "vib_wbv_x"  # whole-body weighted r.m.s. acceleration per axis, m/s²
    VIB_WBV_Y = "vib_wbv_y"
    VIB_WBV_Z = "vib_wbv_z"
    GAS = "gas"  # gas or vapour concentration; substance required
    DUST = "dust"  # aerosol mass concentration; substance (dust id) required


# The first unit of each tuple is the canonical spelling stored in the registry.
UNITS_BY_QUANTITY: dict[Quantity, tuple[str, ...]] = {
    Quantity.NOISE_LAEQ: ("dB(A)",),
    Quantity.NOISE_LAMAX: ("dB(A)",),
    Quantity.NOISE_LCPEAK: ("dB(C)",),
    Quantity.VIB_HAV: ("m/s2",),
    Quantity.VIB_WBV_X: ("m/s2",),
    Quantity.VIB_WBV_Y: ("m/s2",),
    Quantity.VIB_WBV_Z: ("m/s2",),
    # %vol: oxygen and methane by volume (four-gas detectors, mine monitoring); %LEL: any
    # combustible gas as a percentage of its lower explosive limit.
    Quantity.GAS: ("mg/m3", "ppm", "%LEL", "%vol"),
    Quantity.DUST: ("mg/m3",),
}

QUANTITIES_WITH_SUBSTANCE: frozenset[Quantity] = frozenset({Quantity.GAS, Quantity.DUST})

_UNIT_ALIASES: dict[str, str] = {
    "dba": "dB(A)",
    "db(a)": "dB(A)",
    "dbc": "dB(C)",
    "db(c)": "dB(C)",
    "m/s2": "m/s2",
    "m/s²": "m/s2",
    "m/s^2": "m/s2",
    "mg/m3": "mg/m3",
    "mg/m³": "mg/m3",
    "mg/m^3": "mg/m3",
    "ppm": "ppm",
    "%lel": "%LEL",
    "%vol": "%vol",
    "% vol": "%vol",
    "vol%": "%vol",
    "%v/v": "%vol",
}


def normalise_unit(unit: str) -> str:
    """Canonical spelling of a unit (``dBA`` → ``dB(A)``, ``m/s²`` → ``m/s2``); unknown units
    are returned unchanged so that validation can name them."""
    return _UNIT_ALIASES.get(unit.strip().lower(), unit.strip())
