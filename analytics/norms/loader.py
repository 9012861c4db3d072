"""One profile, read section by section into a frozen :class:`Norms`.

The sections are read in a fixed order, which is also the order of :attr:`Norms.sources`
(``qorgau norms show`` and the reports list the sources in it).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from analytics.norms.classification import (
    read_bands,
    read_combination_cap,
    read_harmfulness,
    read_three_at_3_1_gives,
    require_bands,
)
from analytics.norms.en689 import read_en689
from analytics.norms.files import read_profile
from analytics.norms.model import Norms
from analytics.norms.reader import LeafReader
from analytics.norms.risk import read_risk
from analytics.norms.sampling import read_physical_ranges, read_sampling
from analytics.norms.substances import read_substances


def load_norms(name_or_path: str | Path = "default") -> Norms:
    """Load a norms profile by built-in name (``"default"``) or by path to a TOML file.

    Raises:
        NormsError: when the file is missing, malformed, cites an undefined source, or lacks a
            required value.
    """
    data, chain = read_profile(name_or_path)
    label = chain[-1]
    r = LeafReader(data, label)
    prof = data.get("profile", {})

    bands = read_bands(r)
    substances = read_substances(r)
    harm = read_harmfulness(r)
    risk = read_risk(r)
    en = read_en689(r)
    sampling = read_sampling(r)
    require_bands(bands, label)
    ranges = read_physical_ranges(r, label)
    cap = read_combination_cap(r)
    return Norms(
        name=str(prof.get("name", label)),
        version=str(prof.get("version", "")),
        description=str(prof.get("description", "")),
        chain=chain,
        sampling=sampling,
        dose_criterion_db=r.number("noise.dose_criterion_db"),
        k_xy=r.number("vibration.k_xy"),
        k_z=r.number("vibration.k_z"),
        bands=MappingProxyType(bands),
        dust_fibrogenic_threshold_mg_m3=r.number("dust.fibrogenic_threshold_mg_m3"),
        combination_cap=cap,
        three_at_3_1_gives=read_three_at_3_1_gives(r),
        harmfulness=harm,
        substances=MappingProxyType(substances),
        risk=risk,
        en689=en,
        sources=MappingProxyType(dict(r.sources)),
        physical_range=MappingProxyType(ranges),
    )


__all__ = ["load_norms"]
