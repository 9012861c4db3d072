"""Norms profiles: limits, class bands, substances, В and ПР parameters as versioned data.

A profile is a TOML file under ``analytics/norms/`` (``default.toml`` ships) or any path. Every
number is a leaf ``{ value = ..., source = "<key>" }`` whose key is defined in ``[sources]``.
A profile may start with ``extends = "<name or path>"``: it is merged over its parent (tables
merge key by key, a leaf replaces the parent's leaf, ``[sources]`` merge). :func:`load_norms`
returns a frozen :class:`Norms` with typed fields and, in :attr:`Norms.sources`, the source
text of every leaf keyed by its dotted path.

Where each part lives: :mod:`.model` (the typed result), :mod:`.files` (files, built-in names,
``extends``), :mod:`.reader` (leaves and their sources), one module per section
(:mod:`.classification`, :mod:`.substances`, :mod:`.risk`, :mod:`.en689`, :mod:`.sampling`)
and :mod:`.loader`, which reads them in order.
"""

from analytics.norms.files import builtin_profiles
from analytics.norms.loader import load_norms
from analytics.norms.model import (
    PHYSICAL_RANGE_KEYS,
    En689Norms,
    Norms,
    RiskNorms,
    SamplingPolicy,
    Substance,
)

__all__ = [
    "PHYSICAL_RANGE_KEYS",
    "En689Norms",
    "Norms",
    "RiskNorms",
    "SamplingPolicy",
    "Substance",
    "builtin_profiles",
    "load_norms",
]
