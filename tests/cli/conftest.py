"""CLI fixtures: ``jupyter mlplat`` run as a real subprocess, the way a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: The CLI as a module; one test goes through the ``jupyter`` dispatcher instead.
MODULE = [sys.executable, "-m", "jupyter_mlplat.cli.main"]


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    """What a failed assertion on a CLI call shows: the command, its exit code and output."""
    return (f"{' '.join(map(str, proc.args))} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")


@dataclass
class Cli:
    """Runs ``jupyter mlplat`` in ``cwd`` with the test's environment plus ``env``."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        # os.environ is read per call: the root conftest points MLPLAT_* at the test's folder.
        # A wide terminal keeps rich from wrapping names that assertions look for.
        return {**os.environ, "COLUMNS": "200", **self.env}

    def __call__(self, *args: Any, expect: int | None = 0, timeout: float = 180,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*MODULE, *map(str, args)], cwd=cwd or self.cwd,
                              env=self.environ(), capture_output=True, text=True,
                              timeout=timeout)
        if expect is not None:
            assert proc.returncode == expect, explain(proc)
        return proc

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a command without waiting for it (stdout/stderr as ``kwargs`` say)."""
        return subprocess.Popen([*MODULE, *map(str, args)], cwd=self.cwd, env=self.environ(),
                                **kwargs)

    def json(self, *args: Any, expect: int | None = 0, **kwargs: Any) -> Any:
        """Run with ``--json``; stdout must be exactly one JSON document."""
        proc = self(*args, "--json", expect=expect, **kwargs)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not one JSON document ({exc})\n{explain(proc)}")

    def usage_error(self, *args: Any, **kwargs: Any) -> str:
        """Run a command that must be refused as bad input: exit 2, nothing on stdout."""
        proc = self(*args, expect=2, **kwargs)
        assert proc.stdout == "", explain(proc)
        assert proc.stderr.strip(), explain(proc)
        return proc.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cwd=tmp_path)
