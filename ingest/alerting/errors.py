"""The errors the alert engine's services survive rather than die of."""

from __future__ import annotations

import psycopg

from store.connection import DatabaseError

#: What a database that went away raises (a bad statement raises ``psycopg.Error`` too: callers
#: that must tell them apart ask ``store.connection.is_connection_problem``).
DB_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, OSError, DatabaseError)

#: What an HTTP library may raise from deep inside a request besides its own errors (which
#: ``post_signed`` turns into ``DeliveryError``): an encoding it cannot do (``UnicodeError`` from
#: idna is a ``ValueError``), a value it cannot send, a client used after it closed.
HTTP_LIBRARY_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, RuntimeError, OSError)
