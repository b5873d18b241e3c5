"""Store fixtures: every store test runs against SQLite and against PostgreSQL.

``url`` is parametrised over both backends: a SQLite file in the test's folder, or a fresh,
empty database on the session's throw-away PostgreSQL cluster (``pg_cluster``, in the root
conftest). The PostgreSQL variants carry the ``pg`` marker: ``-m "not pg"`` leaves them out. Where the
server binaries or the driver are missing they are skipped, or fail when ``MLPLAT_TEST_PG=require``
(``make test`` sets it wherever PostgreSQL is installed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .backends import BACKENDS
from .pg import PostgresCluster


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A store URL with nothing in it yet, on the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = cluster.create_database()
    yield cluster.url(name)
    cluster.drop_database(name)
