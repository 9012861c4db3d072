"""Errors of the numeric core.

All derive from :class:`AnalyticsError`, itself a :class:`ValueError`, so callers that only know
the standard library still catch them. The application's root error lives outside ``analytics``.
"""

from __future__ import annotations


class AnalyticsError(ValueError):
    """Root of every error raised by ``analytics``."""


class InputError(AnalyticsError):
    """An array or parameter handed to a function is malformed (shape, sign, order, NaN)."""


class NormsError(AnalyticsError):
    """A norms profile is missing, malformed, or lacks a value that the computation needs."""


__all__ = ["AnalyticsError", "InputError", "NormsError"]
