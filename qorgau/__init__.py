"""Qorgau composition root: the ``qorgau`` command, settings and logging. No domain logic here."""

__version__ = "0.1.0"
