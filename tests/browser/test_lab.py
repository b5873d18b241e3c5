"""JupyterLab in Chromium: the jupyter-mlplat frontend plugin loads and reaches its server route."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlplat import __version__

from .conftest import LabPage, LabServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_labextension_found_with_private_dirs(lab_env: dict[str, str]) -> None:
    """The private JUPYTER_* folders still let JupyterLab see the venv's built extension."""
    proc = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                          env=lab_env, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"jupyter-mlplat v\S+ .*enabled.*OK", out), out


def test_version_route_needs_the_token(lab_server: LabServer) -> None:
    status, _, _ = lab_server.get("/mlplat/api/version", token=False)
    assert status in (401, 403)

    status, body, content_type = lab_server.get("/mlplat/api/version")
    assert status == 200, body
    assert content_type.startswith("application/json")
    assert json.loads(body)["version"] == __version__


def test_news_override_is_read(lab_server: LabServer) -> None:
    """The private user settings reach the lab: no news prompt covers the screenshot."""
    status, body, _ = lab_server.get("/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert status == 200, body
    assert json.loads(body)["settings"]["fetchNews"] == "false"


def test_plugin_activates_and_reaches_the_server(lab_page: LabPage, tmp_path: Path) -> None:
    lab_page.open()
    try:
        lab_page.wait_for_console(r"^jupyter-mlplat is activated$")
        reply = lab_page.wait_for_console(r"^jupyter-mlplat server extension ")
    finally:
        print(f"screenshot: {lab_page.screenshot(tmp_path / 'lab.png')}")
    assert reply.startswith(f"jupyter-mlplat server extension {__version__} (owner: "), reply
    assert lab_page.console_errors("jupyter-mlplat") == []
    assert lab_page.page_errors == []
