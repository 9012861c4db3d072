"""Moved to :mod:`vocabulary.backoff` (the layer every package may import); these names stay so
that code written against the old place keeps working. New code imports ``vocabulary.backoff``."""

from vocabulary.backoff import backoff_delay_s as backoff_delay_s
from vocabulary.backoff import supervise as supervise
