from __future__ import annotations

import pytest

from analytics import Norms, load_norms


@pytest.fixture(scope="session")
def norms() -> Norms:
    return load_norms("default")
