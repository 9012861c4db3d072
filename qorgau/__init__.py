"""Qorgau composition root: the ``qorgau`` command, settings and logging. No domain logic here."""

from vocabulary import __version__ as __version__
