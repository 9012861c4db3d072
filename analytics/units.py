"""Unit conversions and physical constants, each with its reference.

Only physics lives here; regulatory numbers (limits, bands) are data in ``analytics/norms``.
"""

from __future__ import annotations

import numpy as np

from analytics.errors import InputError
from analytics.types import FloatArray

#: Reference duration of daily exposure, 8 h in seconds (ISO 9612:2009 §3.9; Directive
#: 2002/44/EC Annex A.1 and B.1; 29 CFR 1910.1000(d)(1)(i)).
REFERENCE_DURATION_S: float = 8.0 * 3600.0

#: Reference acceleration for vibration levels in dB, 1e-6 m/s² (ISO 1683:2015 Table 1;
#: GOST 31192.1 / 31319 use the same 1e-6 m/s² reference).
REFERENCE_ACCELERATION_M_S2: float = 1.0e-6

#: Molar volume of an ideal gas at 20 °C and 101.3 kPa, in L/mol (R·T/p = 8.314·293.15/101.3
#: = 24.06 L/mol; 24.04 is the value used by Russian/Kazakh hygienic practice, e.g.
#: GOST 12.1.005-88 App. 5 conversion ppm·M/24.04). DOMAIN.md §1 fixes 24.04.
MOLAR_VOLUME_20C_L_MOL: float = 24.04

#: Length of the short-term averaging window for ceiling comparisons, 15 min in seconds
#: (EN 689:2018 §3.1.x short-term exposure, 15 min reference period).
SHORT_TERM_WINDOW_S: float = 15.0 * 60.0


def ppm_to_mg_m3(conc_ppm: FloatArray | float, molar_mass_g_mol: float) -> FloatArray:
    """Convert a gas concentration from ppm (by volume) to mg/m³ at 20 °C, 101.3 kPa.

    ``C[mg/m³] = C[ppm] · M / 24.04`` (DOMAIN.md §1; GOST 12.1.005-88 Appendix 5).

    Raises:
        InputError: if the molar mass is not a positive finite number.
    """
    if not np.isfinite(molar_mass_g_mol) or molar_mass_g_mol <= 0.0:
        raise InputError(
            f"molar mass must be a positive number of g/mol, got {molar_mass_g_mol!r}; "
            "set 'molar_mass_g_mol' for the substance in the norms profile"
        )
    conc = np.asarray(conc_ppm, dtype=np.float64)
    return conc * (molar_mass_g_mol / MOLAR_VOLUME_20C_L_MOL)


def acceleration_db(a_m_s2: FloatArray | float) -> FloatArray:
    """Vibration acceleration level ``L = 20·lg(a / 1e-6 m/s²)`` in dB (ISO 1683:2015).

    Zero acceleration maps to ``-inf`` dB without a warning.
    """
    a = np.asarray(a_m_s2, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(a / REFERENCE_ACCELERATION_M_S2)


def acceleration_from_db(level_db: FloatArray | float) -> FloatArray:
    """Inverse of :func:`acceleration_db`: ``a = 1e-6 · 10^(L/20)`` m/s²."""
    return REFERENCE_ACCELERATION_M_S2 * np.power(10.0, np.asarray(level_db, np.float64) / 20.0)


__all__ = [
    "MOLAR_VOLUME_20C_L_MOL",
    "REFERENCE_ACCELERATION_M_S2",
    "REFERENCE_DURATION_S",
    "SHORT_TERM_WINDOW_S",
    "acceleration_db",
    "acceleration_from_db",
    "ppm_to_mg_m3",
]
