"""Moved to :mod:`vocabulary.errors` (the layer every package may import); these names stay so
that code written against the old place keeps working. New code imports ``vocabulary.errors``."""

from vocabulary.errors import ConfigurationError as ConfigurationError
from vocabulary.errors import QorgauError as QorgauError
