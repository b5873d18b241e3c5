"""Root test configuration: the jupyter-server fixtures, our extension enabled, a private home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(jp_server_config):
    """Every server under test loads jupyter_mlplat and refuses unauthenticated requests."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_mlplat": True},
            "allow_unauthenticated_access": False,
        },
    }


@pytest.fixture(autouse=True)
def mlplat_isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point the Jupyter data dir and every MLPLAT_* location at a fresh folder for each test."""
    root: Path = tmp_path_factory.mktemp("mlplat-home")
    data_dir = root / "jupyter-data"
    data_dir.mkdir()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MLPLAT_STORE_URL", f"sqlite:///{root / 'mlplat.db'}")
    monkeypatch.setenv("MLPLAT_ARTIFACTS_URL", str(root / "artifacts"))
    monkeypatch.setenv("MLPLAT_LOGS_DIR", str(root / "logs"))
    return root


def _unavailable(why: str) -> None:
    from tests.store.pg import REQUIRE_ENV

    if os.environ.get(REQUIRE_ENV) == "require":
        pytest.fail(f"{why} ({REQUIRE_ENV}=require)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """The session's throw-away PostgreSQL cluster (tests/store/pg.py), on 127.0.0.1 on a free
    port, started on first use and removed at the end. Skipped where the driver or the server
    binaries are missing, a failure with ``MLPLAT_TEST_PG=require`` (``make test`` sets it).
    """
    from tests.store.pg import PostgresCluster, find_bindir

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install 'psycopg[binary]'")
    bindir = find_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                     "apt-get install postgresql")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
