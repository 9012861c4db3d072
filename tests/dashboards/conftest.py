"""The in-process API of tests/api (a fresh schema and an admin token) for the report tests."""

from tests.api.conftest import api

__all__ = ["api"]
