"""Root test configuration: the jupyter-server fixtures, our extension enabled, a private home."""

from __future__ import annotations

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
