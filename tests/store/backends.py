"""The store backends a test runs on (see ``conftest.py``'s ``backend`` and ``url`` fixtures)."""

from __future__ import annotations

import pytest

#: Every store test runs once per backend; the PostgreSQL run carries the ``pg`` marker.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]

#: Decorators for the few tests about one backend's own settings.
only_sqlite = pytest.mark.parametrize("backend", ["sqlite"])
only_postgresql = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.pg)]
)
