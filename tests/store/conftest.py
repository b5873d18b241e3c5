"""Store fixtures: every store test runs against SQLite and against PostgreSQL.

``url`` is parametrised over both backends: a SQLite file in the test's folder, or a fresh,
empty database on a throw-away PostgreSQL cluster (one per test session, on 127.0.0.1 on a free
port). The PostgreSQL variants carry the ``pg`` marker: ``-m "not pg"`` leaves them out. Where the
server binaries or the driver are missing they are skipped, or fail when ``MLPLAT_TEST_PG=require``
(``make test`` sets it wherever PostgreSQL is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.store.sql import Store

from .backends import BACKENDS
from .pg import PostgresCluster, required_bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster, started on first use and removed at the end."""
    cluster = PostgresCluster(required_bindir())
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


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


StoreFactory = Callable[..., Store]


@pytest.fixture
def open_store(url: str) -> Iterator[StoreFactory]:
    """Open stores on the test's database; every one is closed at the end."""
    opened: list[Store] = []

    def _open(owner: str = "alice", **kwargs: Any) -> Store:
        store = Store(url, owner, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
