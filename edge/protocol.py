"""Moved to :mod:`vocabulary.protocol`, the layer every package may import. Kept so that
instrument drivers written against the old place (``from edge.protocol import Quantity``) still
import; Qorgau's own code imports ``vocabulary.protocol``."""

from vocabulary.protocol import *  # noqa: F403
from vocabulary.protocol import __all__ as __all__
