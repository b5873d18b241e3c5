"""The server extension loads, answers on its routes, and refuses requests without credentials."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_mlplat import __version__
from jupyter_mlplat.config import current_owner


async def test_version(jp_fetch):
    response = await jp_fetch("mlplat", "api", "version")

    assert response.code == 200
    assert json.loads(response.body) == {"version": __version__, "owner": current_owner()}


async def test_version_needs_credentials(jp_fetch):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("mlplat", "api", "version", headers={"Authorization": ""})

    assert info.value.code in (401, 403)


def _jupyter(*args: str) -> str:
    """Run `jupyter ...` from this venv; return stdout and stderr together."""
    jupyter = Path(sys.executable).with_name("jupyter")
    result = subprocess.run(
        [str(jupyter), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_server_extension_listed_enabled():
    output = _jupyter("server", "extension", "list")

    lines = [line for line in output.splitlines() if "jupyter_mlplat" in line]
    assert any("enabled" in line for line in lines), output
    assert not any("X " in line or "failed" in line.lower() for line in lines), output


def test_labextension_listed_enabled():
    output = _jupyter("labextension", "list")

    lines = [line for line in output.splitlines() if "jupyter-mlplat" in line]
    assert any("enabled" in line and "OK" in line for line in lines), output
