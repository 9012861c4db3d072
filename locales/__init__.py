"""The gettext catalogues (``<locale>/LC_MESSAGES/<domain>.po``) of Kazakh, Russian and
English, shipped as package data and read by :mod:`application.localisation`. No code here."""
