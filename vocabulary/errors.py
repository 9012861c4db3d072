"""The root of Qorgau's errors. Library errors (psycopg, MQTT) are translated once, at the
boundary where they are caught, with ``raise ... from exc``."""


class QorgauError(Exception):
    """Something Qorgau can explain to its user; the message says what to do."""


class ConfigurationError(QorgauError):
    """Settings that cannot work (bad URL, missing file, contradictory options)."""
