"""``examples/jupyterhub_config.py`` loaded as JupyterHub loads it (the hub tests run it too)."""

from __future__ import annotations

import os
import runpy
import stat
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jupyterhub_config.py"


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    for name in list(os.environ):
        if name.startswith("MLPLAT_HUB_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    c = Config()
    runpy.run_path(str(EXAMPLE), init_globals={"get_config": lambda: c})
    return c


def test_the_state_folder_is_the_hubs_alone(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # as an earlier version of the example left it
    c = load(monkeypatch, MLPLAT_HUB_STATE=str(state),
             MLPLAT_HUB_STORE_URL="postgresql+psycopg://u:p@db/mlplat")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlplat"]
    assert service["environment"]["MLPLAT_SERVICE_KERNELS"] == "python3,mlplat-python3"


def test_a_sqlite_store_is_refused_unless_asked_for(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SystemExit, match="PostgreSQL"):
        load(monkeypatch, MLPLAT_HUB_STATE=str(tmp_path / "a"))
    c = load(monkeypatch, MLPLAT_HUB_STATE=str(tmp_path / "b"), MLPLAT_HUB_ALLOW_SQLITE="1",
             MLPLAT_HUB_WEBHOOK_HOSTS="hooks.slack.com")
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlplat"]
    assert service["environment"]["MLPLAT_STORE_URL"].startswith("sqlite:///")
    assert service["environment"]["MLPLAT_SERVICE_WEBHOOK_HOSTS"] == "hooks.slack.com"
